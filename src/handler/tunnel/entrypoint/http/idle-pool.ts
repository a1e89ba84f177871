/**
 * Where the entry point keeps tunnel streams between requests, two levels:
 *
 * - `ConnectionStreams`: a keep-alive visitor connection keeps one stream per connector ×
 *   tunnel × host × client address for its next requests to that connector (at most
 *   MAX_POOLED_PER_CONNECTION, the oldest goes);
 * - `IdlePool`: a stream whose exchange is over idles up to SHARED_IDLE_MS for a later
 *   connection from the same client IP to the same host on the same connector (at most
 *   MAX_IDLE_PER_KEY per key and MAX_IDLE in all), most recent first.
 *
 * A stream in either is marked idle at its connector (tunnel/pool.ts), which closes it first
 * when it drains or needs room for a new stream.
 */
import { destroy } from '../../../../io/pipe';
import type { IdleHolder, Upstream } from './upstream';

/** Streams one visitor connection keeps (connector × tunnel × host × client); the oldest goes beyond it. */
export const MAX_POOLED_PER_CONNECTION = 16;
/** Idle streams the entry point keeps for later connections, per connector × host × client IP. */
export const MAX_IDLE_PER_KEY = 64;
/** Idle streams the entry point keeps for later connections, in all. */
export const MAX_IDLE = 1024;
/**
 * How long a stream idles for later connections before it is closed: below the shortest
 * keep-alive timeout common among origins (Node's 5 s), so an origin rarely closes a stream
 * just as a request goes down it.
 */
export const SHARED_IDLE_MS = 4_000;

/** The streams of one visitor connection between its requests, by connector × tunnel × host × client. */
export class ConnectionStreams {
  #pool: Map<string, Upstream> | undefined;

  /** The stream kept under `key`, if it can still carry a request (else it is closed). */
  take(key: string): Upstream | undefined {
    const up = this.#pool?.get(key);
    if (!up) return undefined;
    this.#pool!.delete(key);
    up.idleKey = undefined;
    up.markIdle(false);
    if (!up.reusable) {
      up.drop();
      return undefined;
    }
    return up;
  }

  /** Keeps `up` under `key` (replacing what was there; the oldest goes beyond the bound). */
  put(key: string, up: Upstream): void {
    const pool = (this.#pool ??= new Map());
    const old = pool.get(key);
    if (old && old !== up) {
      old.drop();
      pool.delete(key);
    }
    if (pool.size >= MAX_POOLED_PER_CONNECTION) {
      const [oldKey, oldest] = pool.entries().next().value as [string, Upstream];
      pool.delete(oldKey);
      oldest.drop();
    }
    up.idleKey = key;
    up.markIdle(true);
    up.stream.resume();
    pool.set(key, up);
  }

  /** A kept stream ended or spoke: no longer kept. */
  forget(up: Upstream): void {
    if (up.idleKey !== undefined && this.#pool?.get(up.idleKey) === up) this.#pool.delete(up.idleKey);
    up.idleKey = undefined;
  }

  /** Every kept stream, and the pool emptied (the connection closed). */
  takeAll(): Upstream[] {
    if (!this.#pool) return [];
    const all = [...this.#pool.values()];
    this.#pool.clear();
    return all;
  }
}

/** Idle streams for later connections, oldest first per key. */
export class IdlePool implements IdleHolder {
  readonly #idle = new Map<string, Upstream[]>();
  #count = 0;
  #sweep: NodeJS.Timeout | undefined;

  get size(): number {
    return this.#count;
  }

  /** The most recent idle stream under `key` that can still carry a request; the dead ones go. */
  take(key: string): Upstream | undefined {
    if (this.#count === 0) return undefined;
    const list = this.#idle.get(key);
    while (list !== undefined && list.length > 0) {
      const up = this.#left(list.pop()!);
      if (up.reusable) {
        if (list.length === 0) this.#idle.delete(key);
        return up;
      }
      destroy(up.stream);
    }
    if (list !== undefined) this.#idle.delete(key);
    return undefined;
  }

  /** Keeps a stream whose exchange is over (false: full or not reusable; the caller releases it). */
  put(up: Upstream): boolean {
    if (!up.reusable || this.#count >= MAX_IDLE) return false;
    let list = this.#idle.get(up.sharedKey);
    if (list === undefined) this.#idle.set(up.sharedKey, (list = []));
    if (list.length >= MAX_IDLE_PER_KEY) destroy(this.#left(list.shift()!).stream);
    up.idlePool = this;
    up.idleSince = Date.now();
    up.markIdle(true);
    up.stream.resume();
    list.push(up);
    this.#count++;
    if (this.#sweep === undefined) {
      this.#sweep = setInterval(() => this.#sweepIdle(), 1_000);
      this.#sweep.unref();
    }
    return true;
  }

  forgetIdle(up: Upstream): void {
    if (up.idlePool !== this) return;
    up.idlePool = undefined;
    const list = this.#idle.get(up.sharedKey);
    const i = list === undefined ? -1 : list.indexOf(up);
    if (i < 0) return;
    list!.splice(i, 1);
    this.#left(up);
    if (list!.length === 0) this.#idle.delete(up.sharedKey);
  }

  /** Closes every idle stream. */
  close(): void {
    for (const list of this.#idle.values()) {
      for (const up of list) {
        up.idlePool = undefined;
        destroy(up.stream);
      }
    }
    this.#idle.clear();
    this.#count = 0;
    if (this.#sweep !== undefined) clearInterval(this.#sweep);
    this.#sweep = undefined;
  }

  /** Bookkeeping for a stream leaving the pool (its list entry is already gone). */
  #left(up: Upstream): Upstream {
    this.#count--;
    up.idlePool = undefined;
    up.markIdle(false);
    return up;
  }

  #sweepIdle(): void {
    const cutoff = Date.now() - SHARED_IDLE_MS;
    for (const [key, list] of this.#idle) {
      while (list.length > 0 && list[0]!.idleSince <= cutoff) this.#left(list.shift()!).release();
      if (list.length === 0) this.#idle.delete(key);
    }
    if (this.#count === 0 && this.#sweep !== undefined) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }
}
