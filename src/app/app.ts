/**
 * A running burrow: every service of a config, started together and stopped together.
 * Shutdown: local listeners (entry points included) stop accepting at once and what is idle
 * closes (tunnel sessions without streams, keep-alive connections between requests); reverse
 * listeners announce a drain (servers stop routing new streams to them); in-flight connections
 * get `graceMs` to finish, the rest is destroyed.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Config } from '../core/config';
import { DEFAULTS } from '../core/config';
import { buildApp, type BuiltApp, type BuildHooks } from './build';
import type { Metrics } from '../observe/metrics';
import { originOf, where } from '../config/origin';
import { HealthCheck, type Readiness } from './health';
import type { Service } from '../service/service';
import { applyDifference, type ReloadResult } from './reload';
import { stableJson } from './diff';

export type { ReloadResult } from './reload';

/** What `App.events` reports: every reload, applied or refused. */
export interface AppEvents {
  reload: [ReloadResult];
}
import type { ReverseListener } from '../listener/reverse';

export class App {
  #built: BuiltApp;
  readonly #logger: Logger;
  #config: Config;
  readonly #hooks: BuildHooks;
  readonly metrics: Metrics | undefined;
  #health: HealthCheck;
  #started = false;
  #stopping = false;
  /** Reloads run one at a time, in order. */
  #reloading: Promise<unknown> = Promise.resolve();
  readonly events = new EventEmitter<AppEvents>();
  /** Services a reload removed or replaced, finishing their connections. */
  readonly #retiring = new Set<Promise<void>>();

  constructor(config: Config, logger: Logger, hooks: BuildHooks = {}) {
    this.#logger = logger;
    this.#config = config;
    const pools = () => [...this.#built.tunnelHandlers.values()].map((h) => h.server.pool);
    this.metrics = config.metrics?.addr
      ? // prom-client is loaded only when metrics are on.
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        new (require('../observe/metrics') as typeof import('../observe/metrics')).Metrics({
          services: () => this.#built.services.length,
          tunnels: () => pools().reduce((n, p) => n + p.tunnelCount, 0),
          connectors: () => pools().reduce((n, p) => n + p.connectorCount, 0),
          clients: () => {
            const reverse = new Set<unknown>(this.#built.reverseListeners);
            return this.#built.services.flatMap((s) => (reverse.has(s.listener) ? [[s.name, (s.listener as ReverseListener).counts()] as const] : []));
          },
          maxTunnels: config.metrics.maxTunnels,
          logger,
        })
      : undefined;
    this.#hooks = { ...hooks, metrics: this.metrics };
    this.#built = buildApp(config, logger, this.#hooks);
    this.#health = new HealthCheck(config, this.#built.reverseListeners, this.#built.services.length);
  }

  /** The running parts (replaced as a whole by a reload). */
  get built(): BuiltApp {
    return this.#built;
  }

  /** The config the app runs with (the last one applied). */
  get config(): Config {
    return this.#config;
  }

  /** Readiness for /readyz (metrics address and web API). */
  get health(): HealthCheck {
    return this.#health;
  }

  readiness(): Promise<Readiness> {
    return this.#health.check();
  }

  get services(): Service[] {
    return this.#built.services;
  }

  /**
   * Applies a new configuration as a difference (reload.ts): `produce` gives it (a file read
   * again, or the API's edit of the running one). One log line either way; the result goes to
   * `events` as well. Throws the reason when the new configuration is refused (the running
   * one is then untouched). Reloads run one at a time.
   */
  reload(trigger: string, produce: (current: Config) => Config | Promise<Config>, graceMs: number = DEFAULTS.shutdownGraceMs): Promise<ReloadResult> {
    const run = async (): Promise<ReloadResult> => {
      const started = Date.now();
      let result: ReloadResult;
      try {
        if (!this.#started || this.#stopping) throw new Error('not running (starting or stopping)');
        const next = await produce(this.#config);
        if (stableJson(next) === stableJson(this.#config)) {
          // Nothing differs: nothing to build, start or stop.
          const unchanged = (next.services ?? []).map((s) => s.name);
          result = { ok: true, trigger, added: [], changed: [], removed: [], unchanged, ms: Date.now() - started };
          if (trigger !== '-R') this.#logger.info(`reload (${trigger}): no change`);
          this.events.emit('reload', result);
          return result;
        }
        const applied = await applyDifference(
          { config: this.#config, built: this.#built, logger: this.#logger, hooks: this.#hooks, graceMs },
          next,
        );
        this.#config = next;
        this.#built = applied.built;
        const old = this.#health;
        this.#health = new HealthCheck(next, applied.built.reverseListeners, applied.built.services.length);
        this.#health.running = true;
        old.close();
        this.#retiring.add(applied.retired);
        void applied.retired.finally(() => this.#retiring.delete(applied.retired));
        result = { ok: true, trigger, ...applied.diff, ms: Date.now() - started };
        const d = applied.diff;
        const line = `reload (${trigger}): ${d.added.length} added, ${d.changed.length} changed, ${d.removed.length} removed, ${d.unchanged.length} unchanged`;
        if (d.added.length + d.changed.length + d.removed.length > 0 || applied.partsChanged || trigger !== '-R') this.#logger.info(line);
        for (const w of applied.warnings) this.#logger.warn(w);
      } catch (err) {
        const msg = (err as Error)?.message ?? String(err);
        result = { ok: false, trigger, added: [], changed: [], removed: [], unchanged: [], error: msg, ms: Date.now() - started };
        this.#logger.error(`reload (${trigger}) refused: ${msg}; the running configuration is unchanged`);
      }
      this.events.emit('reload', result);
      if (!result.ok) throw new ReloadRefused(result.error!);
      return result;
    };
    const p = this.#reloading.then(run, run);
    this.#reloading = p.catch(() => undefined);
    return p;
  }

  /** Starts ingresses, authers, then every service; on a failure stops what started. */
  async start(): Promise<void> {
    for (const i of this.#built.ingresses.values()) await i.start();
    for (const a of this.#built.authers.values()) await a.start();
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
      for (const s of this.#built.services) {
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
    this.#health.running = true;
  }

  /** "service NAME (-L URL)" or "service NAME (FILE: services[i])": where a service was given. */
  #serviceLabel(name: string): string {
    const svc = this.#config.services?.find((x) => x.name === name);
    const o = svc ? originOf(svc) : undefined;
    return o ? `service ${name} (${o.source.startsWith('-') ? o.source : where(o)})` : `service ${name}`;
  }

  #closeShared(): void {
    for (const i of this.#built.ingresses.values()) i.close();
    for (const a of this.#built.authers.values()) a.close();
  }

  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    await this.#reloading;
    this.#health.running = false;
    // Every local listener (entry points included) stops accepting at once, so a new process
    // can take the ports; idle tunnel sessions and keep-alive connections close now.
    const reverse = new Set<unknown>(this.#built.reverseListeners);
    await Promise.all(this.#built.services.filter((s) => !reverse.has(s.listener)).map((s) => s.stopAccepting()));
    if (this.#started) this.#logger.info(`stopped accepting; connections in flight get up to ${graceMs} ms`);
    // Other servers of a fleet stop sending here at once: connectors leave service discovery.
    await Promise.all([...this.#built.tunnelHandlers.values()].map((h) => h.withdraw()));
    // Servers stop routing to our reverse listeners; what they sent before they knew is still
    // served, then the services drain within the grace period.
    await Promise.all(this.#built.reverseListeners.map((r) => r.drain(Math.min(graceMs, 2_000))));
    await Promise.all(this.#built.services.map((s) => s.close(graceMs)));
    await Promise.all(this.#retiring);
    for (const c of this.#built.chains.values()) await c.close();
    this.#closeShared();
    this.#health.close();
    await this.metrics?.close();
    if (this.#started) this.#logger.info('stopped');
  }
}

/** A new configuration was refused; the running one is unchanged. */
export class ReloadRefused extends Error {}
