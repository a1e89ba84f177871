/**
 * Reads exactly one relay message (request or response) off a byte stream, leaving every byte
 * after it in the stream for the next protocol layer (smux frames, payload).
 */
import type { Duplex } from 'node:stream';
import { peek } from './peek';
import { messageLength } from '../protocol/relay/message';
import { withPrefix } from '../protocol/sniff/foreign';

/** Relay messages are at most 4 + 65535 bytes. */
const MAX_RELAY_MESSAGE = 4 + 65535;

/** Resolves with the message bytes; rejects with ProtocolError, a timeout or a close. */
export async function readRelayMessage(stream: Duplex, timeoutMs: number): Promise<Buffer> {
  const r = await peek<number>(
    stream,
    (prefix) => {
      let len: number | undefined;
      try {
        len = messageLength(prefix);
      } catch (err) {
        // Another protocol's bytes (an HTTP response, a TLS record) are kept to be named.
        throw withPrefix(err, prefix);
      }
      if (len !== undefined && prefix.length >= len) return { done: true, value: len };
      return { done: false };
    },
    { timeoutMs, maxBytes: MAX_RELAY_MESSAGE + 64 * 1024 },
  );
  const len = r.value;
  if (r.ended) return r.prefix.subarray(0, len);
  const msg = stream.read(len) as Buffer | null;
  if (msg === null) return r.prefix.subarray(0, len);
  return msg;
}
