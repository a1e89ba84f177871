/**
 * In-process burrow instances for integration tests: build an App from gost-style -L/-F
 * URLs (or a config model), start it, capture its JSON log lines, and stop it in `after`.
 */
import { Writable } from 'node:stream';
import http from 'node:http';
import net from 'node:net';
import type { DestinationStream } from 'pino';
import { App } from '../../src/app/app';
import { buildConfigFromCli } from '../../src/cli/build';
import { createLogger } from '../../src/observe/logger';
import type { Config } from '../../src/core/config';
import type { BoundInfo } from '../../src/listener/reverse';

export interface RunningApp {
  app: App;
  /** Raw log lines (JSON text) and parsed objects. */
  rawLogs: string[];
  logs: Array<Record<string, unknown>>;
  /** Resolves on the next successful bind of a reverse listener. */
  bound: Promise<BoundInfo>;
  stop(): Promise<void>;
  /** Address of the n-th service ("127.0.0.1:port"). */
  addr(n?: number): string;
  port(n?: number): number;
  /** Entry point address of a tunnel service. */
  entrypoint(service?: string, n?: number): string;
}

export async function startApp(input: { L?: string[]; F?: string[]; config?: Config; level?: string }): Promise<RunningApp> {
  const rawLogs: string[] = [];
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        rawLogs.push(line);
        try {
          logs.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          /* text format */
        }
      }
      cb();
    },
  });
  const logger = createLogger({ level: input.level ?? 'debug' }, sink as unknown as DestinationStream);
  const config = input.config ?? buildConfigFromCli(input.L ?? [], input.F ?? []);
  let resolveBound!: (b: BoundInfo) => void;
  const bound = new Promise<BoundInfo>((r) => (resolveBound = r));
  const app = new App(config, logger, { onBound: (_s, info) => resolveBound(info) });
  await app.start();
  const ra: RunningApp = {
    app,
    rawLogs,
    logs,
    bound,
    stop: () => app.stop(0),
    addr: (n = 0) => app.services[n]!.address(),
    port: (n = 0) => Number(app.services[n]!.address().split(':').pop()),
    entrypoint: (service = 'service-0', n = 0) => app.built.tunnelHandlers.get(service)!.entryPoints[n]!.address(),
  };
  return ra;
}

/** A tunnel server in direct mode (`tunnel.direct`) whose handler uses `authers[0]`. */
export function startDirectServerWithAuther(authers: NonNullable<Config['authers']>): Promise<RunningApp> {
  return startApp({
    config: {
      services: [
        {
          name: 'service-0',
          addr: '127.0.0.1:0',
          handler: { type: 'tunnel', auther: authers[0]!.name, metadata: { 'tunnel.direct': true } },
          listener: { type: 'tcp' },
        },
      ],
      authers,
    },
  });
}

/** An HTTP server on 127.0.0.1:0 that answers `body` (and echoes request info as headers). */
export async function httpServer(body: string): Promise<{ port: number; server: http.Server; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'x-seen-host': req.headers.host ?? '' });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** GET through an entry point with a given Host; resolves status and body. */
export function get(addr: string, host: string, path = '/'): Promise<{ status: number; body: string }> {
  const [h, p] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const req = http.request({ host: h, port: p, path, headers: { host }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** What a test started, stopped in reverse order by `stopAll` (in `after`), failures ignored. */
export class Stops {
  readonly #list: Array<() => Promise<void>> = [];

  /** Stops `x` (its `stop` or `close`) at the end; returns it. */
  track<T extends { stop(): Promise<void> } | { close(): Promise<void> }>(x: T): T {
    this.#list.push(() => ('stop' in x ? x.stop() : x.close()));
    return x;
  }

  push(fn: () => Promise<void>): void {
    this.#list.push(fn);
  }

  async stopAll(): Promise<void> {
    for (const s of this.#list.splice(0).reverse()) await s().catch(() => undefined);
  }
}
