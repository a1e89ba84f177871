/**
 * A real Redis server for the tests that need one (Debian's redis-server): started on
 * 127.0.0.1 with a port from the OS, no persistence, in a temporary directory, and stopped by
 * the caller. When redis-server is missing it is installed with apt-get if this process may
 * (root, or passwordless sudo), as `.ci/run` does; otherwise `startRedis` says why it cannot run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { LOCAL, sleep } from './local';
import net from 'node:net';

export interface RedisServer {
  port: number;
  addr: string;
  /** A client connected to db 0 (or the db given to `client`) for setting up data. */
  client(db?: number): Redis;
  /** Stops the server (the data goes with it); clients are disconnected. */
  stop(): Promise<void>;
  /** Kills the server process (a Redis that went down); `restart` brings it back. */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty. */
  restart(): Promise<void>;
}

/** A port that was free a moment ago (redis-server cannot take port 0 and report it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, LOCAL, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

let installTried = false;

/** redis-server's path, installing Debian's package when allowed; or why there is none. */
export function ensureRedisServer(): { ok: true } | { ok: false; why: string } {
  if (have('redis-server')) return { ok: true };
  if (!installTried) {
    installTried = true;
    const root = process.getuid?.() === 0;
    const sudo = !root && spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0;
    if ((root || sudo) && have('apt-get')) {
      const pre = root ? [] : ['sudo', '-n'];
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      const run = (args: string[]): void => {
        const [cmd, ...rest] = [...pre, ...args];
        spawnSync(cmd!, rest, { stdio: 'ignore', env, timeout: 300_000 });
      };
      run(['apt-get', 'install', '-y', '-qq', 'redis-server']);
      if (!have('redis-server')) {
        run(['apt-get', 'update', '-qq']);
        run(['apt-get', 'install', '-y', '-qq', 'redis-server']);
      }
    }
  }
  if (have('redis-server')) return { ok: true };
  return { ok: false, why: 'redis-server is not installed and could not be installed (apt-get install redis-server)' };
}

async function waitReady(port: number, proc: ChildProcess, password: string | undefined, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}`);
    const c = new Redis({ host: LOCAL, port, password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    c.on('error', () => undefined);
    try {
      await c.connect();
      if ((await c.ping()) === 'PONG') return;
    } catch (err) {
      last = (err as Error).message;
    } finally {
      c.disconnect();
    }
    await sleep(50);
  }
  throw new Error(`redis-server on port ${port} not ready within ${timeoutMs} ms (${last})`);
}

/** Starts a Redis server; `extra` are more redis-server arguments (e.g. `--requirepass x`). */
export async function startRedis(extra: string[] = []): Promise<RedisServer> {
  const have = ensureRedisServer();
  if (!have.ok) throw new Error(have.why);
  const dir = mkdtempSync(join(tmpdir(), 'burrow-redis-'));
  let port = await freePort();
  const clients: Redis[] = [];
  const password = extra.includes('--requirepass') ? extra[extra.indexOf('--requirepass') + 1] : undefined;
  let proc: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    const p = spawn(
      'redis-server',
      ['--port', String(port), '--bind', LOCAL, '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no', ...extra],
      { stdio: 'ignore' },
    );
    proc = p;
    await waitReady(port, p, password);
  };
  const stopProc = async (): Promise<void> => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    p.kill('SIGKILL');
    await exited;
  };
  // Another process may take the port between freePort() and redis-server's bind: try again.
  for (let attempt = 1; ; attempt++) {
    try {
      await launch();
      break;
    } catch (err) {
      await stopProc();
      if (attempt >= 3) {
        rmSync(dir, { recursive: true, force: true });
        throw err;
      }
      port = await freePort();
    }
  }
  return {
    port,
    addr: `${LOCAL}:${port}`,
    client(db = 0): Redis {
      const c = new Redis({ host: LOCAL, port, db, password, maxRetriesPerRequest: 1 });
      c.on('error', () => undefined);
      clients.push(c);
      return c;
    },
    async stop(): Promise<void> {
      for (const c of clients.splice(0)) c.disconnect();
      await stopProc();
      rmSync(dir, { recursive: true, force: true });
    },
    kill: stopProc,
    async restart(): Promise<void> {
      await stopProc();
      await launch();
    },
  };
}

/**
 * A Redis Sentinel (`redis-server <conf> --sentinel`, as Debian's redis-sentinel runs it)
 * monitoring `master` under `name`, with a quorum of 1. Resolves once it answers with the
 * master's address.
 */
export async function startSentinel(master: RedisServer, name: string): Promise<{ port: number; addr: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-sentinel-'));
  const port = await freePort();
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(conf, `port ${port}\nbind ${LOCAL}\nprotected-mode no\ndir ${dir}\nsentinel monitor ${name} ${LOCAL} ${master.port} 1\n`);
  const proc = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null) {
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      proc.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitReady(port, proc, undefined);
    const c = new Redis({ host: LOCAL, port, maxRetriesPerRequest: 1 });
    c.on('error', () => undefined);
    try {
      const got = (await c.call('SENTINEL', 'get-master-addr-by-name', name)) as string[] | null;
      if (!got || Number(got[1]) !== master.port) throw new Error(`sentinel does not name the master (${JSON.stringify(got)})`);
    } finally {
      c.disconnect();
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, addr: `${LOCAL}:${port}`, stop };
}
