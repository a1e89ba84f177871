/**
 * Prometheus metrics (`-metrics :9000` or `metrics: {addr, path}`), with gost's metric names so
 * existing dashboards keep working, plus tunnel gauges. Counters are updated at the seams (the
 * service accept loop, the tunnel pool), never in protocol code. With metrics off, services
 * get `NOOP_METRICS` and call sites need no `if`.
 */
import http from 'node:http';
import client from 'prom-client';
import type { Logger } from 'pino';
import { splitHostPort, joinHostPort } from '../core/addr';

import type { ServiceMetrics } from './service-metrics';

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
  #server: http.Server | undefined;

  constructor(opts: { services: () => number; tunnels: () => number; connectors: () => number }) {
    const r = this.registry;
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
