/** `entrypoint.acmeCA`: a PEM file with the CA certificate the ACME server's own is signed by. */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** The PEM text of `file`; throws an Error saying what is wrong (unreadable, no certificate). */
export function readCaPem(file: string): string {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read "${file}": ${(err as Error).message}`, { cause: err });
  }
  try {
    new X509Certificate(pem);
  } catch {
    throw new Error(`"${file}" holds no PEM certificate`);
  }
  return pem;
}
