/**
 * A running burrow: every service of a config, started together and stopped together.
 * Shutdown: local listeners (entry points included) stop accepting at once and what is idle
 * closes (tunnel sessions without streams, keep-alive connections between requests); reverse
 * listeners announce a drain (servers stop routing new streams to them); in-flight connections
 * get `graceMs` to finish, the rest is destroyed.
 */
import type { Logger } from 'pino';
import type { Config } from '../core/config';
import { buildApp, type BuiltApp, type BuildHooks } from './build';
import type { Metrics } from '../observe/metrics';
import { originOf, where } from '../config/origin';
import { HealthCheck, type Readiness } from './health';

export class App {
  readonly built: BuiltApp;
  readonly #logger: Logger;
  readonly #config: Config;
  readonly metrics: Metrics | undefined;
  /** Readiness for /readyz (metrics address and web API). */
  readonly health: HealthCheck;
  #started = false;

  constructor(config: Config, logger: Logger, hooks: BuildHooks = {}) {
    this.#logger = logger;
    this.#config = config;
    let built: BuiltApp | undefined;
    const pools = () => [...(built?.tunnelHandlers.values() ?? [])].map((h) => h.server.pool);
    this.metrics = config.metrics?.addr
      ? // prom-client is loaded only when metrics are on.
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        new (require('../observe/metrics') as typeof import('../observe/metrics')).Metrics({
          services: () => built?.services.length ?? 0,
          tunnels: () => pools().reduce((n, p) => n + p.tunnelCount, 0),
          connectors: () => pools().reduce((n, p) => n + p.connectorCount, 0),
        })
      : undefined;
    built = buildApp(config, logger, { ...hooks, metrics: this.metrics });
    this.built = built;
    this.health = new HealthCheck(config, built.reverseListeners, built.services.length);
  }

  /** The config the app was built from. */
  get config(): Config {
    return this.#config;
  }

  readiness(): Promise<Readiness> {
    return this.health.check();
  }

  get services() {
    return this.built.services;
  }

  /** Starts ingresses, authers, then every service; on a failure stops what started. */
  async start(): Promise<void> {
    for (const i of this.built.ingresses.values()) await i.start();
    for (const a of this.built.authers.values()) await a.start();
    if (this.metrics && this.#config.metrics) {
      const { addr } = this.#config.metrics;
      try {
        await this.metrics.listen(addr, this.#config.metrics.path || '/metrics', this.#logger, () => this.readiness());
      } catch (err) {
        throw new Error(`metrics (-metrics ${addr}): ${(err as Error).message}`, { cause: err });
      }
    }
    const started = [];
    try {
      for (const s of this.built.services) {
        try {
          await s.start();
        } catch (err) {
          throw new Error(`${this.#serviceLabel(s.name)}: ${(err as Error).message}`, { cause: err });
        }
        started.push(s);
      }
    } catch (err) {
      for (const s of started) await s.close(0);
      this.#closeShared();
      await this.metrics?.close();
      throw err;
    }
    this.#started = true;
    this.health.running = true;
  }

  /** "service NAME (-L URL)" or "service NAME (FILE: services[i])": where a service was given. */
  #serviceLabel(name: string): string {
    const svc = this.#config.services?.find((x) => x.name === name);
    const o = svc ? originOf(svc) : undefined;
    return o ? `service ${name} (${o.source.startsWith('-') ? o.source : where(o)})` : `service ${name}`;
  }

  #closeShared(): void {
    for (const i of this.built.ingresses.values()) i.close();
    for (const a of this.built.authers.values()) a.close();
  }

  async stop(graceMs: number): Promise<void> {
    this.health.running = false;
    // Every local listener (entry points included) stops accepting at once, so a new process
    // can take the ports; idle tunnel sessions and keep-alive connections close now.
    const reverse = new Set<unknown>(this.built.reverseListeners);
    await Promise.all(this.built.services.filter((s) => !reverse.has(s.listener)).map((s) => s.stopAccepting()));
    if (this.#started) this.#logger.info(`stopped accepting; connections in flight get up to ${graceMs} ms`);
    // Other servers of a fleet stop sending here at once: connectors leave service discovery.
    await Promise.all([...this.built.tunnelHandlers.values()].map((h) => h.withdraw()));
    // Servers stop routing to our reverse listeners; what they sent before they knew is still
    // served, then the services drain within the grace period.
    await Promise.all(this.built.reverseListeners.map((r) => r.drain(Math.min(graceMs, 2_000))));
    await Promise.all(this.built.services.map((s) => s.close(graceMs)));
    for (const c of this.built.chains.values()) await c.close();
    this.#closeShared();
    this.health.close();
    await this.metrics?.close();
    if (this.#started) this.#logger.info('stopped');
  }
}
