/**
 * What a reload changes: each service's and each shared part's configuration reduced to one
 * comparable text. A service's text holds its own config and every part it references (chains
 * with their named hops, authers, sds, the global TLS settings), so a change to a referenced
 * part counts as a change of the service. Ingresses are the exception: their inline `rules`
 * are a lookup table the handler consults per request, replaced in place (a new rule routes at
 * once and no tunnel session is dropped); the rest of an ingress (its sources) is part of the
 * service's text.
 */
import type { ChainConfig, Config, HopConfig, IngressConfig, ServiceConfig } from '../core/config';

/** JSON with object keys sorted, so equal configs give equal texts. */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
    }
    return v;
  });
}

/** An ingress without its inline rules (what cannot change in place). */
function ingressSources(i: IngressConfig): Omit<IngressConfig, 'rules'> {
  const { rules: _rules, ...rest } = i;
  return rest;
}

/** Every string of a value (metadata can nest: `entrypoints: [{addr, ingress}]`). */
function strings(v: unknown, out: Set<string>): Set<string> {
  if (typeof v === 'string') out.add(v);
  else if (Array.isArray(v)) for (const x of v) strings(x, out);
  else if (v && typeof v === 'object') for (const x of Object.values(v)) strings(x, out);
  return out;
}

/** A chain with its named hops resolved (a hop given by name only takes the `hops:` entry). */
function resolvedChain(c: ChainConfig, hops: Map<string, HopConfig>): unknown {
  return { ...c, hops: c.hops.map((h) => ((!h.nodes || h.nodes.length === 0) && hops.has(h.name) ? hops.get(h.name) : h)) };
}

export interface Fingerprints {
  /** Service name → its text (own config and referenced parts). */
  services: Map<string, string>;
  chains: Map<string, string>;
  authers: Map<string, string>;
  /** Ingress name → its text without inline rules. */
  ingresses: Map<string, string>;
}

export function fingerprints(cfg: Config): Fingerprints {
  const hops = new Map((cfg.hops ?? []).map((h) => [h.name, h]));
  const chains = new Map((cfg.chains ?? []).map((c) => [c.name, stableJson(resolvedChain(c, hops))]));
  const authers = new Map((cfg.authers ?? []).map((a) => [a.name, stableJson(a)]));
  const ingresses = new Map((cfg.ingresses ?? []).map((i) => [i.name, stableJson(ingressSources(i))]));
  const sds = new Map((cfg.sds ?? []).map((s) => [s.name, stableJson(s)]));
  const services = new Map<string, string>();
  for (const svc of cfg.services ?? []) {
    // Names a service may reference: its chain and auther fields, and any metadata value
    // (`ingress`, `sd`, `entrypoints[].ingress`, …). A string that names a part counts.
    const names = strings([svc.handler, svc.listener, svc.metadata], new Set());
    const pick = (m: Map<string, string>): string[] => [...names].filter((n) => m.has(n)).sort().map((n) => `${n}=${m.get(n)}`);
    services.set(
      svc.name,
      stableJson({
        svc,
        chains: pick(chains),
        authers: pick(authers),
        ingresses: pick(ingresses),
        sds: pick(sds),
        tls: cfg.tls ?? null,
      }),
    );
  }
  return { services, chains, authers, ingresses };
}

/** "tcp:8080"-like keys of the ports a service binds (its address and its entry points). */
export function boundPorts(svc: ServiceConfig): Set<string> {
  const ltype = svc.listener.type ?? 'tcp';
  const net = ltype === 'udp' || ltype === 'rudp' ? 'udp' : 'tcp';
  const out = new Set<string>();
  const add = (addr: string, network: string): void => {
    const m = /:(\d+)$/.exec(addr);
    if (m && m[1] !== '0') out.add(`${network}:${Number(m[1])}`);
  };
  add(svc.addr, net);
  const walk = (v: unknown, key: string): void => {
    if (typeof v === 'string') {
      if (/entrypoint|^addr$/i.test(key)) add(v, 'tcp');
    } else if (Array.isArray(v)) for (const x of v) walk(x, key);
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, /entrypoint/i.test(key) ? key : k);
  };
  walk({ ...(svc.metadata ?? {}), ...(svc.handler.metadata ?? {}) }, '');
  return out;
}

export interface ServiceDiff {
  added: string[];
  changed: string[];
  removed: string[];
  unchanged: string[];
}

export function diffServices(before: Fingerprints, after: Fingerprints): ServiceDiff {
  const d: ServiceDiff = { added: [], changed: [], removed: [], unchanged: [] };
  for (const [name, fp] of after.services) {
    const old = before.services.get(name);
    if (old === undefined) d.added.push(name);
    else if (old === fp) d.unchanged.push(name);
    else d.changed.push(name);
  }
  for (const name of before.services.keys()) if (!after.services.has(name)) d.removed.push(name);
  return d;
}
