/**
 * A tunnel stream carrying HTTP requests of the entry point: its listeners are attached once
 * and its events go to whichever connection holds it now (`owner`), or, while it waits in the
 * entry point's idle pool, end its stay there. Which connector the stream is on comes from
 * the tunnel pool (`connectorOf`); the stream is marked idle there while no request is on it,
 * so the pool closes it first when the connector drains or runs out of streams. A stream to
 * another server of the fleet (forward.ts) has no connector here: it is keyed by the node that
 * took it instead.
 */
import type { Duplex } from 'node:stream';
import { stripPort } from '../../../../core/addr';
import { destroy } from '../../../../io/pipe';
import { connectorOf, type ConnectorEntry } from '../../pool';
import { ForwardStream } from '../../forward';

/** What a connection does with the events of the stream its current request is on. */
export interface UpstreamOwner {
  upstreamData(up: Upstream, chunk: Buffer): void;
  upstreamEnd(up: Upstream, err: Error | undefined): void;
  upstreamDrain(): void;
}

/** Where a stream idles between connections (idle-pool.ts). */
export interface IdleHolder {
  /** The stream ended, failed or spoke while idle: out of the pool. */
  forgetIdle(up: Upstream): void;
}

/** The Upstream of each stream (the listeners below are shared; `this` is the stream). */
const upstreams = new WeakMap<Duplex, Upstream>();

export class Upstream {
  /** The connection whose request is on the stream, or which keeps it for its next one. */
  owner: UpstreamOwner | undefined;
  /** Pool key while the stream idles in its connection's pool. */
  idleKey: string | undefined;
  /** The entry point's idle pool while the stream waits there for a later connection. */
  idlePool: IdleHolder | undefined;
  idleSince = 0;
  /** The connector the stream is on (undefined for a stream not opened by a pool). */
  readonly entry: ConnectorEntry | undefined;
  /** A stream to another server of the fleet, relayed there (no connector here). */
  readonly remote: ForwardStream | undefined;
  readonly #dst: string;
  readonly #src: string;
  readonly #peer: string;
  readonly #tunnelId: string;
  #sharedKey: string | undefined;

  constructor(
    readonly stream: Duplex,
    dst: string,
    src: string,
    peer: string,
    tunnelId = '',
  ) {
    this.entry = connectorOf(stream);
    this.remote = stream instanceof ForwardStream ? stream : undefined;
    this.#dst = dst;
    this.#src = src;
    this.#peer = peer;
    this.#tunnelId = tunnelId;
    upstreams.set(stream, this);
    stream.on('data', onUpstreamData);
    stream.on('end', onUpstreamEnd);
    stream.on('error', onUpstreamError);
    stream.on('close', onUpstreamClose);
    stream.on('drain', onUpstreamDrain);
  }

  /**
   * connector (or tunnel × node it was sent to) × host × socket peer × client IP: where the
   * stream idles between connections. Fixed once known (a forwarded stream's node is known
   * when the node has answered, before any response).
   */
  get sharedKey(): string {
    if (this.#sharedKey !== undefined) return this.#sharedKey;
    const node = this.remote?.node;
    const key = sharedKeyOf(this.entry?.id ?? (node !== undefined ? remoteKeyOf(this.#tunnelId, node) : ''), this.#dst, this.#src, this.#peer);
    if (this.entry !== undefined || node !== undefined) this.#sharedKey = key;
    return key;
  }

  /** It can wait in the entry point's idle pool: on a connector here, or relayed to a known node. */
  get poolable(): boolean {
    return this.entry !== undefined || this.remote?.node !== undefined;
  }

  /** Open both ways, on a connector still in use: it can carry a next request. */
  get reusable(): boolean {
    const s = this.stream;
    return !s.destroyed && !s.readableEnded && !s.writableEnded && (this.entry === undefined || this.entry.usable);
  }

  /** Tells the connector whether the stream waits for a request (closed first when it drains). */
  markIdle(idle: boolean): void {
    this.entry?.setIdle(this.stream, idle);
  }

  /** The stream leaves its holder and is closed now. */
  drop(): void {
    this.owner = undefined;
    destroy(this.stream);
  }

  /** The listeners go (the stream becomes one end of a byte splice). */
  detach(): void {
    this.owner = undefined;
    const s = this.stream;
    s.off('data', onUpstreamData);
    s.off('end', onUpstreamEnd);
    s.off('error', onUpstreamError);
    s.off('close', onUpstreamClose);
    s.off('drain', onUpstreamDrain);
  }

  /** Ends a stream we are done with: FIN once what was written has gone, then released. */
  release(): void {
    this.owner = undefined;
    const s = this.stream;
    if (s.destroyed) return;
    if (s.writableLength > 0 && !s.writableEnded) {
      s.end();
      s.once('finish', () => destroy(s));
      setTimeout(() => destroy(s), 5_000).unref();
      return;
    }
    destroy(s);
  }
}

/**
 * `dst` is lower-case host:port; `src` (the client address, from forwarded headers when sent)
 * and `peer` (the socket's) host:port, of which only the hosts count. The socket's address is
 * part of the key because forwarded headers are the sender's word: a stream never goes to a
 * connection from another address that merely names the same client.
 */
export function sharedKeyOf(connectorId: string, dst: string, src: string, peer: string): string {
  return [connectorId, dst, stripPort(peer), stripPort(src)].join('|');
}

/** The connector part of a shared key for a stream relayed to `node` for `tunnelId`. */
export function remoteKeyOf(tunnelId: string, node: string): string {
  return `fleet:${tunnelId}@${node}`;
}

/** Bytes or an end from a stream that no request is on (idle, or an origin talking out of turn). */
function dropIdle(up: Upstream): void {
  up.idlePool?.forgetIdle(up);
  destroy(up.stream);
}
function onUpstreamData(this: Duplex, chunk: Buffer): void {
  const up = upstreams.get(this)!;
  if (up.owner) up.owner.upstreamData(up, chunk);
  else dropIdle(up);
}
function onUpstreamEnd(this: Duplex): void {
  const up = upstreams.get(this)!;
  if (up.owner) up.owner.upstreamEnd(up, undefined);
  else dropIdle(up);
}
function onUpstreamError(this: Duplex, err: Error): void {
  const up = upstreams.get(this)!;
  if (up.owner) up.owner.upstreamEnd(up, err);
  else up.idlePool?.forgetIdle(up);
}
function onUpstreamClose(this: Duplex): void {
  const up = upstreams.get(this)!;
  if (up.owner) up.owner.upstreamEnd(up, new Error('tunnel stream closed'));
  else up.idlePool?.forgetIdle(up);
}
function onUpstreamDrain(this: Duplex): void {
  upstreams.get(this)!.owner?.upstreamDrain();
}
