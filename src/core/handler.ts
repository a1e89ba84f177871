/**
 * Handlers do a service's job with one accepted connection; connectors speak a protocol over a
 * dialed transport. Ownership: `handle` owns `conn.stream` and destroys it before it settles.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Conn } from './transport';

export interface HandleResult {
  /** Bytes read from the accepted connection. */
  inputBytes: number;
  /** Bytes written to the accepted connection. */
  outputBytes: number;
}

/** How a `Later` settles: with a result, or with what failed. */
export type LaterCallback = (result: HandleResult | void, err: unknown, failed: boolean) => void;

/**
 * A handler's result that comes later, without a promise. A splice of an idle connection can
 * last for hours, and what waits on it should be one object: a chain of promises from the
 * relay up to the service (the relay's, each `.then`, the async handler's own) keeps about
 * 0.7 KiB of promises, reactions and closures per connection. The service makes one per
 * connection (a subclass that carries its own bookkeeping) and passes it to `handle`, which
 * settles it, and returns it, for a connection that goes on after `handle` returns. The first
 * `resolve` or `reject` wins.
 */
export class Later {
  #cb: LaterCallback | undefined;
  /** 0 pending, 1 resolved, 2 rejected. */
  #state = 0;
  #value: unknown;

  resolve(result: HandleResult | void): void {
    this.#settle(1, result);
  }

  reject(err: unknown): void {
    this.#settle(2, err);
  }

  /** Calls `cb` once it has settled (right away if it has). One subscriber. */
  onSettled(cb: LaterCallback): void {
    this.#cb = cb;
    if (this.#state !== 0) this.#fire();
  }

  /** Called once, when it settles; subclasses take it over. */
  protected done(result: HandleResult | void, err: unknown, failed: boolean): void {
    const cb = this.#cb;
    if (!cb) return;
    this.#cb = undefined;
    cb(result, err, failed);
  }

  #settle(state: number, value: unknown): void {
    if (this.#state !== 0) return;
    this.#state = state;
    this.#value = value;
    this.#fire();
  }

  #fire(): void {
    if (this.#state === 1) this.done(this.#value as HandleResult | void, undefined, false);
    else this.done(undefined, this.#value, true);
  }
}

export interface Handler {
  /** Starts what the handler owns besides the service listener (e.g. entry points). */
  start?(): Promise<void>;
  /**
   * Handles one connection; destroys `conn.stream` on every path before settling. The result
   * comes as what the promise resolves to, or, for a connection that goes on after `handle`
   * returns (a relay), through `later`: settle it, and return it (or resolve to it).
   */
  handle(conn: Conn, logger: Logger, later: Later): Promise<HandleResult | void | Later> | Later;
  /**
   * Shutdown, first step (the service has stopped accepting): stops accepting on what `start`
   * started (entry points) at once and closes what is idle (idle tunnel sessions, idle
   * keep-alive connections); work in flight goes on.
   */
  drain?(): void;
  /** Connections the handler serves besides the service's own (entry points), still open. */
  inFlight?(): number;
  /** Stops what `start` started; in-flight `handle` calls are the service's to drain. */
  close?(): Promise<void>;
}

export type Network = 'tcp' | 'udp';

export interface ConnectRequest {
  network: Network;
  /** Target "host:port" asked of the far side ("ssh.srv-2.local:0"). */
  dst: string;
  /** The original client's address, reported to the far side. */
  src?: string;
}

export interface BindRequest {
  network: Network;
  /** Requested bind address (":0", "hello", ...). */
  bindAddr: string;
}

/** An accepting multiplexed session, as the reverse listeners consume it. */
export interface AcceptSession {
  on(event: 'stream', cb: (stream: Duplex) => void): unknown;
  on(event: 'close', cb: (err?: Error) => void): unknown;
  close(): void;
  readonly isClosed: boolean;
  /** Opens a stream towards the peer (used for the drain notice). */
  openStream(): Duplex;
}

export interface BindResult {
  session: AcceptSession;
  /** The address the server reports ("134c714b65d54a4f:0"). */
  addr: string;
  /** Host part of `addr`: the endpoint name. */
  endpoint: string;
  connectorId: string;
  /** The server terminates TLS for the answered name (a burrow server's flag on the connector ID). */
  https?: boolean;
}

export interface Connector {
  /** Runs the connect exchange on `conn`; returns the stream that carries the payload. */
  connect(conn: Conn, req: ConnectRequest, signal?: AbortSignal): Promise<Duplex>;
  /** Registers as a reverse endpoint; the conn becomes a session owned by the result. */
  bind?(conn: Conn, req: BindRequest, signal?: AbortSignal): Promise<BindResult>;
}
