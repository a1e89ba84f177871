/**
 * The tunnel registry on the server: tunnel ID → connectors (one per BIND, each an smux
 * session), and the selection rules of behavior.md §3:
 *
 * - skip closed and draining connectors and connectors of the other network (tcp/udp);
 * - weight 0 counts as 1; the first weight-255 connector clears everything collected so far and
 *   from then on only weight-255 connectors are collected; pick weighted-random;
 * - up to 3 attempts to open a stream, each with a fresh pick.
 *
 * Deviations from gost (documented in the README): a tunnel with exactly one connector is not
 * handed traffic of the other network (gost does, and the client then mishandles it); dead
 * sessions are dropped from the pool at once rather than on the next 15 s `tunnel.ttl` sweep.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { BurrowError } from '../../core/errors';

/** What the pool needs of a multiplexed session. */
export interface PoolSession {
  openStream(): Duplex;
  readonly isClosed: boolean;
  close(): void;
  /** Stream payload bytes sent to / received from the client (metrics), when counted. */
  readonly bytesSent?: number;
  readonly bytesReceived?: number;
}

export type Network = 'tcp' | 'udp';

/** The connector each open stream was opened on (set by `TunnelPool.openStream`). */
const streamConnector = new WeakMap<Duplex, ConnectorEntry>();

/** The connector a stream was opened on, for streams opened by a pool. */
export function connectorOf(stream: Duplex): ConnectorEntry | undefined {
  return streamConnector.get(stream);
}

/** A stream of a connector closed: it no longer counts (one listener shared by every stream). */
function releaseStream(this: Duplex): void {
  const entry = streamConnector.get(this);
  if (entry === undefined) return;
  entry.idle.delete(this);
  if (entry.openStreams.delete(this)) {
    entry.streams--;
    if (entry.closeWhenIdle && entry.streams <= 0) entry.session.close();
  }
}

export class ConnectorEntry {
  draining = false;
  /** Server shutdown: the session closes once its last stream has (see TunnelPool.shutdown). */
  closeWhenIdle = false;
  streams = 0;
  /** Streams opened on this connector and not closed yet. */
  readonly openStreams = new Set<Duplex>();
  /**
   * Open streams kept idle for a later request (entry point keep-alive), marked and unmarked by
   * their owner through `setIdle`: they give way to new streams and go first when draining.
   */
  readonly idle = new Set<Duplex>();
  readonly createdAt = Date.now();
  /** Public names this connector holds (public mode), for status readers. */
  names: readonly string[] = [];
  constructor(
    readonly id: string,
    readonly tunnelId: string,
    readonly network: Network,
    readonly weight: number,
    readonly session: PoolSession,
    readonly remote: string,
  ) {}

  get usable(): boolean {
    return !this.draining && !this.session.isClosed;
  }

  /**
   * Stops routing new streams here; streams kept idle for reuse (entry point keep-alive) are
   * closed now, so no new request goes to a draining client. Returns false if already draining.
   */
  drain(): boolean {
    if (this.draining) return false;
    this.draining = true;
    for (const s of [...this.idle]) s.destroy();
    return true;
  }

  /** Marks an open stream of this connector as idle (kept for a later request) or busy. */
  setIdle(stream: Duplex, idle: boolean): void {
    if (!idle) this.idle.delete(stream);
    else if (this.openStreams.has(stream)) this.idle.add(stream);
  }

  /** An idle stream of this connector (kept for a later request), if any. */
  idleStream(): Duplex | undefined {
    for (const s of this.idle) return s;
    return undefined;
  }

  /**
   * Closes an idle stream to make room for a new one under the per-connector limit: it stops
   * counting now. Returns false if there was none.
   */
  reclaimIdle(): boolean {
    const s = this.idleStream();
    if (s === undefined) return false;
    this.openStreams.delete(s);
    this.idle.delete(s);
    this.streams--;
    s.destroy();
    return true;
  }
}

export interface PoolLimits {
  /** Most tunnels the pool holds (0 = no limit). */
  maxTunnels: number;
  /** Most connectors per tunnel (0 = no limit). */
  maxConnectorsPerTunnel: number;
  /** Most concurrent streams per connector (0 = no limit). */
  maxStreamsPerConnector: number;
}

export const DEFAULT_POOL_LIMITS: PoolLimits = {
  maxTunnels: 0,
  maxConnectorsPerTunnel: 0,
  maxStreamsPerConnector: 0,
};

/**
 * What the pool tells observers (the web API's status and events): `up` after a connector is
 * added, `down` after it is removed; both with the ConnectorEntry. Listeners must not throw.
 */
export interface PoolEvents {
  up: [entry: ConnectorEntry];
  down: [entry: ConnectorEntry];
}

export class TunnelPool {
  readonly #tunnels = new Map<string, ConnectorEntry[]>();
  readonly limits: PoolLimits;
  /** Connector up/down notices (read-only observers; the pool works the same without any). */
  readonly events = new EventEmitter<PoolEvents>();
  /** Random source in [0,1); replaceable for deterministic tests of the weighting. */
  random: () => number = Math.random;

  constructor(limits: Partial<PoolLimits> = {}) {
    this.limits = { ...DEFAULT_POOL_LIMITS, ...limits };
  }

  /** Throws BURROW_ERR_LIMIT when one more connector for the tunnel would exceed a limit. */
  assertCanAdd(tunnelId: string): void {
    const list = this.#tunnels.get(tunnelId);
    if (!list) {
      if (this.limits.maxTunnels > 0 && this.#tunnels.size >= this.limits.maxTunnels) {
        throw new BurrowError('BURROW_ERR_LIMIT', `tunnel limit reached (${this.limits.maxTunnels} tunnels)`);
      }
    } else if (this.limits.maxConnectorsPerTunnel > 0 && list.length >= this.limits.maxConnectorsPerTunnel) {
      throw new BurrowError(
        'BURROW_ERR_LIMIT',
        `connector limit reached for tunnel ${tunnelId} (${this.limits.maxConnectorsPerTunnel} connectors)`,
      );
    }
  }

  /** Registers a connector; throws BURROW_ERR_LIMIT when a pool limit would be exceeded. */
  add(entry: ConnectorEntry): void {
    this.assertCanAdd(entry.tunnelId);
    let list = this.#tunnels.get(entry.tunnelId);
    if (!list) {
      list = [];
      this.#tunnels.set(entry.tunnelId, list);
    }
    list.push(entry);
    this.events.emit('up', entry);
  }

  /** Removes a connector (on session death); drops the tunnel when it has none left. */
  remove(entry: ConnectorEntry): boolean {
    const list = this.#tunnels.get(entry.tunnelId);
    if (!list) return false;
    const i = list.indexOf(entry);
    if (i < 0) return false;
    list.splice(i, 1);
    if (list.length === 0) this.#tunnels.delete(entry.tunnelId);
    this.events.emit('down', entry);
    return true;
  }

  connectors(tunnelId: string): readonly ConnectorEntry[] {
    return this.#tunnels.get(tunnelId) ?? [];
  }

  get tunnelCount(): number {
    return this.#tunnels.size;
  }

  get connectorCount(): number {
    let n = 0;
    for (const l of this.#tunnels.values()) n += l.length;
    return n;
  }

  /** Every tunnel ID with its connectors (a copy: status readers). */
  snapshot(): Array<[string, readonly ConnectorEntry[]]> {
    return [...this.#tunnels].map(([id, list]) => [id, [...list]]);
  }

  hasTunnel(tunnelId: string): boolean {
    return this.#tunnels.has(tunnelId);
  }

  /** Picks a connector for the network, or undefined (behavior.md §3.2). */
  select(tunnelId: string, network: Network): ConnectorEntry | undefined {
    const list = this.#tunnels.get(tunnelId);
    if (!list || list.length === 0) return undefined;
    const limit = this.limits.maxStreamsPerConnector;
    let candidates: ConnectorEntry[] = [];
    let exclusive = false;
    for (const c of list) {
      if (!c.usable || c.network !== network) continue;
      // Idle streams (kept for later requests) give way to new ones.
      if (limit > 0 && c.streams >= limit && c.idleStream() === undefined) continue;
      const w = c.weight === 0 ? 1 : c.weight;
      if (w === 255) {
        if (!exclusive) {
          exclusive = true;
          candidates = [];
        }
        candidates.push(c);
      } else if (!exclusive) {
        candidates.push(c);
      }
    }
    if (candidates.length === 0) return undefined;
    if (candidates.length === 1) return candidates[0];
    let total = 0;
    for (const c of candidates) total += c.weight === 0 ? 1 : c.weight;
    let r = this.random() * total;
    for (const c of candidates) {
      r -= c.weight === 0 ? 1 : c.weight;
      if (r < 0) return c;
    }
    return candidates[candidates.length - 1];
  }

  /**
   * Opens a stream to a connector of the tunnel: up to `attempts` picks (default 3, as gost),
   * the first of them `first` when given (a connector already picked by `select`).
   * Throws BURROW_ERR_TUNNEL_UNAVAILABLE when none works.
   */
  openStream(tunnelId: string, network: Network, attempts = 3, first?: ConnectorEntry): { stream: Duplex; entry: ConnectorEntry } {
    let lastErr: unknown;
    for (let i = 0; i < attempts; i++) {
      const entry = i === 0 && first?.usable ? first : this.select(tunnelId, network);
      if (!entry) break;
      try {
        const limit = this.limits.maxStreamsPerConnector;
        if (limit > 0 && entry.streams >= limit) entry.reclaimIdle();
        const stream = entry.session.openStream();
        entry.streams++;
        entry.openStreams.add(stream);
        streamConnector.set(stream, entry);
        stream.on('close', releaseStream);
        return { stream, entry };
      } catch (err) {
        lastErr = err;
        if (entry.session.isClosed) this.remove(entry);
      }
    }
    throw new BurrowError('BURROW_ERR_TUNNEL_UNAVAILABLE', `tunnel ${tunnelId} not available`, { cause: lastErr });
  }

  /**
   * Server shutdown, first step: no connector gets new streams, idle streams kept for reuse
   * close, and a session without open streams closes now (its client reconnects, to the next
   * server process); a session with streams closes when its last one does.
   */
  shutdown(): void {
    for (const list of this.#tunnels.values()) {
      for (const c of [...list]) {
        c.drain();
        c.closeWhenIdle = true;
        if (c.streams <= 0) c.session.close();
      }
    }
  }

  /** Closes every session (server shutdown, once the grace period is over). */
  closeAll(): void {
    for (const list of this.#tunnels.values()) for (const c of [...list]) c.session.close();
    this.#tunnels.clear();
  }
}
