export { TlsListener, TlsHandshakeTracker, createTlsListener } from './listener';
export { TlsDialer, createTlsDialer } from './dialer';
export { tlsClientHandshake } from './handshake';
export {
  AUTO_CERT_FILE,
  AUTO_KEY_FILE,
  DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS,
  burrowHome,
  clearAutoCertificateCache,
  loadAutoCertificate,
  loadClientTlsOptions,
  loadServerTlsOptions,
  parseTlsVersion,
  tlsHandshakeTimeoutMs,
  type ServerTlsSource,
} from './certs';
export { createCertificate, generateEcKeyPair, type CertificateSpec, type GeneratedCertificate } from './x509';
