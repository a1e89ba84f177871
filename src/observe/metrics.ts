/**
 * Prometheus metrics (`-metrics :9000` or `metrics: {addr, path}`), with gost's metric names so
 * existing dashboards keep working, plus tunnel series (docs/metrics.md). Counters are updated
 * at the seams (the service accept loop, the entry point's HTTP exchanges, the tunnel pool),
 * never in protocol code. With metrics off, services get `NOOP_METRICS` and call sites need no
 * `if`.
 *
 * Per-tunnel series are bounded: a tunnel gets series only while it is live (has a connector)
 * or configured (an ingress rule names it), and at most `maxTunnels` (default 1000) tunnels
 * have series at once; past that, new tunnels are not counted and one warning says so. A
 * tunnel neither live nor configured loses its series `PRUNE_AFTER_MS` after it was last seen.
 * Hosts per tunnel are capped too (`MAX_HOSTS_PER_TUNNEL`, then host="other").
 */
import http from 'node:http';
import client from 'prom-client';
import type { Logger } from 'pino';
import { splitHostPort, joinHostPort } from '../core/addr';

import type { ClientTunnelCounts, ServiceMetrics, TunnelSource } from './service-metrics';

export const DEFAULT_MAX_TUNNELS = 1000;
/** Hosts counted per tunnel before the rest go to host="other". */
export const MAX_HOSTS_PER_TUNNEL = 100;
/** A tunnel neither live nor configured keeps its series this long after last seen. */
const PRUNE_AFTER_MS = 10 * 60_000;

interface TrackedTunnel {
  /** Label pairs of `burrow_tunnel_requests_total` used so far ("host\ncode"). */
  series: Set<string>;
  hosts: Set<string>;
  lastSeen: number;
}

export interface MetricsOptions {
  services: () => number;
  tunnels: () => number;
  connectors: () => number;
  /** Client services (rtcp/rudp) by service name. */
  clients?: () => Array<[string, ClientTunnelCounts]>;
  /** Most tunnels with per-tunnel series (metrics.maxTunnels). */
  maxTunnels?: number;
  /** For the one warning when the cap holds. */
  logger?: Pick<Logger, 'warn'>;
  now?: () => number;
}

/** A readiness answer: `ready` decides the status, the rest is shown as it is. */
export type ReadyCheck = () => Promise<{ ready: boolean }>;

/**
 * `/healthz`: 200 {"status":"ok"} while the process serves HTTP. `/readyz`: 200 or 503 with the
 * readiness as JSON. Shared by the metrics address and the web API.
 */
export async function serveHealth(url: '/healthz' | '/readyz', ready: ReadyCheck, res: http.ServerResponse): Promise<void> {
  const headers = { 'content-type': 'application/json', 'cache-control': 'no-store' };
  if (url === '/healthz') {
    res.writeHead(200, headers).end('{"status":"ok"}\n');
    return;
  }
  try {
    const r = await ready();
    res.writeHead(r.ready ? 200 : 503, headers).end(`${JSON.stringify(r)}\n`);
  } catch (err) {
    res.writeHead(503, headers).end(`${JSON.stringify({ ready: false, error: (err as Error).message })}\n`);
  }
}

export class Metrics implements ServiceMetrics {
  readonly registry = new client.Registry();
  readonly #requests: client.Counter<'service'>;
  readonly #inFlight: client.Gauge<'service'>;
  readonly #duration: client.Histogram<'service'>;
  readonly #input: client.Counter<'service'>;
  readonly #output: client.Counter<'service'>;
  readonly #errors: client.Counter<'service'>;
  readonly #tunnelRequests: client.Counter<'tunnel' | 'host' | 'code'>;
  readonly #tunnelIn: client.Counter<'tunnel'>;
  readonly #tunnelOut: client.Counter<'tunnel'>;
  readonly #tunnelConnectors: client.Gauge<'tunnel'>;
  readonly #sources = new Set<TunnelSource>();
  readonly #tracked = new Map<string, TrackedTunnel>();
  /** Bytes moved by the connectors gone so far, per tracked tunnel. */
  readonly #gone = new Map<string, { in: number; out: number }>();
  /** Bytes reported so far per tracked tunnel (the counters get differences). */
  readonly #reported = new Map<string, { in: number; out: number }>();
  readonly #maxTunnels: number;
  readonly #logger: Pick<Logger, 'warn'> | undefined;
  readonly #now: () => number;
  #capWarned = false;
  #server: http.Server | undefined;

  constructor(opts: MetricsOptions) {
    const r = this.registry;
    this.#maxTunnels = opts.maxTunnels ?? DEFAULT_MAX_TUNNELS;
    this.#logger = opts.logger;
    this.#now = opts.now ?? Date.now;
    client.collectDefaultMetrics({ register: r, prefix: 'burrow_' });
    new client.Gauge({ name: 'gost_services', help: 'Number of services', registers: [r], collect() { this.set(opts.services()); } });
    this.#requests = new client.Counter({ name: 'gost_service_requests_total', help: 'Requests (connections) handled', labelNames: ['service'], registers: [r] });
    this.#inFlight = new client.Gauge({ name: 'gost_service_requests_in_flight', help: 'Requests in flight', labelNames: ['service'], registers: [r] });
    this.#duration = new client.Histogram({
      name: 'gost_service_request_duration_seconds',
      help: 'Request duration',
      labelNames: ['service'],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300],
      registers: [r],
    });
    this.#input = new client.Counter({ name: 'gost_service_transfer_input_bytes_total', help: 'Bytes received from clients', labelNames: ['service'], registers: [r] });
    this.#output = new client.Counter({ name: 'gost_service_transfer_output_bytes_total', help: 'Bytes sent to clients', labelNames: ['service'], registers: [r] });
    this.#errors = new client.Counter({ name: 'gost_service_handler_errors_total', help: 'Handler errors', labelNames: ['service'], registers: [r] });
    new client.Gauge({ name: 'burrow_tunnels', help: 'Tunnels with at least one connector', registers: [r], collect() { this.set(opts.tunnels()); } });
    new client.Gauge({ name: 'burrow_tunnel_connectors', help: 'Connected tunnel connectors', registers: [r], collect() { this.set(opts.connectors()); } });

    // Per tunnel (server side).
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    this.#tunnelRequests = new client.Counter({
      name: 'burrow_tunnel_requests_total',
      help: 'HTTP requests at entry points by tunnel, host and status sent to the visitor',
      labelNames: ['tunnel', 'host', 'code'],
      registers: [r],
    });
    this.#tunnelIn = new client.Counter({
      name: 'burrow_tunnel_transfer_input_bytes_total',
      help: 'Bytes sent into a tunnel (visitors to its client)',
      labelNames: ['tunnel'],
      registers: [r],
      collect() {
        self.#sync();
      },
    });
    this.#tunnelOut = new client.Counter({
      name: 'burrow_tunnel_transfer_output_bytes_total',
      help: 'Bytes out of a tunnel (its client to visitors)',
      labelNames: ['tunnel'],
      registers: [r],
      collect() {
        self.#sync();
      },
    });
    this.#tunnelConnectors = new client.Gauge({
      name: 'burrow_tunnel_connectors_per_tunnel',
      help: 'Connectors of each live tunnel',
      labelNames: ['tunnel'],
      registers: [r],
      collect() {
        self.#sync();
      },
    });

    // Client side (rtcp/rudp services).
    const clients = opts.clients ?? (() => []);
    // Gauges are set, counters (running totals kept by the listeners) set by reset and inc.
    const perClient = (name: string, help: string, type: 'counter' | 'gauge', pick: (c: ClientTunnelCounts) => number): void => {
      const Kind = type === 'gauge' ? client.Gauge : client.Counter;
      new Kind<'service'>({
        name,
        help,
        labelNames: ['service'],
        registers: [r],
        collect(this: client.Gauge<'service'> | client.Counter<'service'>) {
          this.reset();
          for (const [service, c] of clients()) this.inc({ service }, pick(c));
        },
      });
    };
    perClient('burrow_client_tunnel_sessions', 'Tunnel sessions up (1) or not (0) per client service', 'gauge', (c) => (c.bound ? 1 : 0));
    perClient('burrow_client_tunnel_sessions_total', 'Tunnel sessions established per client service (first and reconnects)', 'counter', (c) => c.sessions);
    perClient('burrow_client_tunnel_reconnects_total', 'Tunnel sessions established after the first per client service', 'counter', (c) => Math.max(0, c.sessions - 1));
    perClient('burrow_client_streams_total', 'Streams opened by the server towards a client service', 'counter', (c) => c.streams);
    perClient('burrow_client_streams_open', 'Streams open now per client service', 'gauge', (c) => c.openStreams);
  }

  /** True when `tunnelId` has (or now gets) per-tunnel series; false past the cap. */
  #admit(tunnelId: string): TrackedTunnel | undefined {
    let t = this.#tracked.get(tunnelId);
    if (t) {
      t.lastSeen = this.#now();
      return t;
    }
    if (this.#tracked.size >= this.#maxTunnels) {
      if (!this.#capWarned) {
        this.#capWarned = true;
        this.#logger?.warn(
          { kind: 'metrics' },
          `metrics: per-tunnel series are capped at ${this.#maxTunnels} tunnels (metrics.maxTunnels); tunnel ${tunnelId} and later ones are not counted per tunnel`,
        );
      }
      return undefined;
    }
    t = { series: new Set(), hosts: new Set(), lastSeen: this.#now() };
    this.#tracked.set(tunnelId, t);
    return t;
  }

  tunnelRequest(tunnelId: string, host: string, code: string): void {
    const t = this.#admit(tunnelId);
    if (!t) return;
    let h = host.toLowerCase().replace(/:\d+$/, '');
    if (!t.hosts.has(h)) {
      if (t.hosts.size >= MAX_HOSTS_PER_TUNNEL) h = 'other';
      else t.hosts.add(h);
    }
    t.series.add(`${h}\n${code}`);
    this.#tunnelRequests.inc({ tunnel: tunnelId, host: h, code });
  }

  addTunnelSource(src: TunnelSource): () => void {
    this.#sources.add(src);
    const off = src.onConnectorGone((tunnelId, bytesIn, bytesOut) => {
      if (!this.#admit(tunnelId)) return;
      const g = this.#gone.get(tunnelId) ?? { in: 0, out: 0 };
      g.in += bytesIn;
      g.out += bytesOut;
      this.#gone.set(tunnelId, g);
    });
    return () => {
      off();
      this.#sources.delete(src);
    };
  }

  /**
   * Brings the per-tunnel byte counters and connector gauges up to date (at each scrape). A
   * tunnel's total is what its gone connectors moved plus what its live ones have moved so
   * far; the counters get the difference from the last scrape.
   */
  #sync(): void {
    const live = new Map<string, { in: number; out: number; connectors: number }>();
    for (const s of this.#sources) {
      for (const t of s.tunnels()) {
        const cur = live.get(t.tunnelId) ?? { in: 0, out: 0, connectors: 0 };
        cur.in += t.bytesIn;
        cur.out += t.bytesOut;
        cur.connectors += t.connectors;
        live.set(t.tunnelId, cur);
      }
    }
    this.#tunnelConnectors.reset();
    for (const [tunnelId, cur] of live) if (this.#admit(tunnelId)) this.#tunnelConnectors.set({ tunnel: tunnelId }, cur.connectors);
    for (const tunnelId of this.#tracked.keys()) {
      const cur = live.get(tunnelId) ?? { in: 0, out: 0 };
      const gone = this.#gone.get(tunnelId) ?? { in: 0, out: 0 };
      const prev = this.#reported.get(tunnelId) ?? { in: 0, out: 0 };
      const total = { in: gone.in + cur.in, out: gone.out + cur.out };
      if (total.in > prev.in) this.#tunnelIn.inc({ tunnel: tunnelId }, total.in - prev.in);
      if (total.out > prev.out) this.#tunnelOut.inc({ tunnel: tunnelId }, total.out - prev.out);
      this.#reported.set(tunnelId, { in: Math.max(total.in, prev.in), out: Math.max(total.out, prev.out) });
    }
    this.#prune(live);
  }

  /** Drops the series of tunnels neither live nor configured for PRUNE_AFTER_MS. */
  #prune(live: Map<string, unknown>): void {
    const now = this.#now();
    for (const [tunnelId, t] of this.#tracked) {
      if (live.has(tunnelId) || [...this.#sources].some((s) => s.configured(tunnelId))) {
        t.lastSeen = now;
        continue;
      }
      if (now - t.lastSeen < PRUNE_AFTER_MS) continue;
      for (const key of t.series) {
        const [host, code] = key.split('\n') as [string, string];
        this.#tunnelRequests.remove({ tunnel: tunnelId, host, code });
      }
      this.#tunnelIn.remove({ tunnel: tunnelId });
      this.#tunnelOut.remove({ tunnel: tunnelId });
      this.#tracked.delete(tunnelId);
      this.#gone.delete(tunnelId);
      this.#reported.delete(tunnelId);
    }
  }

  requestStarted(service: string): void {
    this.#requests.inc({ service });
    this.#inFlight.inc({ service });
  }

  requestFinished(service: string, durationMs: number, inputBytes: number, outputBytes: number, failed: boolean): void {
    this.#inFlight.dec({ service });
    this.#duration.observe({ service }, durationMs / 1000);
    if (inputBytes) this.#input.inc({ service }, inputBytes);
    if (outputBytes) this.#output.inc({ service }, outputBytes);
    if (failed) this.#errors.inc({ service });
  }

  /**
   * Serves `path` (default /metrics) on `addr`, with `/healthz` (alive) and `/readyz` (`ready`'s
   * answer: 200 when ready, 503 when not) beside it; returns the bound address.
   */
  async listen(addr: string, path = '/metrics', logger?: Logger, ready?: ReadyCheck): Promise<string> {
    const { host, port } = splitHostPort(addr);
    const server = http.createServer((req, res) => {
      const url = (req.url ?? '').split('?')[0];
      if (req.method === 'GET' && ready && (url === '/healthz' || url === '/readyz') && url !== path) {
        void serveHealth(url, ready, res);
        return;
      }
      if (req.method !== 'GET' || url !== path) {
        res.writeHead(404).end();
        return;
      }
      this.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': this.registry.contentType });
          res.end(text);
        },
        (err: Error) => {
          res.writeHead(500).end(err.message);
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: host || undefined, port }, () => resolve());
    });
    this.#server = server;
    const a = server.address() as { address: string; port: number };
    const bound = joinHostPort(a.address, a.port);
    logger?.info({ kind: 'metrics' }, `metrics: http://${bound}${path}`);
    return bound;
  }

  async close(): Promise<void> {
    const s = this.#server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}
