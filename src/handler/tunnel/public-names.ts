/**
 * Public mode (`tunnel.publicDomain`): every BIND registers `<endpoint>.<domain>` → tunnel, as
 * the GOST.PLUS ingress plugin does with Redis `SET NX EX` (protocol.md §4), but built in and
 * in memory. First binder wins; a name is valid for `ttlMs` from its first claim (later binds
 * do not refresh it), after which it stops routing and is freed. Custom names requested in the
 * BIND (`rtcp://hello/...`) get their own validity. With a shared store (`tunnel.publicStore`,
 * public-store.ts) a claim is decided by the store first, so names survive restarts and servers
 * sharing the store agree; lookups always read memory.
 */
import { normalizeHost } from '../../ingress/ingress';
import type { NameStore } from './public-store';

interface NameEntry {
  tunnelId: string;
  expiresAt: number;
}

export interface PublicNamesOptions {
  domain: string;
  ttlMs: number;
  customTtlMs: number;
  allowCustom: boolean;
  /** A store shared with other servers and restarts (Redis); memory alone without one. */
  store?: NameStore;
  /** Clock, replaceable in tests. */
  now?: () => number;
}

const LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export class PublicNames {
  readonly domain: string;
  readonly #names = new Map<string, NameEntry>();
  readonly #opts: PublicNamesOptions;
  readonly #now: () => number;
  readonly #sweeper: NodeJS.Timeout;

  constructor(opts: PublicNamesOptions) {
    this.#opts = opts;
    this.domain = normalizeHost(opts.domain).replace(/^\./, '');
    this.#now = opts.now ?? Date.now;
    this.#sweeper = setInterval(() => this.sweep(), 60_000);
    this.#sweeper.unref();
  }

  async #claim(name: string, tunnelId: string, ttlMs: number): Promise<boolean> {
    const now = this.#now();
    const cur = this.#names.get(name);
    if (cur && cur.expiresAt > now) return cur.tunnelId === tunnelId;
    const shared = this.#opts.store ? await this.#opts.store.claim(name, tunnelId, ttlMs) : undefined;
    if (shared) {
      if (!shared.ok) return false;
      this.#names.set(name, { tunnelId, expiresAt: shared.expiresAt });
      return true;
    }
    // Memory alone (no store, or it did not answer); another claim may have come meanwhile.
    const again = this.#names.get(name);
    if (again && again.expiresAt > this.#now()) return again.tunnelId === tunnelId;
    this.#names.set(name, { tunnelId, expiresAt: now + ttlMs });
    return true;
  }

  /** Registers the hash endpoint name of a tunnel (set-if-absent). */
  claim(endpoint: string, tunnelId: string): Promise<boolean> {
    return this.#claim(endpoint.toLowerCase(), tunnelId, this.#opts.ttlMs);
  }

  /** A custom name asked for in a BIND; false when not allowed, malformed or taken. */
  async claimCustom(name: string, tunnelId: string): Promise<boolean> {
    if (!this.#opts.allowCustom) return false;
    const n = name.toLowerCase();
    if (!LABEL_RE.test(n)) return false;
    return this.#claim(n, tunnelId, this.#opts.customTtlMs);
  }

  /** The tunnel for `<name>.<domain>` (or a bare `<name>`), or undefined. */
  lookup(host: string): string | undefined {
    const h = normalizeHost(host);
    let key = h;
    if (h.endsWith('.' + this.domain)) key = h.slice(0, -(this.domain.length + 1));
    if (key.includes('.')) return undefined;
    const e = this.#names.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= this.#now()) {
      this.#names.delete(key);
      return undefined;
    }
    return e.tunnelId;
  }

  /** The public URL host of a name. */
  hostFor(name: string): string {
    return `${name}.${this.domain}`;
  }

  get size(): number {
    return this.#names.size;
  }

  sweep(): void {
    const now = this.#now();
    for (const [k, e] of this.#names) if (e.expiresAt <= now) this.#names.delete(k);
  }

  close(): void {
    clearInterval(this.#sweeper);
    this.#opts.store?.close();
  }
}
