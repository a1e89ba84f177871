/**
 * Brute-force lockout that stops guessing without locking out the innocent.
 *
 * What is counted is a *guess*: a wrong password not already tried for that user from that
 * address. A client with a stale password repeats one wrong password, which tells it nothing
 * new, so it is refused every time but never counts more than once; a correct client behind
 * the same NAT, with the same user name, keeps getting in.
 *
 * - Per address and user: after `freeGuesses` guesses (5), each further guess has to wait a
 *   back-off that doubles with every guess (30 s, 1 min, 2 min … up to `maxBackoffMs`, 15 min).
 *   While it runs, that user's attempts from that address are refused without being checked
 *   (the right password included: checking it would be answering a guess).
 * - Per address: guesses for every user together are bounded the same way, with a larger
 *   allowance (`addressGuesses`, 20), so rotating user names does not give unlimited guesses.
 *   A user who logged in from that address within `forgetMs` is exempt from the address's
 *   back-off (only its own applies): an attacker rotating names behind a NAT cannot lock out
 *   the users working there, and gets at most its own allowance on their names.
 * - A success does not clear a record (or an attacker sharing the address with a user who logs
 *   in now and then would get a fresh allowance each time). Records are forgotten `forgetMs`
 *   (15 min) after their last guess once their back-off is over; the tables are bounded.
 *
 * Wrong passwords are remembered as keyed hashes (a per-process random key), a few per record.
 */
import { createHmac, randomBytes } from 'node:crypto';

export interface LockoutOptions {
  freeGuesses?: number;
  addressGuesses?: number;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  forgetMs?: number;
  maxKeys?: number;
  now?: () => number;
}

interface Rec {
  guesses: number;
  /** Not before this time (ms): the back-off of the last guess. */
  until: number;
  last: number;
  /** Keyed hashes of the wrong passwords tried (user records only). */
  tried: string[];
}

const REMEMBERED_PASSWORDS = 8;

export class Lockout {
  readonly #o: Required<LockoutOptions>;
  readonly #users = new Map<string, Rec>();
  readonly #addrs = new Map<string, Rec>();
  /** "addr\0user" → when it last logged in from there. */
  readonly #good = new Map<string, number>();
  readonly #key = randomBytes(32);

  constructor(o: LockoutOptions = {}) {
    this.#o = {
      freeGuesses: 5,
      addressGuesses: 20,
      baseBackoffMs: 30_000,
      maxBackoffMs: 15 * 60_000,
      forgetMs: 15 * 60_000,
      maxKeys: 100_000,
      now: Date.now,
      ...o,
    };
  }

  #fresh(map: Map<string, Rec>, key: string, now: number): Rec | undefined {
    const r = map.get(key);
    if (r && now >= r.until && now - r.last > this.#o.forgetMs) {
      map.delete(key);
      return undefined;
    }
    return r;
  }

  /**
   * True when an attempt for `user` from `addr` (an IP) may be checked now; false while a
   * back-off runs (then the attempt is refused unchecked).
   */
  allowed(addr: string, user: string): boolean {
    const now = this.#o.now();
    const u = this.#fresh(this.#users, `${addr}\0${user}`, now);
    if (u && now < u.until) return false;
    const a = this.#fresh(this.#addrs, addr, now);
    if (a && now < a.until && !this.#isGood(`${addr}\0${user}`, now)) return false;
    return true;
  }

  #isGood(k: string, now: number): boolean {
    const t = this.#good.get(k);
    if (t === undefined) return false;
    if (now - t <= this.#o.forgetMs) return true;
    this.#good.delete(k);
    return false;
  }

  /** The attempt was right. */
  succeeded(addr: string, user: string): void {
    const k = `${addr}\0${user}`;
    this.#good.delete(k); // re-inserted last: the bound drops the oldest
    this.#bound(this.#good);
    this.#good.set(k, this.#o.now());
  }

  /** The attempt was wrong; `password` tells a new guess from a repeated one. */
  failed(addr: string, user: string, password: string): void {
    const now = this.#o.now();
    const k = `${addr}\0${user}`;
    let u = this.#fresh(this.#users, k, now);
    const h = createHmac('sha256', this.#key).update(password).digest('base64');
    if (u?.tried.includes(h)) {
      u.last = now;
      return; // the same wrong password again: no new guess
    }
    if (!u) {
      this.#bound(this.#users);
      u = { guesses: 0, until: 0, last: now, tried: [] };
      this.#users.set(k, u);
    }
    u.tried.push(h);
    if (u.tried.length > REMEMBERED_PASSWORDS) u.tried.shift();
    this.#guess(u, this.#o.freeGuesses, now);
    let a = this.#fresh(this.#addrs, addr, now);
    if (!a) {
      this.#bound(this.#addrs);
      a = { guesses: 0, until: 0, last: now, tried: [] };
      this.#addrs.set(addr, a);
    }
    this.#guess(a, this.#o.addressGuesses, now);
  }

  #guess(r: Rec, free: number, now: number): void {
    r.guesses++;
    r.last = now;
    const over = r.guesses - free;
    if (over > 0) r.until = now + Math.min(this.#o.maxBackoffMs, this.#o.baseBackoffMs * 2 ** Math.min(over - 1, 30));
  }

  #bound<V>(map: Map<string, V>): void {
    if (map.size < this.#o.maxKeys) return;
    // Oldest first (insertion order): drop a tenth.
    let n = Math.ceil(this.#o.maxKeys / 10);
    for (const k of map.keys()) {
      map.delete(k);
      if (--n <= 0) break;
    }
  }
}
