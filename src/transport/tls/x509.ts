/**
 * A minimal X.509 v3 certificate writer on top of node:crypto: DER encoding of the few ASN.1
 * types a certificate needs, signed with ECDSA-SHA256 (P-256 keys) or RSA-SHA256. Enough for
 * the auto-generated server certificate (protocol.md §8.3) and for test CAs; it does not parse.
 *
 *   Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }
 *   TBSCertificate ::= SEQUENCE { [0] version(v3), serialNumber, signature, issuer, validity,
 *                                 subject, subjectPublicKeyInfo, [3] extensions }
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';

// ---- DER primitives ------------------------------------------------------------------------

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);
}

const seq = (...parts: Buffer[]): Buffer => tlv(0x30, Buffer.concat(parts));
const set = (...parts: Buffer[]): Buffer => tlv(0x31, Buffer.concat(parts));
const octetString = (b: Buffer): Buffer => tlv(0x04, b);
const utf8String = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
const bitString = (b: Buffer, unusedBits = 0): Buffer => tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), b]));
const explicit = (n: number, content: Buffer): Buffer => tlv(0xa0 | n, content);
const BOOLEAN_TRUE = Buffer.from([0x01, 0x01, 0xff]);
const NULL = Buffer.from([0x05, 0x00]);

/** A non-negative INTEGER from big-endian magnitude bytes. */
function integer(magnitude: Buffer): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  let b = magnitude.subarray(i);
  if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b);
}

function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out: number[] = [40 * arcs[0]! + arcs[1]!];
  for (const arc of arcs.slice(2)) {
    const enc: number[] = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) enc.unshift((v & 0x7f) | 0x80);
    out.push(...enc);
  }
  return tlv(0x06, Buffer.from(out));
}

/** UTCTime through 2049, GeneralizedTime after (RFC 5280 §4.1.2.5). */
function time(d: Date): Buffer {
  const iso = d.toISOString(); // 2025-01-02T03:04:05.678Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '') + 'Z'; // 20250102030405Z
  if (d.getUTCFullYear() < 2050) return tlv(0x17, Buffer.from(digits.slice(2), 'ascii'));
  return tlv(0x18, Buffer.from(digits, 'ascii'));
}

// ---- Certificate pieces --------------------------------------------------------------------

const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

export interface DistinguishedName {
  commonName: string;
  organization?: string;
}

function name(dn: DistinguishedName): Buffer {
  const rdns: Buffer[] = [];
  if (dn.organization) rdns.push(set(seq(oid(OID.organization), utf8String(dn.organization))));
  rdns.push(set(seq(oid(OID.commonName), utf8String(dn.commonName))));
  return seq(...rdns);
}

function signatureAlgorithm(key: KeyObject): Buffer {
  if (key.asymmetricKeyType === 'ec') return seq(oid(OID.ecdsaWithSha256));
  if (key.asymmetricKeyType === 'rsa') return seq(oid(OID.sha256WithRsa), NULL);
  throw new Error(`unsupported signing key type ${String(key.asymmetricKeyType)}`);
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), BOOLEAN_TRUE, octetString(value)) : seq(oid(id), octetString(value));
}

/** Key usage bits, numbered as in RFC 5280 §4.2.1.3. */
const KEY_USAGE_BIT = {
  digitalSignature: 0,
  keyEncipherment: 2,
  keyCertSign: 5,
  cRLSign: 6,
} as const;
export type KeyUsage = keyof typeof KEY_USAGE_BIT;

function keyUsageValue(usages: KeyUsage[]): Buffer {
  let byte = 0;
  for (const u of usages) byte |= 0x80 >> KEY_USAGE_BIT[u];
  let unused = 0;
  while (unused < 7 && (byte & (1 << unused)) === 0) unused++;
  return bitString(Buffer.from([byte]), unused);
}

function subjectAltNames(sans: string[]): Buffer {
  const names = sans.map((san) => {
    const family = isIP(san);
    if (family === 4) return tlv(0x87, Buffer.from(san.split('.').map(Number)));
    if (family === 6) return tlv(0x87, ipv6Bytes(san));
    return tlv(0x82, Buffer.from(san, 'ascii'));
  });
  return seq(...names);
}

function ipv6Bytes(ip: string): Buffer {
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const groups = (s: string | undefined): number[] => (s ? s.split(':').map((g) => Number.parseInt(g, 16)) : []);
  const h = groups(head);
  const t = groups(tail);
  const all = tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

function keyId(spkiDer: Buffer): Buffer {
  return createHash('sha1').update(spkiDer).digest();
}

// ---- Public API ----------------------------------------------------------------------------

export interface CertificateSpec {
  subject: DistinguishedName;
  /** DNS names and IP literals for subjectAltName (omitted when empty). */
  sans?: string[];
  /** Marks the certificate as a CA (basicConstraints cA=TRUE). */
  isCa?: boolean;
  keyUsage?: KeyUsage[];
  extKeyUsage?: Array<'serverAuth' | 'clientAuth'>;
  /** Validity from now, in ms (default one year). */
  validityMs?: number;
  /** Signer; omitted = self-signed with the subject's own key. */
  issuer?: { subject: DistinguishedName; privateKey: KeyObject; publicKey: KeyObject };
  /** Subject key pair; omitted = a fresh ECDSA P-256 key. */
  keyPair?: { privateKey: KeyObject; publicKey: KeyObject };
}

export interface GeneratedCertificate {
  certPem: string;
  /** PKCS#8 PEM ("BEGIN PRIVATE KEY"), as gost writes it. */
  keyPem: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export const ONE_YEAR_MS = 365 * 24 * 3600 * 1000;

/** A fresh ECDSA P-256 key pair. */
export function generateEcKeyPair(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
}

/** Builds and signs one X.509 v3 certificate. */
export function createCertificate(spec: CertificateSpec): GeneratedCertificate {
  const { privateKey, publicKey } = spec.keyPair ?? generateEcKeyPair();
  const issuer = spec.issuer ?? { subject: spec.subject, privateKey, publicKey };
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const issuerSpki = issuer.publicKey.export({ type: 'spki', format: 'der' });

  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01; // positive and non-zero
  // A few minutes of slack for peers whose clocks run a little behind.
  const notBefore = new Date(Date.now() - 5 * 60_000);
  const notAfter = new Date(Date.now() + (spec.validityMs ?? ONE_YEAR_MS));

  const exts: Buffer[] = [
    extension(OID.basicConstraints, true, spec.isCa ? seq(BOOLEAN_TRUE) : seq()),
    extension(OID.subjectKeyIdentifier, false, octetString(keyId(spki))),
    extension(OID.authorityKeyIdentifier, false, seq(tlv(0x80, keyId(issuerSpki)))),
  ];
  if (spec.keyUsage?.length) exts.push(extension(OID.keyUsage, true, keyUsageValue(spec.keyUsage)));
  if (spec.extKeyUsage?.length) {
    exts.push(extension(OID.extKeyUsage, false, seq(...spec.extKeyUsage.map((u) => oid(OID[u])))));
  }
  if (spec.sans?.length) exts.push(extension(OID.subjectAltName, false, subjectAltNames(spec.sans)));

  const algorithm = signatureAlgorithm(issuer.privateKey);
  const tbs = seq(
    explicit(0, integer(Buffer.from([2]))),
    integer(serial),
    algorithm,
    name(issuer.subject),
    seq(time(notBefore), time(notAfter)),
    name(spec.subject),
    spki,
    explicit(3, seq(...exts)),
  );
  const signature = sign('sha256', tbs, issuer.privateKey);
  const der = seq(tbs, algorithm, bitString(signature));
  return {
    certPem: toPem('CERTIFICATE', der),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    privateKey,
    publicKey,
  };
}

function toPem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}
