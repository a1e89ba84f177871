/**
 * A shared store for public names (`tunnel.publicStore=redis://…`): the names that BINDs claim
 * are kept in Redis as well as in memory, so they survive a server restart and several servers
 * (HA, every client bound to each) agree on who owns a custom name. The layout is the one of
 * gost-plugins' Redis-backed ingress (protocol.md §4): key = the bare name (the first DNS label
 * of `<name>.<domain>`, after an optional prefix), value = the tunnel ID text, written with
 * `SET NX` and an expiry that later binds do not refresh. A server of each kind can use the
 * same database.
 *
 * Only BIND consults Redis; routing reads the in-memory copy that claims fill, so the entry
 * point never waits for Redis. When Redis does not answer (within `timeoutMs`), a claim is
 * decided in memory alone and a warning says so.
 */
import type { Redis as RedisClient } from 'ioredis';
import { SourceHealth } from '../../io/sources';

export interface NameClaim {
  /** True when the name is (now) the tunnel's. */
  ok: boolean;
  /** When the name expires, ms since the epoch (for a claim that is ok). */
  expiresAt: number;
}

export interface NameStore {
  /** Claims `name` for `tunnelId` for `ttlMs` unless another tunnel holds it; undefined = no answer. */
  claim(name: string, tunnelId: string, ttlMs: number): Promise<NameClaim | undefined>;
  close(): void;
}

interface Logger {
  warn(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
}

/** A URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(bad URL)';
  }
}

export class RedisNameStore implements NameStore {
  readonly #client: RedisClient;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  readonly #health: SourceHealth;
  #lastError: Error | undefined;

  constructor(url: string, opts: { prefix?: string; timeoutMs?: number; logger: Logger }) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Redis } = require('ioredis') as typeof import('ioredis');
    this.#timeoutMs = opts.timeoutMs ?? 2000;
    this.#client = new Redis(url, {
      lazyConnect: true,
      connectTimeout: this.#timeoutMs,
      maxRetriesPerRequest: 1,
      retryStrategy: (times: number) => Math.min(times * 200, 5000),
      connectionName: 'burrow-public-names',
    });
    this.#client.on('error', (err: Error) => {
      this.#lastError = err;
    });
    this.#prefix = opts.prefix ?? '';
    this.#health = new SourceHealth(opts.logger, `public names: ${redactUrl(url)}`);
  }

  async #claimOnce(key: string, tunnelId: string, ttlMs: number): Promise<NameClaim | undefined> {
    const c = this.#client;
    if (c.status === 'wait') await c.connect();
    const now = Date.now();
    if ((await c.set(key, tunnelId, 'PX', ttlMs, 'NX')) === 'OK') return { ok: true, expiresAt: now + ttlMs };
    const [owner, pttl] = await Promise.all([c.get(key), c.pttl(key)]);
    if (owner === null) return undefined; // expired in between: try again
    if (owner !== tunnelId) return { ok: false, expiresAt: 0 };
    // The tunnel's own name: keep its first expiry (a key without one lives as long as ours would).
    return { ok: true, expiresAt: now + (pttl > 0 ? pttl : ttlMs) };
  }

  async claim(name: string, tunnelId: string, ttlMs: number): Promise<NameClaim | undefined> {
    const key = this.#prefix + name;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), this.#timeoutMs);
    });
    try {
      const attempt = async (): Promise<NameClaim | 'timeout'> => {
        for (let i = 0; i < 3; i++) {
          const r = await this.#claimOnce(key, tunnelId, ttlMs);
          if (r) return r;
        }
        throw new Error(`the key ${key} keeps expiring while it is read`);
      };
      const r = await Promise.race([attempt(), timeout.then(() => 'timeout' as const)]);
      if (r === 'timeout') throw new Error(`no answer within ${this.#timeoutMs} ms${this.#lastError ? ` (${this.#lastError.message})` : ''}`);
      this.#health.ok('Redis');
      return r;
    } catch (err) {
      const down = this.#client.status !== 'ready' && this.#lastError !== undefined;
      this.#health.failed(new Error(`${down ? this.#lastError!.message : (err as Error).message}; names are claimed in memory only until it answers`));
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.#client.disconnect();
  }
}
