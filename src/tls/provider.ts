// src/tls/provider.ts
import type { SecureContext } from 'node:tls';
/** Where an entry point gets the certificate for a TLS connection's SNI name. */
export interface CertificateProvider {
  /**
   * The context to terminate TLS for `servername` with, or undefined to pass the connection through
   * untouched. May be a promise (an ACME order on the first handshake for a name).
   */
  contextFor(servername: string): SecureContext | undefined | Promise<SecureContext | undefined>;
}
