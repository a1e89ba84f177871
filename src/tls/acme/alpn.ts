/**
 * Whether a ClientHello offers the `acme-tls/1` protocol by ALPN (RFC 8737: a TLS-ALPN-01
 * validation). The entry point reads the ClientHello before choosing a certificate (for its SNI),
 * so it can ask this on the same bytes and answer such a handshake with
 * `AcmeManager.alpnChallengeContext` instead of the name's certificate.
 */
import { parseClientHelloSni, TLS_RECORD_HEADER_LEN } from '../../protocol/sniff/tls';

export const ACME_TLS_ALPN = 'acme-tls/1';
const EXTENSION_ALPN = 16;

/**
 * The ALPN protocol names in the ClientHello at the start of `buf` (all its records); empty when
 * there are none, the ClientHello is incomplete or malformed.
 */
export function clientHelloAlpn(buf: Buffer): string[] {
  let end: number;
  try {
    const r = parseClientHelloSni(buf);
    if (!r.complete) return [];
    end = r.recordEnd;
  } catch {
    return [];
  }
  const parts: Buffer[] = [];
  for (let pos = 0; pos < end; ) {
    const len = buf.readUInt16BE(pos + 3);
    parts.push(buf.subarray(pos + TLS_RECORD_HEADER_LEN, pos + TLS_RECORD_HEADER_LEN + len));
    pos += TLS_RECORD_HEADER_LEN + len;
  }
  try {
    return extensionsAlpn(Buffer.concat(parts));
  } catch {
    return []; // a length past the end (RangeError): not a ClientHello to answer
  }
}

function extensionsAlpn(hs: Buffer): string[] {
  const body = hs.subarray(4, 4 + hs.readUIntBE(1, 3));
  // The SNI parser above has checked the lengths of this body; the walk below only skips.
  let p = 2 + 32;
  p += 1 + body[p]!; // session id
  p += 2 + body.readUInt16BE(p); // cipher suites
  p += 1 + body[p]!; // compression methods
  if (p + 2 > body.length) return [];
  const extEnd = p + 2 + body.readUInt16BE(p);
  p += 2;
  while (p + 4 <= extEnd) {
    const type = body.readUInt16BE(p);
    const len = body.readUInt16BE(p + 2);
    p += 4;
    if (type === EXTENSION_ALPN) return alpnList(body.subarray(p, p + len));
    p += len;
  }
  return [];
}

function alpnList(data: Buffer): string[] {
  if (data.length < 2 || data.readUInt16BE(0) !== data.length - 2) return [];
  const out: string[] = [];
  for (let p = 2; p < data.length; ) {
    const len = data[p]!;
    if (len === 0 || p + 1 + len > data.length) return [];
    out.push(data.subarray(p + 1, p + 1 + len).toString('latin1'));
    p += 1 + len;
  }
  return out;
}

/** True when the ClientHello in `buf` offers `acme-tls/1`. */
export function offersAcmeTls(buf: Buffer): boolean {
  return clientHelloAlpn(buf).includes(ACME_TLS_ALPN);
}
