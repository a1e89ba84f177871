/**
 * Where the ACME manager keeps its account and certificates: files under a directory (one
 * server), or Redis (servers sharing it issue each name once: an issuance lock per name, and the
 * pending challenges are published so that any of them can answer the CA's validation).
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

export interface AcmeAccount {
  /** PEM private key of the account. */
  key: string;
  /** The account's URL at the CA, once registered. */
  url?: string;
}

export interface StoredCert {
  /** PEM chain, leaf first. */
  cert: string;
  /** PEM private key. */
  key: string;
}

/** A challenge answer being validated: an HTTP-01 token or a TLS-ALPN-01 name. */
export type PendingChallenge =
  | { type: 'http-01'; name: string; token: string; keyAuthorization: string }
  | { type: 'tls-alpn-01'; name: string; keyAuthorization: string; cert: string; key: string };

export interface AcmeStore {
  readonly shared: boolean;
  loadAccount(): Promise<AcmeAccount | undefined>;
  /** Saves `account` unless one is there already (another server's); returns the one to use. */
  saveAccount(account: AcmeAccount): Promise<AcmeAccount>;
  /** Names with a stored certificate. */
  names(): Promise<string[]>;
  getCert(name: string): Promise<StoredCert | undefined>;
  /** Stores a certificate; `expiresAt` (ms) lets a shared store drop it after expiry. */
  putCert(name: string, cert: StoredCert, expiresAt: number): Promise<void>;
  /** Takes the issuance lock of `name` for `ttlMs`: false when another holder has it. */
  lock(name: string, ttlMs: number): Promise<boolean>;
  unlock(name: string): Promise<void>;
  /** Makes a challenge answer known to every server sharing the store (no-op for files). */
  publish(ch: PendingChallenge, ttlMs: number): Promise<void>;
  withdraw(ch: PendingChallenge): Promise<void>;
  /** Challenges published or withdrawn by other servers. */
  onRemote(fn: (ch: PendingChallenge, added: boolean) => void): void;
  close(): Promise<void>;
}

/** File store: `<dir>/account.key` (0600), `<dir>/account.json`, `<dir>/certs/<name>.crt|.key` (0600). */
export class FileStore implements AcmeStore {
  readonly shared = false;
  readonly #locks = new Set<string>();
  constructor(readonly dir: string) {}

  async #ensure(sub = ''): Promise<string> {
    const d = join(this.dir, sub);
    await fs.mkdir(d, { recursive: true, mode: 0o700 });
    return d;
  }

  async loadAccount(): Promise<AcmeAccount | undefined> {
    const key = await readIfExists(join(this.dir, 'account.key'));
    if (!key) return undefined;
    const meta = await readIfExists(join(this.dir, 'account.json'));
    let url: string | undefined;
    if (meta) {
      try {
        const j = JSON.parse(meta) as { url?: unknown };
        if (typeof j.url === 'string') url = j.url;
      } catch {
        // A damaged account.json only loses the URL: the CA finds the account by its key.
      }
    }
    return { key, url };
  }

  async saveAccount(account: AcmeAccount): Promise<AcmeAccount> {
    const d = await this.#ensure();
    await writeAtomic(join(d, 'account.key'), account.key, 0o600);
    await writeAtomic(join(d, 'account.json'), JSON.stringify({ url: account.url }) + '\n', 0o644);
    return account;
  }

  async names(): Promise<string[]> {
    let files: string[];
    try {
      files = await fs.readdir(join(this.dir, 'certs'));
    } catch {
      return [];
    }
    return files.filter((f) => f.endsWith('.crt')).map((f) => f.slice(0, -4));
  }

  async getCert(name: string): Promise<StoredCert | undefined> {
    const d = join(this.dir, 'certs');
    const [cert, key] = await Promise.all([readIfExists(join(d, `${name}.crt`)), readIfExists(join(d, `${name}.key`))]);
    return cert && key ? { cert, key } : undefined;
  }

  async putCert(name: string, c: StoredCert): Promise<void> {
    const d = await this.#ensure('certs');
    await writeAtomic(join(d, `${name}.key`), c.key, 0o600);
    await writeAtomic(join(d, `${name}.crt`), c.cert, 0o644);
  }

  async lock(name: string): Promise<boolean> {
    if (this.#locks.has(name)) return false;
    this.#locks.add(name);
    return true;
  }

  async unlock(name: string): Promise<void> {
    this.#locks.delete(name);
  }

  async publish(): Promise<void> {}
  async withdraw(): Promise<void> {}
  onRemote(): void {}
  async close(): Promise<void> {}
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Writes through a temporary file and a rename, so a crash never leaves half a key. */
async function writeAtomic(file: string, data: string, mode: number): Promise<void> {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  await fs.writeFile(tmp, data, { mode });
  await fs.chmod(tmp, mode);
  await fs.rename(tmp, file);
}

const UNLOCK_SCRIPT = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/**
 * Redis store. Keys (under `prefix`): `account` (JSON), `cert:<name>` (JSON, expiring with the
 * certificate), `lock:<name>` (the issuance lock, with a TTL), `http:<token>` and
 * `alpn:<name>` (pending challenges, with a TTL); challenges are also published on the
 * `challenges` channel so every server holds them in memory for the CA's request.
 */
export class RedisStore implements AcmeStore {
  readonly shared = true;
  readonly #redis: Redis;
  readonly #sub: Redis;
  readonly #id = randomBytes(8).toString('hex');
  readonly #listeners: ((ch: PendingChallenge, added: boolean) => void)[] = [];
  readonly #ready: Promise<unknown>;

  constructor(
    url: string,
    private readonly prefix: string,
    onError: (err: Error) => void,
  ) {
    const opts = { maxRetriesPerRequest: 2, enableOfflineQueue: true };
    this.#redis = new Redis(url, opts);
    this.#sub = new Redis(url, opts);
    this.#redis.on('error', onError);
    this.#sub.on('error', onError);
    this.#sub.on('message', (_channel: string, message: string) => this.#message(message));
    this.#ready = this.#sub.subscribe(this.#key('challenges')).catch(onError);
  }

  #key(k: string): string {
    return this.prefix + k;
  }

  #message(message: string): void {
    let m: { from?: unknown; added?: unknown; ch?: PendingChallenge };
    try {
      m = JSON.parse(message) as typeof m;
    } catch {
      return;
    }
    if (m.from === this.#id || !m.ch || typeof m.ch.name !== 'string' || typeof m.ch.keyAuthorization !== 'string') return;
    if (m.ch.type !== 'http-01' && m.ch.type !== 'tls-alpn-01') return;
    if (m.ch.type === 'http-01' && typeof m.ch.token !== 'string') return;
    if (m.ch.type === 'tls-alpn-01' && (typeof m.ch.cert !== 'string' || typeof m.ch.key !== 'string')) return;
    for (const fn of this.#listeners) fn(m.ch, m.added === true);
  }

  async loadAccount(): Promise<AcmeAccount | undefined> {
    const raw = await this.#redis.get(this.#key('account'));
    if (!raw) return undefined;
    const j = JSON.parse(raw) as AcmeAccount;
    return typeof j.key === 'string' ? j : undefined;
  }

  async saveAccount(account: AcmeAccount): Promise<AcmeAccount> {
    const key = this.#key('account');
    // The first registration wins (NX); a later save of the same key only adds its URL.
    const set = await this.#redis.set(key, JSON.stringify(account), 'NX');
    if (set === 'OK') return account;
    const other = await this.loadAccount();
    if (other && other.key === account.key) {
      await this.#redis.set(key, JSON.stringify(account));
      return account;
    }
    return other ?? account;
  }

  async names(): Promise<string[]> {
    const out: string[] = [];
    const pattern = this.#key('cert:*');
    let cursor = '0';
    do {
      const [next, keys] = await this.#redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      cursor = next;
      for (const k of keys) out.push(k.slice(this.#key('cert:').length));
    } while (cursor !== '0');
    return out;
  }

  async getCert(name: string): Promise<StoredCert | undefined> {
    const raw = await this.#redis.get(this.#key(`cert:${name}`));
    if (!raw) return undefined;
    const j = JSON.parse(raw) as StoredCert;
    return typeof j.cert === 'string' && typeof j.key === 'string' ? j : undefined;
  }

  async putCert(name: string, c: StoredCert, expiresAt: number): Promise<void> {
    const ttl = Math.max(1000, Math.round(expiresAt - Date.now()));
    await this.#redis.set(this.#key(`cert:${name}`), JSON.stringify(c), 'PX', ttl);
  }

  async lock(name: string, ttlMs: number): Promise<boolean> {
    return (await this.#redis.set(this.#key(`lock:${name}`), this.#id, 'PX', ttlMs, 'NX')) === 'OK';
  }

  async unlock(name: string): Promise<void> {
    await this.#redis.eval(UNLOCK_SCRIPT, 1, this.#key(`lock:${name}`), this.#id);
  }

  #challengeKey(ch: PendingChallenge): string {
    return this.#key(ch.type === 'http-01' ? `http:${ch.token}` : `alpn:${ch.name}`);
  }

  async publish(ch: PendingChallenge, ttlMs: number): Promise<void> {
    await this.#redis.set(this.#challengeKey(ch), JSON.stringify(ch), 'PX', ttlMs);
    await this.#redis.publish(this.#key('challenges'), JSON.stringify({ from: this.#id, added: true, ch }));
  }

  async withdraw(ch: PendingChallenge): Promise<void> {
    await this.#redis.del(this.#challengeKey(ch));
    await this.#redis.publish(this.#key('challenges'), JSON.stringify({ from: this.#id, added: false, ch }));
  }

  onRemote(fn: (ch: PendingChallenge, added: boolean) => void): void {
    this.#listeners.push(fn);
  }

  /** Resolves once the challenge channel is subscribed. */
  ready(): Promise<unknown> {
    return this.#ready;
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
    this.#sub.disconnect();
  }
}
