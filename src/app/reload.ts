/**
 * A reload applies a whole new configuration as a difference from the running one (diff.ts
 * says what differs):
 *
 * - unchanged services keep their listeners, connections and tunnel sessions;
 * - parts (chains, authers, ingresses) whose configuration did not change are kept; an ingress
 *   whose inline rules alone changed gets the new rules in place;
 * - added services start; a changed service is replaced: where the new one binds other ports
 *   than the old, the new one is bound first, then the old one stops accepting; where a port is
 *   shared (with a changed or a removed service), the old listener stops first, then the new one
 *   binds. Connections the old one holds get the grace period to finish;
 * - removed services stop (stop accepting, then up to the grace period for what is in flight).
 *
 * A new configuration that cannot be built, or a service that cannot start (a port in use, a
 * bad certificate) refuses the reload: what was started for it is closed and the running
 * services are untouched. When a new service fails after an old one gave up its port, the old
 * one is built again from the running configuration and started on its port.
 */
import type { Logger } from 'pino';
import type { Config, IngressRuleConfig } from '../core/config';
import type { Service } from '../service/service';
import type { Chain } from '../chain/chain';
import type { Ingress } from '../ingress/ingress';
import type { Auther } from '../auth/auther';
import { buildApp, type BuiltApp, type BuildHooks } from './build';
import { boundPorts, diffServices, fingerprints, stableJson, type ServiceDiff } from './diff';

export interface ReloadResult extends ServiceDiff {
  ok: boolean;
  /** What asked for it: SIGHUP, -R, an API route. */
  trigger: string;
  /** Why the new configuration was refused. */
  error?: string;
  ms: number;
}

export interface RunningState {
  config: Config;
  built: BuiltApp;
  logger: Logger;
  hooks: BuildHooks;
  graceMs: number;
}

export interface Applied {
  built: BuiltApp;
  diff: ServiceDiff;
  /** True when a shared part changed (an ingress's rules, a chain, an auther). */
  partsChanged: boolean;
  /** Settings that take effect at the next start only. */
  warnings: string[];
  /** Settles when the services that left have finished and their parts are closed. */
  retired: Promise<void>;
}

/** Settings a reload does not change in a running process. */
const AT_START_ONLY = ['api', 'metrics', 'log'] as const;

function labelled(name: string, err: unknown): Error {
  return new Error(`service ${name}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

/**
 * Stops one service as a shutdown would: leave discovery, stop accepting (a reverse listener
 * announces its drain instead), then up to `graceMs` for what is in flight. Resolves with the
 * service's end once it accepts no more (its port is free).
 */
async function retire(s: Service, built: BuiltApp, graceMs: number): Promise<{ ended: Promise<void> }> {
  await built.tunnelHandlers.get(s.name)?.withdraw();
  const rl = built.reverseListeners.find((r) => r === s.listener);
  if (rl) return { ended: rl.drain(Math.min(graceMs, 2_000)).then(() => s.close(graceMs)) };
  await s.stopAccepting();
  return { ended: s.close(graceMs) };
}

function closeParts(parts: { chains: Chain[]; ingresses: Ingress[]; authers: Auther[] }): Promise<void> {
  for (const i of parts.ingresses) i.close();
  for (const a of parts.authers) a.close();
  return Promise.all(parts.chains.map((c) => c.close())).then(() => undefined);
}

export async function applyDifference(cur: RunningState, next: Config): Promise<Applied> {
  const before = fingerprints(cur.config);
  const after = fingerprints(next);
  const diff = diffServices(before, after);
  const warnings: string[] = [];
  for (const key of AT_START_ONLY) {
    if (stableJson(cur.config[key] ?? null) !== stableJson(next[key] ?? null)) warnings.push(`reload: the ${key} section changed; it applies at the next start`);
  }
  const same = (a: Map<string, string>, b: Map<string, string>, name: string): boolean => a.has(name) && a.get(name) === b.get(name);
  const toBuild = new Set([...diff.added, ...diff.changed]);
  const built = buildApp(next, cur.logger, cur.hooks, {
    chain: (n) => (same(before.chains, after.chains, n) ? cur.built.chains.get(n) : undefined),
    ingress: (n) => (same(before.ingresses, after.ingresses, n) ? cur.built.ingresses.get(n) : undefined),
    auther: (n) => (same(before.authers, after.authers, n) ? cur.built.authers.get(n) : undefined),
    services: toBuild,
  });

  // Parts built for the new configuration (not taken over from the running one).
  const running = new Set<unknown>([...cur.built.chains.values(), ...cur.built.ingresses.values(), ...cur.built.authers.values()]);
  const fresh = {
    chains: [...built.chains.values()].filter((c) => !running.has(c)),
    ingresses: [...built.ingresses.values()].filter((i) => !running.has(i)),
    authers: [...built.authers.values()].filter((a) => !running.has(a)),
  };
  const kept = new Set<unknown>([...built.chains.values(), ...built.ingresses.values(), ...built.authers.values()]);
  const gone = {
    chains: [...cur.built.chains.values()].filter((c) => !kept.has(c)),
    ingresses: [...cur.built.ingresses.values()].filter((i) => !kept.has(i)),
    authers: [...cur.built.authers.values()].filter((a) => !kept.has(a)),
  };
  // Ingresses kept whose inline rules changed: new rules in place at commit.
  const oldRules = new Map((cur.config.ingresses ?? []).map((i) => [i.name, stableJson(i.rules ?? [])]));
  const ruleUpdates: Array<[Ingress, IngressRuleConfig[]]> = [];
  for (const i of next.ingresses ?? []) {
    const obj = built.ingresses.get(i.name);
    if (obj && running.has(obj) && oldRules.get(i.name) !== stableJson(i.rules ?? [])) ruleUpdates.push([obj, i.rules ?? []]);
  }

  try {
    for (const i of fresh.ingresses) await i.start();
    for (const a of fresh.authers) await a.start();
  } catch (err) {
    await closeParts(fresh);
    throw err;
  }

  // Which new services wait for an old one to give up a port.
  const oldCfg = new Map((cur.config.services ?? []).map((s) => [s.name, s]));
  const leaving = cur.built.services.filter((s) => diff.removed.includes(s.name) || diff.changed.includes(s.name));
  // The ports an old service holds: as configured, and as bound (a port 0 got a number).
  const leavingPorts = leaving.map((s) => {
    const cfg = oldCfg.get(s.name);
    const ports = cfg ? boundPorts(cfg) : new Set<string>();
    if (cfg) for (const p of boundPorts({ ...cfg, addr: s.address(), metadata: {}, handler: { ...cfg.handler, metadata: {} } })) ports.add(p);
    return { s, ports };
  });
  const newCfg = new Map((next.services ?? []).map((s) => [s.name, s]));
  const first: Service[] = [];
  const second: Service[] = [];
  const blockers = new Set<Service>();
  for (const s of built.services) {
    const ports = boundPorts(newCfg.get(s.name)!);
    const blocking = leavingPorts.filter((l) => [...ports].some((p) => l.ports.has(p)));
    if (blocking.length === 0) first.push(s);
    else {
      second.push(s);
      for (const b of blocking) blockers.add(b.s);
    }
  }

  const started: Service[] = [];
  const undo = async (): Promise<void> => {
    await Promise.all(started.map((s) => s.close(0)));
    await closeParts(fresh);
  };
  for (const s of first) {
    try {
      await s.start();
    } catch (err) {
      await undo();
      throw labelled(s.name, err);
    }
    started.push(s);
  }
  if (second.length > 0) {
    await Promise.all([...blockers].map((b) => b.stopAccepting()));
    for (const s of second) {
      try {
        await s.start();
      } catch (err) {
        await undo();
        const restored = await restore(cur, [...blockers]);
        throw new Error(`${labelled(s.name, err).message}${restored}`, { cause: err });
      }
      started.push(s);
    }
  }

  // Commit.
  for (const [ingress, rules] of ruleUpdates) ingress.setRules(rules);
  const byName = new Map<string, Service>();
  for (const s of cur.built.services) byName.set(s.name, s);
  for (const s of built.services) byName.set(s.name, s);
  const services = (next.services ?? []).map((c) => byName.get(c.name)!).filter((s) => s !== undefined);
  const reverse = new Set<unknown>([...cur.built.reverseListeners, ...built.reverseListeners]);
  const tunnelHandlers = new Map<string, ReturnType<BuiltApp['tunnelHandlers']['get']> & object>();
  for (const s of services) {
    const h = toBuild.has(s.name) ? built.tunnelHandlers.get(s.name) : cur.built.tunnelHandlers.get(s.name);
    if (h) tunnelHandlers.set(s.name, h);
  }
  const merged: BuiltApp = {
    services,
    reverseListeners: services.map((s) => s.listener).filter((l) => reverse.has(l)) as BuiltApp['reverseListeners'],
    chains: built.chains,
    ingresses: built.ingresses,
    authers: built.authers,
    tunnelHandlers,
  };
  // Services that leave stop accepting now (their ports are free when the reload returns).
  const ending = await Promise.all(leaving.map((s) => retire(s, cur.built, cur.graceMs)));
  const retired = Promise.all(ending.map((e) => e.ended))
    .then(() => closeParts(gone))
    .catch((err: Error) => cur.logger.warn(`reload: stopping the old services: ${err.message}`));
  const partsChanged = ruleUpdates.length > 0 || fresh.chains.length + fresh.ingresses.length + fresh.authers.length > 0 || gone.chains.length + gone.ingresses.length + gone.authers.length > 0;
  return { built: merged, diff, partsChanged, warnings, retired };
}

/**
 * Builds the given running services again from the running configuration (their old objects
 * gave up their ports) and starts them in their place; the old objects finish what they hold.
 * Returns a note for the refusal message.
 */
async function restore(cur: RunningState, old: Service[]): Promise<string> {
  const names = new Set(old.map((s) => s.name));
  let again: BuiltApp;
  try {
    again = buildApp(cur.config, cur.logger, cur.hooks, {
      chain: (n) => cur.built.chains.get(n),
      ingress: (n) => cur.built.ingresses.get(n),
      auther: (n) => cur.built.authers.get(n),
      services: names,
    });
  } catch (err) {
    return ` (and ${[...names].join(', ')} could not be rebuilt: ${(err as Error).message})`;
  }
  const failed: string[] = [];
  for (const s of again.services) {
    try {
      await s.start();
    } catch (err) {
      failed.push(`${s.name}: ${(err as Error).message}`);
    }
  }
  // The rebuilt services take the old ones' places; the old ones finish their connections.
  const graceMs = cur.graceMs;
  for (const o of old) void retire(o, cur.built, graceMs).then((e) => e.ended);
  const b = cur.built;
  for (const s of again.services) {
    const i = b.services.findIndex((x) => x.name === s.name);
    const oldListener = i >= 0 ? b.services[i]!.listener : undefined;
    if (i >= 0) b.services[i] = s;
    const ri = b.reverseListeners.findIndex((r) => r === oldListener);
    const rl = again.reverseListeners.find((r) => r === s.listener);
    if (ri >= 0 && rl) b.reverseListeners[ri] = rl;
    const h = again.tunnelHandlers.get(s.name);
    if (h) b.tunnelHandlers.set(s.name, h);
  }
  return failed.length ? ` (restoring the running services failed: ${failed.join('; ')})` : '';
}
