/**
 * Cross-server routing (gost's service discovery): a request for a tunnel that has no connector
 * on this server goes to a server of the fleet that holds one, as service discovery names it.
 * This server dials that node's registered address (its entry point) and sends a relay CONNECT
 * there, carrying the visitor's own credentials, network, source and destination; the other
 * server checks it as if the visitor had come itself and answers with a relay status. Then the
 * bytes are spliced both ways.
 *
 * - A visitor's relay CONNECT (tunnel port or entry point) is sent on with its credentials; the
 *   other server's status goes back to the visitor.
 * - TLS at the entry point: a CONNECT to `<sni>:443` for the host's tunnel, then the ClientHello
 *   and the rest of the connection, untouched.
 * - HTTP at the entry point: a CONNECT to `<host>:80` for the host's tunnel; the request (with
 *   this node in `Gost-Forwarded-Node`) goes down it as down a tunnel stream, and with
 *   `entrypoint.keepalive` the connection carries the visitor connection's next requests to that
 *   host, then idles for a later connection of the same visitor address to the same host and
 *   node (never another visitor's: the other node checked this one's address).
 *
 * A forwarded CONNECT has a third Addr feature between source and destination: the address this
 * server saw the visitor connect from. gost and burrow both read the first Addr as the source and
 * the last as the destination, so the request means the same to a server that does not know the
 * mark. A burrow server never forwards a marked request again (no loop between servers whose
 * registries disagree), and believes the mark only from a peer listed in `sd.trusted`: from
 * there it counts limits and lockout against the visitor's address rather than the
 * forwarding server's, and it lets a marked CONNECT without credentials reach a public host
 * (what the visitor could have had at its entry point). From anyone else the mark changes
 * nothing but that the request is not forwarded.
 *
 * Deadlines: connecting to a node and its answer each take at most `timeoutMs`; nodes are tried
 * in turn (a refused connection, a timeout or status 503 moves to the next), and the first other
 * answer is final.
 */
import net from 'node:net';
import { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { CMD_CONNECT, FLAG_UDP, NETWORK_UDP, STATUS_OK, STATUS_SERVICE_UNAVAILABLE } from '../../protocol/relay/constants';
import { addrsOf, decodeResponse, encodeRequest, type RelayRequest } from '../../protocol/relay/message';
import { addrFeature, type Feature } from '../../protocol/relay/feature';
import { parseTunnelId, makeTunnelId, type TunnelId } from '../../protocol/relay/tunnel-id';
import { readRelayMessage } from '../../io/read-message';
import { destroy } from '../../io/pipe';
import { stripPort } from '../../core/addr';
import { TrustedPeers } from '../../limit/trusted-peers';
import type { SdRegistry } from '../../sd/registry';
import type { SdService } from '../../sd/sd';
import type { Network, TunnelPool } from './pool';

/** How long connecting to another node, and its answer, may take (gost dials with 15 s). */
export const FORWARD_TIMEOUT_MS = 15_000;
/**
 * How long a lookup's answer is used again without asking the store (per tunnel and network).
 * A cached node that no longer takes the tunnel costs one fresh lookup, not a failure.
 */
export const LOOKUP_CACHE_MS = 1_000;
const LOOKUP_CACHE_MAX = 10_000;

/** A request to send on to the node holding the tunnel. */
export interface ForwardRequest {
  tunnelId: string;
  network: Network;
  /** The visitor's source as the stream header carries it (what it wrote, else its address). */
  src: string;
  /** The address this server saw the visitor connect from. */
  client: string;
  dst: string;
  username?: string;
  password?: string;
  /** The tunnel ID as the visitor sent it (flags kept); else `tunnelId`. */
  tunnel?: TunnelId;
}

/** What the other node answered: a status, and on STATUS_OK the connection to splice with. */
export type ForwardResult = { status: number; socket?: net.Socket; node?: string };

/** The mark of a forwarded request: its middle Addr, when a request has three or more. */
export function forwardedClient(req: RelayRequest): string | undefined {
  const addrs = addrsOf(req.features);
  return addrs.length >= 3 ? addrs[1] : undefined;
}

/** The relay CONNECT sent to the other node. */
export function encodeForwardRequest(r: ForwardRequest, tunnelId: TunnelId): Buffer {
  const features: Feature[] = [];
  if (r.network === 'udp') features.push({ kind: 'network', network: NETWORK_UDP });
  if (r.username !== undefined || r.password !== undefined) {
    features.push({ kind: 'userAuth', username: r.username ?? '', password: r.password ?? '' });
  }
  features.push(addrFeature(r.src), addrFeature(r.client), addrFeature(r.dst || ':0'));
  features.push({ kind: 'tunnel', id: tunnelId });
  return encodeRequest({ cmd: CMD_CONNECT, flags: r.network === 'udp' ? FLAG_UDP : 0, features });
}

export interface ForwarderOptions {
  sd: SdRegistry;
  /** `sd.trusted`: peers whose mark is believed. */
  trusted: TrustedPeers;
  timeoutMs: number;
  logger: Logger;
}

export class Forwarder {
  readonly trusted: TrustedPeers;
  readonly #opts: ForwarderOptions;
  readonly #cache = new Map<string, { at: number; services: SdService[] }>();

  constructor(opts: ForwarderOptions) {
    this.#opts = opts;
    this.trusted = opts.trusted;
  }

  /**
   * The visitor's address a request counts against: the mark from a trusted peer, else the
   * connection's own.
   */
  clientOf(remote: string, mark: string | undefined): string {
    return mark !== undefined && this.trusted.trusts(stripPort(remote)) ? mark : remote;
  }

  /**
   * Sends the request to the nodes holding the tunnel, one after the other, until one answers
   * other than 503. Status 503 when no node holds it or none answers.
   */
  async forward(r: ForwardRequest, log: Logger): Promise<ForwardResult> {
    const key = `${r.network}|${r.tunnelId}`;
    const hit = this.#cache.get(key);
    if (hit !== undefined && Date.now() - hit.at < LOOKUP_CACHE_MS) {
      const res = await this.#via(hit.services, r, log);
      if (res.status !== STATUS_SERVICE_UNAVAILABLE) return res;
    }
    this.#cache.delete(key);
    const services = await this.#opts.sd.lookup(r.tunnelId, r.network);
    if (services.length === 0) return { status: STATUS_SERVICE_UNAVAILABLE };
    if (this.#cache.size >= LOOKUP_CACHE_MAX) this.#cache.clear();
    this.#cache.set(key, { at: Date.now(), services });
    return this.#via(services, r, log);
  }

  /** Tries the nodes in turn (see forward). */
  async #via(services: readonly SdService[], r: ForwardRequest, log: Logger): Promise<ForwardResult> {
    let tid = r.tunnel;
    try {
      tid ??= makeTunnelId(parseTunnelId(r.tunnelId).uuid, 0, 0);
    } catch {
      return { status: STATUS_SERVICE_UNAVAILABLE };
    }
    const head = encodeForwardRequest(r, tid);
    for (const s of services) {
      const res = await this.#try(s.address, head).catch((err: Error) => {
        log.warn(`forward: node ${s.node} at ${s.address}: ${err.message}`);
        return undefined;
      });
      if (res === undefined) continue;
      if (res.status === STATUS_SERVICE_UNAVAILABLE) {
        destroy(res.socket);
        log.debug(`forward: node ${s.node} at ${s.address} has no connector for tunnel ${r.tunnelId}`);
        continue;
      }
      log.debug(`forward: tunnel ${r.tunnelId} via node ${s.node} at ${s.address}: status ${res.status}`);
      return { ...res, node: s.node };
    }
    return { status: STATUS_SERVICE_UNAVAILABLE };
  }

  /**
   * The nodes of service discovery's last answer for the tunnel, in its order (none when it
   * was not asked or named none): where an idle forwarded connection may be taken from. A
   * node that has since lost the tunnel closed those connections (their splice ended there).
   */
  knownNodes(tunnelId: string, network: Network): string[] {
    return this.#cache.get(`${network}|${tunnelId}`)?.services.map((s) => s.node) ?? [];
  }

  /** A stream that carries the request to the node that takes it (ForwardStream). */
  stream(r: ForwardRequest, log: Logger): ForwardStream {
    return new ForwardStream(this.forward(r, log));
  }

  async #try(address: string, head: Buffer): Promise<{ status: number; socket?: net.Socket }> {
    const { timeoutMs } = this.#opts;
    const socket = await dial(address, timeoutMs);
    try {
      socket.write(head);
      const resp = decodeResponse(await readRelayMessage(socket, timeoutMs));
      if (resp.status !== STATUS_OK) {
        destroy(socket);
        return { status: resp.status };
      }
      return { status: STATUS_OK, socket };
    } catch (err) {
      destroy(socket);
      throw err;
    }
  }
}

/** A TCP connection to host:port within `timeoutMs`. */
function dial(address: string, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const i = address.lastIndexOf(':');
    const host = address.slice(0, i).replace(/^\[|\]$/g, '') || '127.0.0.1';
    const port = Number(address.slice(i + 1));
    if (i < 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
      reject(new Error(`registered address '${address}' is not host:port`));
      return;
    }
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no connection within ${timeoutMs} ms`));
    }, timeoutMs);
    timer.unref();
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', reject);
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/**
 * A stream to a tunnel on another node, usable at once like a tunnel stream (the HTTP entry
 * point writes its request into it): what is written waits until the node has answered; a
 * node that refuses, or no node at all, ends it with an error.
 */
export class ForwardStream extends Duplex {
  #socket: net.Socket | undefined;
  /** The node that took the request (once it answered). */
  node: string | undefined;
  #queue: Array<{ chunk: Buffer; cb: (err?: Error | null) => void }> = [];
  #ended = false;

  constructor(result: Promise<ForwardResult>) {
    super({ allowHalfOpen: true });
    result.then(
      (r) => {
        if (r.status !== STATUS_OK || !r.socket) this.destroy(new Error(`no server of the fleet took the request (status ${r.status})`));
        else {
          this.node = r.node;
          this.#attach(r.socket);
        }
      },
      (err: Error) => this.destroy(err),
    );
  }

  #attach(socket: net.Socket): void {
    if (this.destroyed) {
      destroy(socket);
      return;
    }
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => {
      if (!this.destroyed) this.destroy(this.readableEnded ? undefined : new Error('forwarded connection closed'));
    });
    for (const { chunk, cb } of this.#queue.splice(0)) socket.write(chunk, cb);
    if (this.#ended) socket.end();
  }

  override _read(): void {
    this.#socket?.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.#socket) this.#socket.write(chunk, cb);
    else this.#queue.push({ chunk, cb });
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.#socket) this.#socket.end();
    else this.#ended = true;
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    destroy(this.#socket);
    this.#queue.length = 0;
    cb(err);
  }
}

/**
 * The entry point's hook for a route with no connector here: a stream to the server of the
 * fleet that holds the tunnel; undefined when this server has a connector or no service
 * discovery (the caller opens a local stream, or fails as without a fleet).
 */
export function remoteStream(
  server: { readonly forward: Forwarder | undefined; readonly pool: Pick<TunnelPool, 'select'> },
  r: ForwardRequest,
  log: Logger,
): Duplex | undefined {
  if (!server.forward || server.pool.select(r.tunnelId, r.network) !== undefined) return undefined;
  return server.forward.stream(r, log);
}
