/**
 * Public mode (`tunnel.publicDomain`): every BIND registers `<endpoint>.<domain>` → tunnel, as
 * the GOST.PLUS ingress plugin does with Redis (protocol.md §4), but built in and in memory.
 *
 * Who may hold a name:
 * - A label shaped like an endpoint (16 hex digits) is reserved for the tunnel whose ID it
 *   derives from (the first 8 bytes of MD5 of the ID text): that tunnel always gets it, even
 *   over a stale claim, and no other tunnel may ask for it (`claimCustom` answers 'reserved').
 * - Any other (custom) name is first come, first served; a name that is taken is refused
 *   ('taken') and the BIND falls back to the tunnel's endpoint, as gost does.
 *
 * How long: every connector holding a name keeps it; a name never expires while one does. The
 * TTL (`ttlMs` for endpoints, `customTtlMs` for custom names) counts from the departure of the
 * last holder, after which the name stops routing and is free. With a shared store
 * (`tunnel.publicStore`, public-store.ts) a claim is decided by the store first and held names
 * are refreshed there every quarter TTL, so names survive restarts, servers sharing the store
 * agree, and a server that dies lets its names expire a TTL later. Lookups always read memory.
 */
import { normalizeHost } from '../../ingress/ingress';
import type { NameStore } from './public-store';

interface NameEntry {
  tunnelId: string;
  /** Connectors (of this server) holding the name; it does not expire while there is one. */
  holders: number;
  /** When the name expires once it has no holder, ms (Infinity while held). */
  expiresAt: number;
  ttlMs: number;
  reserved: boolean;
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

/** A name held by one connector; `release` once when the connector goes. */
export interface NameHold {
  readonly name: string;
  release(): void;
}

/** Why a custom name was not granted. */
export type CustomRefusal = 'disabled' | 'invalid' | 'reserved' | 'taken' | 'blocked';

const LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const ENDPOINT_RE = /^[0-9a-f]{16}$/;

/** True for a label shaped like a tunnel endpoint (16 hex digits), reserved for its tunnel. */
export function isEndpointLabel(name: string): boolean {
  return ENDPOINT_RE.test(name.toLowerCase());
}

export class PublicNames {
  readonly domain: string;
  readonly #names = new Map<string, NameEntry>();
  /** Names an operator blocked (web API): never granted until unblocked; memory only. */
  readonly #blocked = new Map<string, { since: number; reason: string }>();
  readonly #opts: PublicNamesOptions;
  readonly #now: () => number;
  readonly #sweeper: NodeJS.Timeout;
  readonly #refresher: NodeJS.Timeout | undefined;
  #refreshing = false;

  constructor(opts: PublicNamesOptions) {
    this.#opts = opts;
    this.domain = normalizeHost(opts.domain).replace(/^\./, '');
    this.#now = opts.now ?? Date.now;
    this.#sweeper = setInterval(() => this.sweep(), 60_000);
    this.#sweeper.unref();
    if (opts.store) {
      // Held names are written again well before their expiry in the store runs out.
      const every = Math.max(50, Math.min(60_000, Math.floor(Math.min(opts.ttlMs, opts.customTtlMs) / 4)));
      this.#refresher = setInterval(() => void this.#refresh(), every);
      this.#refresher.unref();
    }
  }

  #live(e: NameEntry, now: number): boolean {
    return e.holders > 0 || e.expiresAt > now;
  }

  /** Whether memory lets `tunnelId` have `name` (free, expired or its own). */
  #free(name: string, tunnelId: string): boolean {
    const cur = this.#names.get(name);
    return !cur || cur.tunnelId === tunnelId || !this.#live(cur, this.#now());
  }

  async #hold(name: string, tunnelId: string, ttlMs: number, reserved: boolean): Promise<NameHold | undefined> {
    if (!reserved && !this.#free(name, tunnelId)) return undefined;
    const shared = this.#opts.store ? await this.#opts.store.claim(name, tunnelId, ttlMs, reserved) : undefined;
    if (shared === false) return undefined;
    // Memory decides when the store did not answer; another claim may have come meanwhile.
    if (!reserved && !this.#free(name, tunnelId)) return undefined;
    let e = this.#names.get(name);
    if (!e || e.tunnelId !== tunnelId) {
      e = { tunnelId, holders: 0, expiresAt: Infinity, ttlMs, reserved };
      this.#names.set(name, e);
    }
    e.holders++;
    e.expiresAt = Infinity;
    const entry = e;
    let released = false;
    return {
      name,
      release: () => {
        if (released) return;
        released = true;
        if (--entry.holders > 0 || this.#names.get(name) !== entry) return;
        entry.expiresAt = this.#now() + entry.ttlMs;
        // The store's expiry counts from now too (other servers' holders keep refreshing it).
        void this.#opts.store?.claim(name, tunnelId, entry.ttlMs, entry.reserved);
      },
    };
  }

  async #refresh(): Promise<void> {
    const store = this.#opts.store;
    if (!store || this.#refreshing) return;
    this.#refreshing = true;
    try {
      for (const [name, e] of [...this.#names]) {
        if (e.holders > 0) await store.claim(name, e.tunnelId, e.ttlMs, e.reserved);
      }
    } finally {
      this.#refreshing = false;
    }
  }

  /** Holds the endpoint name of a tunnel for one connector: always granted (it is reserved). */
  async holdEndpoint(endpoint: string, tunnelId: string): Promise<NameHold> {
    return (await this.#hold(endpoint.toLowerCase(), tunnelId, this.#opts.ttlMs, true))!;
  }

  /** Holds a custom name asked for in a BIND, or says why not. */
  async holdCustom(name: string, tunnelId: string): Promise<NameHold | CustomRefusal> {
    if (!this.#opts.allowCustom) return 'disabled';
    const n = name.toLowerCase();
    if (!LABEL_RE.test(n)) return 'invalid';
    if (isEndpointLabel(n)) return 'reserved';
    if (this.#blocked.has(n)) return 'blocked';
    return (await this.#hold(n, tunnelId, this.#opts.customTtlMs, false)) ?? 'taken';
  }

  /** The tunnel for `<name>.<domain>` (or a bare `<name>`), or undefined. */
  lookup(host: string): string | undefined {
    const h = normalizeHost(host);
    let key = h;
    if (h.endsWith('.' + this.domain)) key = h.slice(0, -(this.domain.length + 1));
    if (key.includes('.')) return undefined;
    const e = this.#names.get(key);
    if (!e) return undefined;
    if (!this.#live(e, this.#now())) {
      this.#names.delete(key);
      return undefined;
    }
    return e.tunnelId;
  }

  /**
   * The bare name of `<name>.<domain>` or of a bare label (lower case), or undefined when it is
   * not a valid label of this domain.
   */
  labelOf(host: string): string | undefined {
    let n = host.trim().toLowerCase().replace(/\.$/, '');
    if (n.endsWith('.' + this.domain)) n = n.slice(0, -(this.domain.length + 1));
    return LABEL_RE.test(n) ? n : undefined;
  }

  /**
   * Frees a name at once (abuse control): it stops routing, another tunnel may claim it, and
   * the shared store forgets it. Connectors holding it keep their sessions (and their endpoint
   * name). Returns the tunnel it was routing to, or undefined when it was not live.
   */
  release(name: string): string | undefined {
    const e = this.#names.get(name);
    if (!e) return undefined;
    this.#names.delete(name);
    void this.#opts.store?.release?.(name, e.tunnelId);
    return this.#live(e, this.#now()) ? e.tunnelId : undefined;
  }

  /**
   * Blocks a custom name (abuse control): it is released now and no BIND gets it until
   * `unblock` (a BIND asking for it gets its endpoint name, as for a taken one). Endpoint
   * labels cannot be blocked (revoke the tunnel instead). Returns the tunnel it was routing to.
   */
  block(name: string, reason: string): string | undefined {
    if (isEndpointLabel(name)) throw new Error(`${name} is a tunnel's endpoint name: revoke the tunnel instead`);
    if (!this.#blocked.has(name)) this.#blocked.set(name, { since: Date.now(), reason });
    return this.release(name);
  }

  /** Lifts a block; false when the name was not blocked. */
  unblock(name: string): boolean {
    return this.#blocked.delete(name);
  }

  /** Blocked names, with when and why. */
  blocked(): Array<{ name: string; since: number; reason: string }> {
    return [...this.#blocked].map(([name, b]) => ({ name, ...b }));
  }

  /** The public URL host of a name. */
  hostFor(name: string): string {
    return `${name}.${this.domain}`;
  }

  /** Live names (status readers): name, tunnel, connectors holding it, expiry once unheld. */
  snapshot(): Array<{ name: string; host: string; tunnelId: string; holders: number; reserved: boolean; expiresAt?: number }> {
    const now = this.#now();
    const out = [];
    for (const [name, e] of this.#names) {
      if (!this.#live(e, now)) continue;
      out.push({
        name,
        host: this.hostFor(name),
        tunnelId: e.tunnelId,
        holders: e.holders,
        reserved: e.reserved,
        ...(e.holders > 0 ? {} : { expiresAt: e.expiresAt }),
      });
    }
    return out;
  }

  get size(): number {
    return this.#names.size;
  }

  sweep(): void {
    const now = this.#now();
    for (const [k, e] of this.#names) if (!this.#live(e, now)) this.#names.delete(k);
  }

  close(): void {
    clearInterval(this.#sweeper);
    if (this.#refresher) clearInterval(this.#refresher);
    this.#opts.store?.close();
  }
}
