/**
 * A running burrow: every service of a config, started together and stopped together.
 * Shutdown: reverse listeners first announce a drain (servers stop routing new streams to
 * them), listeners stop accepting, in-flight connections get `graceMs` to finish, the rest is
 * destroyed.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/model';
import { buildApp, type BuiltApp, type BuildHooks } from './build';

export class App {
  readonly built: BuiltApp;
  readonly #logger: Logger;
  #started = false;

  constructor(config: Config, logger: Logger, hooks: BuildHooks = {}) {
    this.#logger = logger;
    this.built = buildApp(config, logger, hooks);
  }

  get services() {
    return this.built.services;
  }

  /** Starts ingresses, authers, then every service; on a failure stops what started. */
  async start(): Promise<void> {
    for (const i of this.built.ingresses.values()) await i.start();
    for (const a of this.built.authers.values()) await a.start();
    const started = [];
    try {
      for (const s of this.built.services) {
        await s.start();
        started.push(s);
      }
    } catch (err) {
      for (const s of started) await s.close(0);
      this.#closeShared();
      throw err;
    }
    this.#started = true;
  }

  #closeShared(): void {
    for (const i of this.built.ingresses.values()) i.close();
    for (const a of this.built.authers.values()) a.close();
  }

  async stop(graceMs: number): Promise<void> {
    for (const r of this.built.reverseListeners) r.drain();
    await Promise.all(this.built.services.map((s) => s.close(graceMs)));
    for (const c of this.built.chains.values()) await c.close();
    this.#closeShared();
    if (this.#started) this.#logger.info('stopped');
  }
}
