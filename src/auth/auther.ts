/**
 * Authentication of tunnel clients and visitors (behavior.md §8): user/password pairs from
 * inline `auths`, the handler's own `user:pass@`, and `file` sources ("user pass" per line,
 * reloaded when the file changes). Several sources: any may accept.
 *
 * Failed attempts are rate limited per client IP: after `maxFailures` failures within
 * `windowMs`, further attempts from that IP are refused without being checked until the window
 * passes. Passwords are compared in constant time and never logged.
 */
import { readFile } from 'node:fs/promises';
import { FilePoller } from '../io/file-watch';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { stripPort } from '../core/addr';

export interface AutherOptions {
  name: string;
  auths?: Array<{ username: string; password: string }>;
  filePath?: string;
  reloadMs?: number;
  maxFailures?: number;
  windowMs?: number;
  logger: Logger;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export function parseAuthText(text: string): Array<{ username: string; password: string }> {
  const out: Array<{ username: string; password: string }> = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const [u, p] = line.split(/\s+/, 2);
    if (u) out.push({ username: u, password: p ?? '' });
  }
  return out;
}

export class Auther {
  readonly name: string;
  readonly #inline: Map<string, Buffer>;
  #file = new Map<string, Buffer>();
  readonly #opts: AutherOptions;
  readonly #failures = new Map<string, { count: number; since: number }>();
  readonly #maxFailures: number;
  readonly #windowMs: number;
  #timer: NodeJS.Timeout | undefined;
  readonly #poller: FilePoller | undefined;

  constructor(opts: AutherOptions) {
    this.name = opts.name;
    this.#opts = opts;
    this.#inline = new Map((opts.auths ?? []).map((a) => [a.username, digest(a.password)]));
    this.#maxFailures = opts.maxFailures ?? 5;
    this.#windowMs = opts.windowMs ?? 60_000;
    this.#poller = opts.filePath ? new FilePoller(opts.filePath, () => this.reload()) : undefined;
  }

  async start(): Promise<void> {
    if (!this.#opts.filePath) return;
    await this.reload();
    this.#poller?.start();
    if (this.#opts.reloadMs && this.#opts.reloadMs > 0) {
      this.#timer = setInterval(() => void this.reload(), Math.max(1000, this.#opts.reloadMs));
      this.#timer.unref();
    }
  }

  async reload(): Promise<void> {
    if (!this.#opts.filePath) return;
    await this.#poller?.mark();
    try {
      const list = parseAuthText(await readFile(this.#opts.filePath, 'utf8'));
      this.#file = new Map(list.map((a) => [a.username, digest(a.password)]));
    } catch (err) {
      this.#opts.logger.warn(`auther ${this.name}: ${this.#opts.filePath}: ${(err as Error).message}`);
    }
  }

  /** True when the pair is known. `remote` ("ip:port") keys the failure rate limit. */
  authenticate(username: string, password: string, remote = ''): boolean {
    const ip = stripPort(remote);
    const now = Date.now();
    const f = this.#failures.get(ip);
    if (f && now - f.since > this.#windowMs) this.#failures.delete(ip);
    else if (f && f.count >= this.#maxFailures) return false;
    const want = this.#file.get(username) ?? this.#inline.get(username);
    const ok = want !== undefined && timingSafeEqual(want, digest(password));
    if (!ok) {
      const cur = this.#failures.get(ip);
      if (cur) cur.count++;
      else this.#failures.set(ip, { count: 1, since: now });
      if (this.#failures.size > 100_000) this.#failures.clear();
    }
    return ok;
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#poller?.stop();
  }
}

/** Several authers: any may accept. */
export class AnyAuther {
  constructor(readonly authers: Auther[]) {}
  async start(): Promise<void> {
    for (const a of this.authers) await a.start();
  }
  authenticate(username: string, password: string, remote = ''): boolean {
    return this.authers.some((a) => a.authenticate(username, password, remote));
  }
  close(): void {
    for (const a of this.authers) a.close();
  }
}
