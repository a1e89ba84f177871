/**
 * Per-stream header (spec/protocol.md §6): the first bytes the server writes into every smux
 * stream it opens toward a client, as one relay Response.
 *
 * ```
 * +-----+--------+--------+-----------+-----------+
 * | VER | STATUS | FEALEN | Addr(src) | Addr(dst) |     01 00 LLLL  02 LLLL …  02 LLLL …
 * |  1  |   1    | 2 (BE) |    TLV    | TLV, opt. |
 * +-----+--------+--------+-----------+-----------+
 * ```
 *
 * src = the original client ("203.0.113.7:0", "127.0.0.1:50000"), dst = the target as the
 * visitor or entry point saw it ("ssh.srv-2.local:0", "example.com:80"). No Network feature.
 * On reading, the first Addr is src and a later Addr overwrites dst (as gost's listener does);
 * a status other than OK is an error.
 */
import { ProtocolError } from '../core/errors';
import { STATUS_OK } from './relay/constants';
import { addrFeature, type Feature } from './relay/feature';
import { addrsOf, decodeResponse, encodeResponse, type RelayResponse } from './relay/message';
import { RelayReader, type RelayReaderOptions } from './relay/reader';

export interface StreamHeader {
  /** First Addr, "host:port"; gost requires it to resolve, so senders use an IP literal. */
  src: string | undefined;
  /** Last later Addr, "host:port"; undefined when only src was sent. */
  dst: string | undefined;
}

/**
 * Encodes `01 00 LLLL Addr(src) [Addr(dst)]`. Addresses follow relay addrFeature rules;
 * throws ProtocolError('bad_address') for an address that cannot be encoded.
 */
export function encodeStreamHeader(src: string, dst?: string): Buffer {
  const features: Feature[] = [addrFeature(src)];
  if (dst !== undefined) features.push(addrFeature(dst));
  return encodeResponse({ status: STATUS_OK, features });
}

function toHeader(resp: RelayResponse): StreamHeader {
  if (resp.status !== STATUS_OK) {
    throw new ProtocolError('bad_header', `stream header carries status ${resp.status}: peer connect failed`);
  }
  const addrs = addrsOf(resp.features);
  return { src: addrs[0], dst: addrs.length > 1 ? addrs[addrs.length - 1] : undefined };
}

/** Decodes exactly one complete header. Throws ProtocolError. */
export function decodeStreamHeader(buf: Buffer): StreamHeader {
  return toHeader(decodeResponse(buf));
}

/**
 * Incremental reader for the header at the start of a stream. `push` returns the header and
 * the bytes that followed it (`rest`, the payload) once complete; throws ProtocolError.
 */
export class StreamHeaderReader {
  readonly #reader: RelayReader<RelayResponse>;

  constructor(opts?: RelayReaderOptions) {
    this.#reader = RelayReader.forResponse(opts);
  }

  push(chunk: Buffer): (StreamHeader & { rest: Buffer }) | undefined {
    const r = this.#reader.push(chunk);
    if (!r) return undefined;
    return { ...toHeader(r.message), rest: r.rest };
  }

  get bufferedBytes(): number {
    return this.#reader.bufferedBytes;
  }
}
