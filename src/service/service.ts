/**
 * A service = listener + handler. The accept loop owns each accepted connection until it hands
 * it to the handler, logs one line when it opens and one when it closes (debug level, with
 * duration and bytes), and tracks in-flight connections so `close()` can drain them within a
 * grace period before destroying what is left.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { connLogFields, lazyChild } from '../observe/logger';
import type { Conn, StreamListener } from '../core/transport';
import { Later, type Handler, type HandleResult } from '../core/handler';
import { destroy } from '../io/pipe';
import { isPeerGone } from '../core/errors';
import { NOOP_METRICS, type ServiceMetrics } from '../observe/service-metrics';

const SID_PREFIX = randomBytes(4).toString('hex');
let sidCounter = 0;
/** A short, unique per-process connection id (gost uses an xid). */
export function newSid(): string {
  sidCounter = (sidCounter + 1) >>> 0;
  // One flat string (see joinHostPort): every connection keeps its sid.
  return [SID_PREFIX, sidCounter.toString(36).padStart(6, '0')].join('');
}

/** `local` of a connection's log fields (conn.local may cost a system call). */
function connLocal(b: Record<string, unknown>, conn: Conn): void {
  b.local = conn.local;
}

const kFinished = Symbol('finished');

/**
 * One connection of a service: the Later its handler settles, carrying what the service needs
 * when it does (one object per connection, however long it lasts).
 */
class Tracked extends Later {
  constructor(
    readonly service: Service,
    readonly conn: Conn,
    readonly log: Logger,
    readonly started: number,
  ) {
    super();
  }

  protected override done(result: HandleResult | void, err: unknown, failed: boolean): void {
    this.service[kFinished](this, failed ? err : result, failed);
  }
}

export interface ServiceOptions {
  name: string;
  listener: StreamListener;
  handler: Handler;
  listenerType: string;
  handlerType: string;
  /** Network shown in the "listening on" line. */
  network: string;
  logger: Logger;
  metrics?: ServiceMetrics;
  /**
   * The fields the service adds to `logger` for its lines (default: kind=service, the service
   * name, the listener and handler types).
   */
  logFields?: Record<string, unknown>;
  /** The line logged once it listens (default "listening on <address>/<network>"). */
  announce?: (address: string) => string;
}

/** What a service has served since it started (finished connections). */
export interface ServiceTotals {
  connections: number;
  failed: number;
  inputBytes: number;
  outputBytes: number;
}

export class Service {
  readonly #totals: ServiceTotals = { connections: 0, failed: 0, inputBytes: 0, outputBytes: 0 };
  readonly name: string;
  readonly #listener: StreamListener;
  readonly #handler: Handler;
  readonly #logger: Logger;
  readonly #network: string;
  readonly #conns = new Set<Tracked>();
  readonly #metrics: ServiceMetrics;
  readonly #announce: ((address: string) => string) | undefined;
  #closing = false;
  #closed = false;

  constructor(opts: ServiceOptions) {
    this.name = opts.name;
    this.#listener = opts.listener;
    this.#handler = opts.handler;
    this.#network = opts.network;
    this.#metrics = opts.metrics ?? NOOP_METRICS;
    this.#announce = opts.announce;
    this.#logger = opts.logger.child(
      opts.logFields ?? {
        kind: 'service',
        service: opts.name,
        listener: opts.listenerType,
        handler: opts.handlerType,
      },
    );
  }

  get listener(): StreamListener {
    return this.#listener;
  }

  get logger(): Logger {
    return this.#logger;
  }

  address(): string {
    return this.#listener.address();
  }

  get activeConnections(): number {
    return this.#conns.size;
  }

  /** Connections this service has finished since it started, with their bytes (for /status). */
  get totals(): Readonly<ServiceTotals> {
    return this.#totals;
  }

  async start(): Promise<void> {
    await this.#listener.listen((conn) => this.#onConn(conn));
    try {
      await this.#handler.start?.();
    } catch (err) {
      await this.#listener.close();
      throw err;
    }
    const addr = this.#listener.address();
    this.#logger.info(this.#announce ? this.#announce(addr) : `listening on ${addr}/${this.#network}`);
  }

  #onConn(conn: Conn): void {
    if (this.#closing) {
      destroy(conn.stream);
      return;
    }
    const log = lazyChild(this.#logger, connLogFields(newSid(), conn.remote, conn, connLocal));
    const t = new Tracked(this, conn, log, Date.now());
    this.#conns.add(t);
    if (log.isLevelEnabled('debug')) log.debug(`${conn.remote} <> ${conn.local}`);
    this.#metrics.requestStarted(this.name);
    let handled: Promise<HandleResult | void | Later> | Later;
    try {
      handled = this.#handler.handle(conn, log, t);
    } catch (err) {
      t.reject(err);
      return;
    }
    if (handled === t) return;
    Promise.resolve(handled).then(
      (r) => {
        if (r === t) return;
        if (r instanceof Later) r.onSettled((x, err, failed) => (failed ? t.reject(err) : t.resolve(x)));
        else t.resolve(r);
      },
      (err: unknown) => t.reject(err),
    );
  }

  /** The handler is done with a connection (`outcome`: its result, or what it threw). */
  [kFinished](t: Tracked, outcome: unknown, failed: boolean): void {
    const { conn, log, started } = t;
    if (failed) {
      if (isPeerGone(outcome)) log.debug(`${(outcome as Error).message}`);
      else log.error(`${(outcome as Error)?.message ?? String(outcome)}`);
    }
    const result = failed ? undefined : (outcome as HandleResult | void);
    destroy(conn.stream);
    this.#conns.delete(t);
    const totals = this.#totals;
    totals.connections++;
    if (failed) totals.failed++;
    totals.inputBytes += result?.inputBytes ?? 0;
    totals.outputBytes += result?.outputBytes ?? 0;
    this.#metrics.requestFinished(this.name, Date.now() - started, result?.inputBytes ?? 0, result?.outputBytes ?? 0, failed);
    if (log.isLevelEnabled('debug')) {
      log.debug(
        {
          duration: Date.now() - started,
          inputBytes: result?.inputBytes ?? 0,
          outputBytes: result?.outputBytes ?? 0,
        },
        `${conn.remote} >< ${conn.local}`,
      );
    }
  }

  /**
   * Stops accepting at once, the handler's own listeners (entry points) included, and lets the
   * handler close what is idle. Returns when the listening sockets are closed.
   */
  async stopAccepting(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    await this.#listener.close();
    this.#handler.drain?.();
  }

  /**
   * Stops accepting (see stopAccepting), waits up to `graceMs` for in-flight connections to
   * finish, then destroys the rest and stops what the handler started.
   */
  async close(graceMs = 0): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.stopAccepting();
    const deadline = Date.now() + graceMs;
    while ((this.#conns.size > 0 || (this.#handler.inFlight?.() ?? 0) > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const c of this.#conns) destroy(c.conn.stream);
    this.#conns.clear();
    await this.#handler.close?.();
  }
}
