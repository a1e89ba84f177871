/**
 * What `GET /status` and `GET /events` report: a snapshot of the running app (services and
 * their listeners, tunnels and their connectors, public names) and a feed of changes
 * (connector up/down, name claims) taken from the tunnel pools' events.
 */
import { EventEmitter } from 'node:events';
import type { App, ReloadResult } from '../app/app';
import type { ConnectorEntry } from '../handler/tunnel/pool';

export interface ConnectorStatus {
  id: string;
  network: 'tcp' | 'udp';
  /** The client's address as the server saw it. */
  client: string;
  weight: number;
  /** When the BIND completed (ISO 8601). */
  since: string;
  streams: number;
  /** Stream payload sent to / received from the client over its session. */
  bytesOut: number;
  bytesIn: number;
  draining: boolean;
  /** Public names held (public mode). */
  names: string[];
}

export interface StatusSnapshot {
  time: string;
  ready: boolean;
  services: Array<{
    name: string;
    addr: string;
    listener: string;
    handler: string;
    connections: number;
    /** Client services (rtcp/rudp): whether the tunnel session is up. */
    tunnelBound?: boolean;
  }>;
  tunnels: Array<{ service: string; id: string; connectors: ConnectorStatus[] }>;
  names: Array<{ service: string; name: string; host: string; tunnelId: string; holders: number; expiresAt?: string }>;
  /** Revoked tunnel IDs (abuse controls): their BINDs are refused until restored. */
  revoked: Array<{ service: string; tunnelId: string; since: string; reason: string }>;
  /** Blocked public names (abuse controls): no BIND gets them until unblocked. */
  blockedNames: Array<{ service: string; name: string; host: string; since: string; reason: string }>;
  /** Each entry point: connections open, finished and failed, and their bytes. */
  entryPoints: Array<{
    service: string;
    name: string;
    addr: string;
    open: number;
    connections: number;
    failed: number;
    inputBytes: number;
    outputBytes: number;
  }>;
  /** HTTP requests answered at each tunnel service's entry points, by status code ("upgrade": WebSocket). */
  requests: Array<{ service: string; byCode: Record<string, number> }>;
  /** Service discovery of each tunnel service that has it. */
  sd: Array<{ service: string; node: string; connectors: number; registered: number; storeDown: boolean }>;
}

/** One event of `/events`: its SSE name and JSON data. */
export interface StatusEvent {
  event:
    | 'connector-up'
    | 'connector-down'
    | 'name-claim'
    | 'name-release'
    | 'reload'
    // Abuse controls, from the web API (controls.ts).
    | 'connector-disconnect'
    | 'tunnel-revoke'
    | 'tunnel-restore'
    | 'name-free'
    | 'name-block'
    | 'name-unblock';
  data: Record<string, unknown>;
}

function connectorStatus(c: ConnectorEntry): ConnectorStatus {
  return {
    id: c.id,
    network: c.network,
    client: c.remote,
    weight: c.weight,
    since: new Date(c.createdAt).toISOString(),
    streams: c.streams,
    bytesOut: c.session.bytesSent ?? 0,
    bytesIn: c.session.bytesReceived ?? 0,
    draining: c.draining,
    names: [...c.names],
  };
}

export async function statusSnapshot(app: App): Promise<StatusSnapshot> {
  const cfgs = app.config.services ?? [];
  const built = app.built;
  const services = built.services.map((s, i) => {
    const cfg = cfgs.find((c) => c.name === s.name) ?? cfgs[i];
    const listener = cfg?.listener?.type ?? 'tcp';
    const rl = built.reverseListeners.find((r) => r === s.listener);
    return {
      name: s.name,
      addr: s.address(),
      listener,
      handler: cfg?.handler?.type ?? 'auto',
      connections: s.activeConnections,
      ...(rl ? { tunnelBound: rl.bound } : {}),
    };
  });
  const tunnels: StatusSnapshot['tunnels'] = [];
  const names: StatusSnapshot['names'] = [];
  const revoked: StatusSnapshot['revoked'] = [];
  const blockedNames: StatusSnapshot['blockedNames'] = [];
  const entryPoints: StatusSnapshot['entryPoints'] = [];
  const sd: StatusSnapshot['sd'] = [];
  const requests: StatusSnapshot['requests'] = [];
  for (const [service, h] of built.tunnelHandlers) {
    requests.push({ service, byCode: Object.fromEntries(h.server.requestsByCode) });
    for (const ep of h.entryPoints) {
      const s = ep.service;
      entryPoints.push({ service, name: s.name, addr: s.address(), open: s.activeConnections, ...s.totals });
    }
    if (h.server.sd) sd.push({ service, ...h.server.sd.snapshot() });
    for (const [tunnelId, r] of h.server.revoked) revoked.push({ service, tunnelId, since: new Date(r.since).toISOString(), reason: r.reason });
    const pn = h.server.publicNames;
    for (const b of pn?.blocked() ?? []) {
      blockedNames.push({ service, name: b.name, host: pn!.hostFor(b.name), since: new Date(b.since).toISOString(), reason: b.reason });
    }
    for (const [id, list] of h.server.pool.snapshot()) tunnels.push({ service, id, connectors: list.map(connectorStatus) });
    for (const n of h.server.publicNames?.snapshot() ?? []) {
      const { expiresAt, ...rest } = n;
      names.push({ service, ...rest, ...(expiresAt !== undefined ? { expiresAt: new Date(expiresAt).toISOString() } : {}) });
    }
  }
  const { ready } = await app.readiness();
  return { time: new Date().toISOString(), ready, services, tunnels, names, revoked, blockedNames, entryPoints, requests, sd };
}

/**
 * The feed of `/events`: one listener per tunnel pool, shared by every subscriber, and the
 * app's reload results (`reload`: ok, trigger, added, changed, removed, unchanged, error).
 * After a reload the feed follows the tunnel pools of the new set of services. `close()`
 * detaches it.
 */
export class StatusFeed extends EventEmitter<{ event: [StatusEvent] }> {
  readonly #detach: Array<() => void> = [];
  readonly #app: App;
  readonly #onReload: (r: ReloadResult) => void;

  constructor(app: App) {
    super();
    this.setMaxListeners(0);
    this.#app = app;
    this.#onReload = (r) => {
      if (r.ok) this.#attach();
      this.emit('event', { event: 'reload', data: { ...r } });
    };
    app.events.on('reload', this.#onReload);
    this.#attach();
  }

  /** Follows the pools of the app's current tunnel handlers. */
  #attach(): void {
    for (const d of this.#detach.splice(0)) d();
    for (const [service, h] of this.#app.built.tunnelHandlers) {
      const pool = h.server.pool;
      const up = (c: ConnectorEntry): void => {
        this.emit('event', { event: 'connector-up', data: { service, tunnelId: c.tunnelId, ...connectorStatus(c) } });
        for (const name of c.names) {
          const host = h.server.publicNames?.hostFor(name) ?? name;
          this.emit('event', { event: 'name-claim', data: { service, tunnelId: c.tunnelId, connector: c.id, name, host } });
        }
      };
      const down = (c: ConnectorEntry): void => {
        this.emit('event', { event: 'connector-down', data: { service, tunnelId: c.tunnelId, ...connectorStatus(c) } });
        for (const name of c.names) {
          this.emit('event', { event: 'name-release', data: { service, tunnelId: c.tunnelId, connector: c.id, name } });
        }
      };
      pool.events.on('up', up);
      pool.events.on('down', down);
      this.#detach.push(() => {
        pool.events.off('up', up);
        pool.events.off('down', down);
      });
    }
  }

  close(): void {
    this.#app.events.off('reload', this.#onReload);
    for (const d of this.#detach.splice(0)) d();
    this.removeAllListeners();
  }
}
