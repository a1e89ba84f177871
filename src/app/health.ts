/**
 * Readiness of a running burrow (`GET /readyz` on the metrics address and on the web API), as
 * cloudflared's `/ready`:
 *
 * - a server (any service that is not a reverse listener): every listener bound, i.e. the app
 *   started and is not stopping;
 * - a client (rtcp/rudp services): at least one tunnel session established;
 * - every Redis the config names (ingress and auther sources, `tunnel.publicStore`) answers a
 *   PING within a second.
 *
 * The Redis connections are this checker's own (opened at the first check, closed on stop), so
 * a check never waits behind a loader's commands.
 */
import type { Config } from '../core/config';
import type { ReverseListener } from '../listener/reverse';
import { Metadata } from '../core/metadata';
import { RedisLink, redisOptions } from '../loader/sources';

export const REDIS_PING_TIMEOUT_MS = 1000;

export interface Readiness {
  ready: boolean;
  /** Each check by name: listeners, tunnels (clients), redis <addr>. */
  checks: Record<string, { ok: boolean; detail?: string }>;
}

interface RedisTarget {
  label: string;
  options: string | Parameters<typeof redisOptions>[0];
}

/** Every Redis the config uses, labelled without passwords. */
export function redisTargets(config: Config): RedisTarget[] {
  const out: RedisTarget[] = [];
  for (const [kind, list] of [
    ['ingress', config.ingresses ?? []],
    ['auther', config.authers ?? []],
  ] as const) {
    for (const item of list) {
      if (item.redis) out.push({ label: `redis ${item.redis.addr} (${kind} ${item.name})`, options: item.redis });
    }
  }
  for (const svc of config.services ?? []) {
    const md = new Metadata({ ...(svc.metadata ?? {}), ...(svc.handler?.metadata ?? {}) });
    const url = md.getString('tunnel.publicStore');
    if (!url) continue;
    let label = '(bad URL)';
    try {
      const u = new URL(url);
      label = `${u.protocol}//${u.host}`;
    } catch {
      /* labelled as a bad URL; the check fails */
    }
    out.push({ label: `redis ${label} (${svc.name} tunnel.publicStore)`, options: url });
  }
  return out;
}

export class HealthCheck {
  readonly #reverse: readonly ReverseListener[];
  readonly #serverServices: number;
  readonly #targets: RedisTarget[];
  readonly #links = new Map<string, RedisLink>();
  #running = false;

  constructor(config: Config, reverse: readonly ReverseListener[], services: number) {
    this.#reverse = reverse;
    this.#serverServices = services - reverse.length;
    this.#targets = redisTargets(config);
  }

  /** Set by the app once every service started, cleared when it stops. */
  set running(v: boolean) {
    this.#running = v;
  }

  async check(): Promise<Readiness> {
    const checks: Readiness['checks'] = {};
    if (this.#serverServices > 0) {
      checks.listeners = this.#running ? { ok: true } : { ok: false, detail: 'not started or stopping' };
    }
    if (this.#reverse.length > 0) {
      const bound = this.#reverse.filter((r) => r.bound).length;
      checks.tunnels = { ok: this.#running && bound > 0, detail: `${bound} of ${this.#reverse.length} tunnel sessions established` };
    }
    await Promise.all(
      this.#targets.map(async (t) => {
        checks[t.label] = await this.#ping(t);
      }),
    );
    const ready = this.#running && Object.values(checks).every((c) => c.ok);
    return { ready, checks };
  }

  async #ping(t: RedisTarget): Promise<{ ok: boolean; detail?: string }> {
    let link = this.#links.get(t.label);
    if (!link) {
      const target = typeof t.options === 'string' ? t.options : redisOptions(t.options);
      link = new RedisLink(target, REDIS_PING_TIMEOUT_MS, 'burrow-health');
      this.#links.set(t.label, link);
    }
    try {
      await link.run((c) => c.ping());
      return { ok: true };
    } catch (err) {
      return { ok: false, detail: (err as Error).message };
    }
  }

  close(): void {
    this.#running = false;
    for (const l of this.#links.values()) l.close();
    this.#links.clear();
  }
}
