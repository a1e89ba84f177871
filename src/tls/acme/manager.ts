/**
 * Automatic certificates (ACME, RFC 8555) for the entry point's TLS termination.
 *
 * `contextFor(name)` answers a handshake: a stored valid certificate at once; a name the entry
 * point does not call eligible (not a live tunnel's) gets undefined (the connection passes
 * through) without any order; an eligible name without a certificate starts one order (concurrent
 * handshakes for the name wait on it) and gets its context, or undefined when the order fails
 * (logged once per name, retried with back-off). Orders are capped per minute per server.
 *
 * The CA validates by HTTP-01 (the entry point's plain HTTP side asks `httpChallenge`) or
 * TLS-ALPN-01 (a ClientHello offering `acme-tls/1` gets `alpnChallengeContext`), whichever the
 * CA offers first in `challenges` order. Certificates renew in the background before expiry.
 * Account and certificates are files under `storageDir`, or live in Redis when `redis` is given:
 * then servers sharing it issue each name once (an issuance lock) and any of them can answer a
 * challenge (published to all).
 */
import { join } from 'node:path';
import tls, { type SecureContext } from 'node:tls';
import * as acme from 'acme-client';
import { ConfigError } from '../../core/errors';
import type { Logger } from '../../observe/logger';
import { silentLogger } from '../../observe/logger';
import type { CertificateProvider } from '../provider';
import { certValidity, defaultAcmeStorage, directorySlug, readCaFile, trustCa, withDeadline } from './support';
export { defaultAcmeStorage, directorySlug } from './support';
import { FileStore, RedisStore, type AcmeAccount, type AcmeStore, type PendingChallenge, type StoredCert } from './store';

export type ChallengeType = 'http-01' | 'tls-alpn-01';

export interface AcmeManagerOptions {
  /** The CA's directory URL (`entrypoint.acme`). */
  directoryUrl: string;
  /** Contact address for the account (`entrypoint.acmeEmail`). */
  email?: string;
  /** PEM file of a CA to trust for the ACME server itself (`entrypoint.acmeCA`). */
  caFile?: string;
  /** Account and certificates (`entrypoint.acmeStorage`); default `defaultAcmeStorage()`. */
  storageDir?: string;
  /** True only for names a certificate may be ordered for (names of live tunnels). */
  eligible: (name: string) => boolean;
  /** `redis://…`: certificates, challenges and the issuance lock live in Redis. */
  redis?: string;
  /** Prefix of the Redis keys (default `burrow:acme:`). */
  redisPrefix?: string;
  /** Orders (new and renewals) this server starts per minute at most (default 10). */
  ordersPerMinute?: number;
  /** Renew this long before expiry (default: a third of the lifetime, at most 30 days). */
  renewBeforeMs?: number;
  /** First retry delay after a failed order, doubling per failure (default 1 min)… */
  retryMinMs?: number;
  /** …up to this (default 1 h). */
  retryMaxMs?: number;
  /** Challenge types in order of preference (default TLS-ALPN-01, then HTTP-01). */
  challenges?: readonly ChallengeType[];
  /** Deadline for one order, validation included (default 3 min). */
  orderTimeoutMs?: number;
  /**
   * How long a handshake waits for its name's first order (default 20 s); a longer order goes on
   * in the background while the handshake passes through, and later handshakes get the certificate.
   */
  handshakeWaitMs?: number;
  logger?: Logger;
}

export interface AcmeStats {
  /** Orders sent to the CA (new names and renewals). */
  orders: number;
  issued: number;
  renewed: number;
  failures: number;
  /** Handshakes that found the order rate cap holding. */
  capped: number;
  /** Certificates taken from the store that another server (or an earlier run) issued. */
  adopted: number;
}

/** A DNS name a certificate can be ordered for: letters, digits, hyphens; at least two labels; not an IP. */
const DNS_NAME = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const TOKEN_PATH = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]{1,256})$/;
const MAX_TIMER_MS = 2 ** 31 - 1;
const CHALLENGE_TTL_MS = 10 * 60_000;
const LOCK_POLL_MS = 250;

interface Installed {
  ctx: SecureContext;
  notBefore: number;
  notAfter: number;
  renewAt: number;
  timer?: NodeJS.Timeout;
}

interface Failure {
  count: number;
  next: number;
}

class CapError extends Error {}

export class AcmeManager implements CertificateProvider {
  readonly stats: AcmeStats = { orders: 0, issued: 0, renewed: 0, failures: 0, capped: 0, adopted: 0 };
  readonly storageDir: string;
  readonly #o: AcmeManagerOptions;
  readonly #log: Logger;
  readonly #store: AcmeStore;
  readonly #certs = new Map<string, Installed>();
  readonly #pending = new Map<string, Promise<SecureContext | undefined>>();
  readonly #failures = new Map<string, Failure>();
  readonly #tokens = new Map<string, { name: string; keyAuthorization: string }>();
  readonly #alpn = new Map<string, SecureContext>();
  readonly #orderTimes: number[] = [];
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #sleepers = new Set<() => void>();
  #capLogged = false;
  #client?: Promise<acme.Client>;
  #started?: Promise<void>;
  #closed = false;
  #untrust?: () => void;
  #redisErrorLogged = false;

  constructor(opts: AcmeManagerOptions) {
    this.#o = opts;
    this.#log = opts.logger ?? silentLogger;
    try {
      new URL(opts.directoryUrl);
    } catch {
      throw new ConfigError(`"${opts.directoryUrl}" is not a directory URL`, { path: 'entrypoint.acme' });
    }
    this.storageDir = join(opts.storageDir ?? defaultAcmeStorage(), directorySlug(opts.directoryUrl));
    if (opts.caFile) this.#untrust = trustCa(opts.directoryUrl, readCaFile(opts.caFile));
    if (opts.redis) {
      const prefix = `${opts.redisPrefix ?? 'burrow:acme:'}${directorySlug(opts.directoryUrl)}:`;
      this.#store = new RedisStore(opts.redis, prefix, (err) => {
        if (this.#redisErrorLogged) return;
        this.#redisErrorLogged = true;
        this.#log.warn({ err: err.message }, 'ACME store: Redis error');
      });
    } else {
      this.#store = new FileStore(this.storageDir);
    }
    this.#store.onRemote((ch, added) => this.#remoteChallenge(ch, added));
  }

  /** Loads the stored certificates (and schedules their renewal). Idempotent. */
  start(): Promise<void> {
    this.#started ??= this.#load().catch((err: unknown) => {
      // Redis down at start, say: logged, and tried again by the next order.
      this.#started = undefined;
      this.#log.warn({ err: (err as Error).message, storage: this.#where() }, 'ACME: stored certificates not loaded');
      throw err;
    });
    return this.#started;
  }

  async #load(): Promise<void> {
    if (this.#store instanceof RedisStore) await this.#store.ready();
    for (const name of await this.#store.names()) {
      if (!DNS_NAME.test(name)) continue;
      try {
        const c = await this.#store.getCert(name);
        if (c) this.#install(name, c);
      } catch (err) {
        this.#log.warn({ name, err: (err as Error).message }, 'ACME: stored certificate not loaded');
      }
    }
    if (this.#certs.size > 0) this.#log.info({ certificates: this.#certs.size, storage: this.#where() }, 'ACME certificates loaded');
  }

  #where(): string {
    return this.#o.redis ? 'redis' : this.storageDir;
  }

  /** Names with a certificate in memory. */
  names(): string[] {
    return [...this.#certs.keys()];
  }

  /** The installed certificate's validity (ms since the epoch), for tests and metrics. */
  certificateInfo(name: string): { notBefore: number; notAfter: number; renewAt: number } | undefined {
    const c = this.#certs.get(name.toLowerCase());
    return c && { notBefore: c.notBefore, notAfter: c.notAfter, renewAt: c.renewAt };
  }

  /** Whether a valid certificate for the name is here now (no order): the entry point's redirects and BIND answers. */
  has(servername: string): boolean {
    const c = this.#certs.get(servername.toLowerCase());
    return c !== undefined && c.notAfter > Date.now();
  }

  contextFor(servername: string): SecureContext | undefined | Promise<SecureContext | undefined> {
    const name = servername.toLowerCase();
    const have = this.#certs.get(name);
    if (have && have.notAfter > Date.now()) return have.ctx;
    if (this.#closed || !DNS_NAME.test(name) || !this.#isEligible(name)) return undefined;
    const f = this.#failures.get(name);
    if (f && Date.now() < f.next) return undefined;
    const order = this.#obtain(name, false);
    const wait = this.#o.handshakeWaitMs ?? 20_000;
    return wait > 0 ? withDeadline(order, wait, '').catch(() => undefined) : undefined;
  }

  /** The key authorization for an HTTP-01 request (`/.well-known/acme-challenge/<token>`), or undefined (404). */
  httpChallenge(host: string, path: string): string | undefined {
    const m = TOKEN_PATH.exec(path);
    if (!m) return undefined;
    const t = this.#tokens.get(m[1]!);
    if (!t) return undefined;
    const h = host.toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
    return h === t.name ? t.keyAuthorization : undefined;
  }

  /** The context with the acmeIdentifier certificate for a ClientHello offering `acme-tls/1`, or undefined. */
  alpnChallengeContext(servername: string): SecureContext | undefined {
    return this.#alpn.get(servername.toLowerCase());
  }

  /** Stops renewals and closes the store's connections; pending orders end without a certificate. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    for (const c of this.#certs.values()) if (c.timer) clearTimeout(c.timer);
    for (const wake of this.#sleepers) wake();
    // An order in flight is not awaited: it ends without a certificate (its handshake passes through).
    await this.#store.close();
    this.#untrust?.();
    this.#untrust = undefined;
  }

  // One order at a time per name: later callers share the first one's promise.
  #obtain(name: string, renewing: boolean): Promise<SecureContext | undefined> {
    const running = this.#pending.get(name);
    if (running) return running;
    const p = this.#issue(name, renewing).finally(() => this.#pending.delete(name));
    this.#pending.set(name, p);
    return p;
  }

  async #issue(name: string, renewing: boolean): Promise<SecureContext | undefined> {
    try {
      await this.start();
      const ctx = await this.#issueLocked(name, renewing);
      this.#failures.delete(name);
      return ctx;
    } catch (err) {
      if (err instanceof CapError || this.#closed) {
        if (renewing && !this.#closed) this.#retryRenewal(name, this.#o.retryMinMs ?? 60_000);
        return undefined;
      }
      this.stats.failures++;
      const f = this.#failures.get(name) ?? { count: 0, next: 0 };
      const delay = Math.min(this.#o.retryMaxMs ?? 3_600_000, (this.#o.retryMinMs ?? 60_000) * 2 ** f.count);
      f.count++;
      f.next = Date.now() + delay;
      this.#failures.set(name, f);
      const fields = { name, err: (err as Error).message, retryInMs: delay };
      if (f.count === 1) this.#log.warn(fields, renewing ? 'ACME renewal failed' : 'ACME order failed; the name passes through until a retry succeeds');
      else this.#log.debug(fields, 'ACME order failed again');
      if (renewing) this.#retryRenewal(name, delay);
      return undefined;
    }
  }

  async #issueLocked(name: string, renewing: boolean): Promise<SecureContext | undefined> {
    const timeout = this.#o.orderTimeoutMs ?? 180_000;
    const deadline = Date.now() + timeout;
    for (;;) {
      if (this.#closed) return undefined;
      const fresh = await this.#freshStored(name);
      if (fresh) return fresh;
      if (await this.#store.lock(name, timeout)) break;
      // Another server is ordering this name: wait for its certificate (or its lock to lapse).
      if (Date.now() > deadline) throw new Error('another server held the issuance lock until the order deadline');
      await this.#sleep(LOCK_POLL_MS);
    }
    try {
      const fresh = await this.#freshStored(name);
      if (fresh) return fresh;
      this.#takeOrderSlot();
      this.stats.orders++;
      const stored = await withDeadline(this.#order(name), timeout, `order for ${name}`);
      const notAfter = certValidity(stored.cert).notAfter;
      await this.#store.putCert(name, stored, notAfter);
      const ctx = this.#install(name, stored);
      if (renewing) this.stats.renewed++;
      else this.stats.issued++;
      this.#log.info({ name, notAfter: new Date(notAfter).toISOString(), renewal: renewing }, 'ACME certificate issued');
      return ctx;
    } finally {
      await this.#store.unlock(name).catch(() => undefined);
    }
  }

  /** A stored certificate that is not yet due for renewal (another server's or a newer one), installed. */
  async #freshStored(name: string): Promise<SecureContext | undefined> {
    const stored = await this.#store.getCert(name);
    if (!stored) return undefined;
    try {
      const v = certValidity(stored.cert);
      const current = this.#certs.get(name);
      if (Date.now() >= this.#renewAt(v.notBefore, v.notAfter)) return undefined;
      if (current && current.notAfter >= v.notAfter) return current.ctx;
      const ctx = this.#install(name, stored);
      this.stats.adopted++;
      return ctx;
    } catch (err) {
      // A damaged stored pair is replaced by the next order.
      this.#log.warn({ name, err: (err as Error).message }, 'ACME: stored certificate not usable');
      return undefined;
    }
  }

  #takeOrderSlot(): void {
    const now = Date.now();
    while (this.#orderTimes.length > 0 && this.#orderTimes[0]! <= now - 60_000) this.#orderTimes.shift();
    const cap = this.#o.ordersPerMinute ?? 10;
    if (this.#orderTimes.length >= cap) {
      this.stats.capped++;
      if (!this.#capLogged) {
        this.#capLogged = true;
        this.#log.warn({ ordersPerMinute: cap }, 'ACME order rate cap reached: names without a certificate pass through until it frees');
      }
      throw new CapError('order rate cap');
    }
    this.#capLogged = false;
    this.#orderTimes.push(now);
  }

  #client_(): Promise<acme.Client> {
    this.#client ??= this.#account().catch((err: unknown) => {
      this.#client = undefined;
      throw err;
    });
    return this.#client;
  }

  async #account(): Promise<acme.Client> {
    let account: AcmeAccount | undefined = await this.#store.loadAccount();
    if (!account) {
      const key = (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
      account = await this.#store.saveAccount({ key });
    }
    const opts = { directoryUrl: this.#o.directoryUrl, accountKey: account.key, backoffAttempts: 12, backoffMin: 200, backoffMax: 10_000 };
    if (account.url) return new acme.Client({ ...opts, accountUrl: account.url });
    const client = new acme.Client(opts);
    await client.createAccount({ termsOfServiceAgreed: true, ...(this.#o.email ? { contact: [`mailto:${this.#o.email}`] } : {}) });
    await this.#store.saveAccount({ key: account.key, url: client.getAccountUrl() });
    this.#log.info({ account: client.getAccountUrl() }, 'ACME account registered');
    return client;
  }

  async #order(name: string): Promise<StoredCert> {
    const client = await this.#client_();
    const order = await client.createOrder({ identifiers: [{ type: 'dns', value: name }] });
    const authzs = await client.getAuthorizations(order);
    const prefer = this.#o.challenges ?? ['tls-alpn-01', 'http-01'];
    for (const authz of authzs) {
      if (authz.status === 'valid') continue;
      const challenge = prefer.map((t) => authz.challenges.find((c) => c.type === t)).find((c) => c !== undefined);
      if (!challenge) throw new Error(`the CA offers none of ${prefer.join(', ')} for ${name} (offers ${authz.challenges.map((c) => c.type).join(', ')})`);
      const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
      const ch = await this.#challenge(name, challenge, keyAuthorization);
      this.#addChallenge(ch);
      await this.#store.publish(ch, CHALLENGE_TTL_MS);
      try {
        await client.completeChallenge(challenge);
        await client.waitForValidStatus(challenge);
      } finally {
        this.#removeChallenge(ch);
        await this.#store.withdraw(ch).catch(() => undefined);
      }
    }
    const [key, csr] = await acme.crypto.createCsr({ commonName: name, altNames: [name] }, await acme.crypto.createPrivateEcdsaKey('P-256'));
    const finalized = await client.finalizeOrder(order, csr);
    const cert = await client.getCertificate(finalized);
    return { cert, key: key.toString() };
  }

  /** The answer to `challenge`: its token, or the acmeIdentifier certificate (made here, so that every server can serve it at once). */
  async #challenge(name: string, challenge: { type: string; token?: string }, keyAuthorization: string): Promise<PendingChallenge> {
    if (challenge.type === 'http-01') return { type: 'http-01', name, token: challenge.token ?? '', keyAuthorization };
    const [key, cert] = await acme.crypto.createAlpnCertificate(
      { identifier: { type: 'dns', value: name } } as acme.Authorization,
      keyAuthorization,
      await acme.crypto.createPrivateEcdsaKey('P-256'),
    );
    return { type: 'tls-alpn-01', name, keyAuthorization, cert: cert.toString(), key: key.toString() };
  }

  #addChallenge(ch: PendingChallenge): void {
    if (ch.type === 'http-01') this.#tokens.set(ch.token, { name: ch.name, keyAuthorization: ch.keyAuthorization });
    else this.#alpn.set(ch.name, tls.createSecureContext({ key: ch.key, cert: ch.cert }));
  }

  #removeChallenge(ch: PendingChallenge): void {
    if (ch.type === 'http-01') this.#tokens.delete(ch.token);
    else this.#alpn.delete(ch.name);
  }

  #remoteChallenge(ch: PendingChallenge, added: boolean): void {
    if (this.#closed || !DNS_NAME.test(ch.name)) return;
    if (!added) {
      this.#removeChallenge(ch);
      return;
    }
    try {
      this.#addChallenge(ch);
    } catch (err) {
      this.#log.warn({ name: ch.name, err: (err as Error).message }, 'ACME: challenge from another server not usable');
    }
  }

  /** The entry point's answer; a callback that throws counts as "no". */
  #isEligible(name: string): boolean {
    try {
      return this.#o.eligible(name) === true;
    } catch (err) {
      this.#log.warn({ name, err: (err as Error).message }, 'ACME: eligibility check failed');
      return false;
    }
  }

  #renewAt(notBefore: number, notAfter: number): number {
    const before = this.#o.renewBeforeMs ?? Math.min(30 * 86_400_000, (notAfter - notBefore) / 3);
    return notAfter - before;
  }

  #install(name: string, c: StoredCert): SecureContext {
    const { notBefore, notAfter } = certValidity(c.cert);
    const ctx = tls.createSecureContext({ cert: c.cert, key: c.key });
    const old = this.#certs.get(name);
    if (old?.timer) clearTimeout(old.timer);
    const entry: Installed = { ctx, notBefore, notAfter, renewAt: this.#renewAt(notBefore, notAfter) };
    this.#certs.set(name, entry);
    this.#scheduleRenewal(name, entry);
    return ctx;
  }

  #scheduleRenewal(name: string, entry: Installed): void {
    if (this.#closed) return;
    const delay = Math.max(0, entry.renewAt - Date.now());
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      if (this.#certs.get(name) !== entry) return;
      if (Date.now() < entry.renewAt) return this.#scheduleRenewal(name, entry); // a capped long delay
      this.#renew(name);
    }, Math.min(delay, MAX_TIMER_MS));
    entry.timer.unref();
  }

  #renew(name: string): void {
    if (this.#closed) return;
    // A name no longer served (its tunnel gone) is not renewed: its certificate lapses, and a
    // handshake after the tunnel is back orders a new one.
    if (!this.#isEligible(name)) {
      this.#log.info({ name }, 'ACME: not renewing a certificate whose name has no live tunnel');
      return;
    }
    void this.#obtain(name, true);
  }

  #retryRenewal(name: string, delay: number): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      this.#renew(name);
    }, Math.min(delay, MAX_TIMER_MS));
    t.unref();
    this.#timers.add(t);
  }

  /** Waits `ms`, or until close. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(t);
        this.#sleepers.delete(wake);
        resolve();
      };
      const t = setTimeout(wake, ms);
      t.unref();
      this.#sleepers.add(wake);
    });
  }
}
