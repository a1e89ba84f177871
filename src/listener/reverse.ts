/**
 * `rtcp` / `rudp` listeners: the client behind NAT. Instead of listening locally, the listener
 * BINDs through its chain to a tunnel server and yields the streams the server opens, each as a
 * `Conn` whose `remote` is the original client and `target` the host it asked for (the stream
 * header, protocol.md §6). One listener = one transport connection = one connector.
 *
 * The tunnel is kept up: when the bind fails or the session dies, it retries with exponential
 * backoff (1 s, 2 s, 4 s, capped) and ±25 % jitter, so many clients do not reconnect in lock
 * step; each failure is logged once per attempt. Stream headers are read per stream, in
 * parallel, with a deadline: one bad stream never takes the session down (gost's would).
 *
 * `drain()` (graceful shutdown) tells a burrow server to stop routing new streams here by
 * opening one stream towards it, and resolves once the server has closed that stream: streams
 * it opened before arrive ahead of that close on the same connection and are still served.
 * `close()` then refuses new streams while in-flight ones finish.
 */
import type { Duplex } from 'node:stream';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { Conn, StreamListener } from '../core/transport';
import type { AcceptSession, Network } from '../core/handler';
import type { Chain } from '../chain/chain';
import { StreamHeaderReader } from '../protocol/stream-header';
import { destroy, errorsBeforeRelay } from '../io/pipe';
import { joinHostPort, splitHostPort } from '../core/addr';
import { DEFAULTS } from '../core/config';
import type { ClientTunnelCounts } from '../observe/service-metrics';

export interface ReverseListenerOptions {
  addr: string;
  network: Network;
  chain: Chain;
  logger: Logger;
  headerTimeoutMs?: number;
  /** Called after each successful bind (the CLI prints the public URL). */
  onBound?: (info: BoundInfo) => void;
}

export interface BoundInfo {
  addr: string;
  /** The endpoint name: the first label of the answered host. */
  endpoint: string;
  /** The full public host when the server answered one (`<endpoint>.<domain>`), else undefined. */
  publicHost?: string;
  connectorId: string;
  /** The server terminates TLS for `publicHost`: its URL is https://. */
  https?: boolean;
  tunnelId?: string;
  network: Network;
}

/**
 * Splits the host a server answered: gost answers the bare endpoint ("134c714b65d54a4f") or
 * a custom name ("hello"); a burrow server in public mode answers `<endpoint>.<domain>`.
 */
export function splitBoundHost(host: string): { endpoint: string; publicHost?: string } {
  if (!host.includes('.') || isIP(host)) return { endpoint: host };
  return { endpoint: host.slice(0, host.indexOf('.')), publicHost: host };
}

export interface ReverseListener extends StreamListener {
  /** Resolves when the server has acknowledged the drain notice, or after `timeoutMs`. */
  drain(timeoutMs?: number): Promise<void>;
  readonly bound: boolean;
  /** Running totals for the client-side metrics. */
  counts(): ClientTunnelCounts;
}

export function backoffDelayMs(attempt: number, random = Math.random): number {
  const base = Math.min(DEFAULTS.reconnectMinDelayMs * 2 ** Math.max(0, attempt), 4000);
  return Math.round(base * (0.75 + random() * 0.5));
}

function readStreamHeader(stream: Duplex, timeoutMs: number): Promise<{ src?: string; dst?: string }> {
  return new Promise((resolve, reject) => {
    const reader = new StreamHeaderReader();
    const timer = setTimeout(() => done(new Error(`no stream header within ${timeoutMs} ms`)), timeoutMs);
    const done = (err?: Error, h?: { src?: string; dst?: string }): void => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onErr);
      if (err) reject(err);
      else resolve(h!);
    };
    const onData = (chunk: Buffer): void => {
      let r;
      try {
        r = reader.push(chunk);
      } catch (err) {
        done(err as Error);
        return;
      }
      if (r) {
        stream.pause();
        if (r.rest.length > 0) stream.unshift(r.rest);
        done(undefined, { src: r.src, dst: r.dst });
      }
    };
    const onEnd = (): void => done(new Error('stream ended before its header'));
    const onErr = (err: Error): void => done(err);
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onErr);
  });
}

export function createReverseListener(opts: ReverseListenerOptions): ReverseListener {
  const headerTimeoutMs = opts.headerTimeoutMs ?? DEFAULTS.relayHandshakeTimeoutMs;
  let closed = false;
  let draining = false;
  let session: AcceptSession | undefined;
  let boundAddr = '';
  let wake: (() => void) | undefined;
  const abort = new AbortController();
  const log = opts.logger;
  /** Streams handed out (or having their header read) that have not closed yet. */
  const live = new Set<Duplex>();
  /** Sessions established and streams received so far (metrics). */
  let sessions = 0;
  let streams = 0;
  /** Set by close() while streams are in flight: closes the session after the last one. */
  let closeWhenIdle: (() => void) | undefined;

  // One listener for every stream (`this` is the stream that closed).
  function onStreamClose(this: Duplex): void {
    live.delete(this);
    if (live.size === 0) closeWhenIdle?.();
  }

  function serve(s: AcceptSession, onConn: (conn: Conn) => void): void {
    s.on('stream', (stream: Duplex) => {
      if (closed) {
        destroy(stream);
        return;
      }
      live.add(stream);
      streams++;
      stream.on('close', onStreamClose);
      // Errors are reported by the handler that owns the stream (a relay takes this over).
      stream.on('error', errorsBeforeRelay);
      readStreamHeader(stream, headerTimeoutMs).then(
        (h) => {
          onConn({
            stream,
            local: boundAddr,
            remote: h.src ?? '',
            target: h.dst,
            datagram: false,
          });
        },
        (err: Error) => {
          log.warn(`stream header: ${err.message}`);
          destroy(stream);
        },
      );
    });
  }

  async function loop(onConn: (conn: Conn) => void): Promise<void> {
    let attempt = 0;
    while (!closed) {
      try {
        const r = await opts.chain.bind({ network: opts.network, bindAddr: opts.addr }, abort.signal);
        if (closed) {
          r.session.close();
          return;
        }
        session = r.session;
        sessions++;
        boundAddr = r.addr;
        attempt = 0;
        const nlog = opts.chain.nodeLogger(r.hop, r.node);
        const { tunnelId, weight } = r.node.connector as { tunnelId?: string; weight?: number };
        const { endpoint, publicHost } = splitBoundHost(r.endpoint);
        let port = 0;
        try {
          port = splitHostPort(r.addr).port;
        } catch {
          /* keep 0 */
        }
        nlog.info(
          { endpoint, tunnel: tunnelId, weight },
          `create tunnel on ${joinHostPort(endpoint, port)}/${opts.network} OK, tunnel=${tunnelId}, connector=${r.connectorId}, weight=${weight}`,
        );
        opts.onBound?.({ addr: r.addr, endpoint, publicHost, connectorId: r.connectorId, https: r.https, tunnelId, network: opts.network });
        serve(r.session, onConn);
        await new Promise<void>((resolve) => {
          if (r.session.isClosed) resolve();
          else r.session.on('close', () => resolve());
        });
        session = undefined;
        // Draining: the process is stopping, a new session would only attract new streams.
        if (closed || draining) return;
        const d = backoffDelayMs(0);
        log.warn(`accept: tunnel session closed, retrying in ${d}ms`);
        await sleep(d);
      } catch (err) {
        if (closed) return;
        const d = backoffDelayMs(attempt++);
        log.warn(`accept: ${(err as Error).message}, retrying in ${d}ms`);
        await sleep(d);
      }
    }
  }

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      let t: NodeJS.Timeout | undefined;
      function done(): void {
        if (t) clearTimeout(t);
        wake = undefined;
        resolve();
      }
      t = setTimeout(done, ms);
      wake = done;
    });
  }

  let drained: Promise<void> | undefined;
  function drain(timeoutMs = 2_000): Promise<void> {
    if (drained) return drained;
    draining = true;
    const s = session;
    if (!s || s.isClosed) return (drained = Promise.resolve());
    drained = new Promise<void>((resolve) => {
      let notice: Duplex;
      try {
        notice = s.openStream();
      } catch {
        resolve(); // session already gone
        return;
      }
      const timer = setTimeout(() => done(), timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      // The server's answer is to close the notice stream (burrow and gost servers alike).
      notice.on('error', done);
      notice.once('end', done);
      notice.once('close', done);
      notice.resume();
      notice.end();
    });
    return drained;
  }

  return {
    get bound() {
      return session !== undefined && !session.isClosed;
    },
    counts() {
      return { sessions, bound: session !== undefined && !session.isClosed, streams, openStreams: live.size };
    },
    async listen(onConn) {
      // Validate the bind address now, bind lazily in the background (as gost).
      splitHostPort(opts.addr);
      void loop(onConn);
    },
    address() {
      return boundAddr || opts.addr || joinHostPort('', 0);
    },
    drain,
    async close() {
      if (closed) return;
      void drain(0);
      closed = true;
      abort.abort();
      wake?.();
      // In-flight streams keep the session until they finish (the service destroys what is
      // left when its grace period ends); closing it now would cut them off mid-transfer.
      const s = session;
      if (!s) return;
      if (live.size === 0) s.close();
      else closeWhenIdle = () => s.close();
    },
  };
}

/**
 * Several reverse listeners as one (`tunnel.all`: a session to each server of the node list):
 * each binds and reconnects on its own, all streams go to the same service. Bound while any
 * one is.
 */
export function combineReverseListeners(list: readonly ReverseListener[]): ReverseListener {
  if (list.length === 1) return list[0]!;
  return {
    get bound() {
      return list.some((l) => l.bound);
    },
    async listen(onConn) {
      for (const l of list) await l.listen(onConn);
    },
    address() {
      return list.find((l) => l.bound)?.address() ?? list[0]!.address();
    },
    async drain(timeoutMs) {
      await Promise.all(list.map((l) => l.drain(timeoutMs)));
    },
    async close() {
      await Promise.all(list.map((l) => l.close()));
    },
    counts() {
      const all = list.map((l) => l.counts());
      return {
        sessions: all.reduce((n, c) => n + c.sessions, 0),
        bound: all.some((c) => c.bound),
        streams: all.reduce((n, c) => n + c.streams, 0),
        openStreams: all.reduce((n, c) => n + c.openStreams, 0),
      };
    },
  };
}
