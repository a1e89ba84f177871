/**
 * Reads the first bytes of a stream to decide something (HTTP Host, TLS SNI, relay header)
 * without losing them: everything read is put back with `unshift` before returning, so the
 * next reader sees the stream from its first byte.
 */
import type { Duplex } from 'node:stream';
import { BurrowError } from '../core/errors';

export type PeekDecision<T> = { done: true; value: T } | { done: false };

/**
 * Feeds the accumulated prefix to `decide` after every read until it returns done, the stream
 * ends (decide gets a last call with `eof = true`), `maxBytes` is exceeded, or `timeoutMs`
 * passes. `decide` may throw (e.g. ProtocolError); the bytes are put back in every case where the
 * stream is still usable. When the stream already ended (`ended`), the bytes cannot be put back:
 * the caller must use `prefix` itself.
 */
export function peek<T>(
  stream: Duplex,
  decide: (prefix: Buffer, eof: boolean) => PeekDecision<T>,
  opts: { timeoutMs: number; maxBytes: number },
): Promise<{ value: T; prefix: Buffer; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let settled = false;
    const timer = setTimeout(() => {
      fail(new BurrowError('BURROW_ERR_TIMEOUT', `no complete header within ${opts.timeoutMs} ms`));
    }, opts.timeoutMs);
    timer.unref?.();

    const cleanup = (): void => {
      clearTimeout(timer);
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onClose);
    };
    const putBack = (): Buffer => {
      const prefix = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
      if (prefix.length > 0 && !stream.destroyed && !stream.readableEnded) stream.unshift(prefix);
      return prefix;
    };
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      cleanup();
      putBack();
      reject(err);
    };
    const evaluate = (eof: boolean): void => {
      const prefix = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
      if (chunks.length > 1) {
        chunks.length = 0;
        chunks.push(prefix);
      }
      let d: PeekDecision<T>;
      try {
        d = decide(prefix, eof);
      } catch (err) {
        fail(err as Error);
        return;
      }
      if (d.done) {
        settled = true;
        cleanup();
        putBack();
        resolve({ value: d.value, prefix, ended: eof });
      } else if (eof) {
        fail(new BurrowError('BURROW_ERR_CLOSED', 'connection closed before a complete header'));
      } else if (total > opts.maxBytes) {
        fail(new BurrowError('BURROW_ERR_LIMIT', `header larger than ${opts.maxBytes} bytes`));
      }
    };
    const onReadable = (): void => {
      let chunk: Buffer | null;
      let got = false;
      while (!settled && (chunk = stream.read() as Buffer | null) !== null) {
        chunks.push(chunk);
        total += chunk.length;
        got = true;
      }
      if (got && !settled) evaluate(false);
    };
    const onEnd = (): void => {
      if (!settled) evaluate(true);
    };
    const onError = (err: Error): void => fail(err);
    const onClose = (): void => fail(new BurrowError('BURROW_ERR_CLOSED', 'connection closed'));

    stream.on('readable', onReadable);
    stream.once('end', onEnd);
    stream.once('error', onError);
    stream.once('close', onClose);
    if (stream.readableLength > 0) onReadable();
  });
}
