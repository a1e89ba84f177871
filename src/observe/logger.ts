/**
 * The pino root logger with gost's field names: `level` as a label, `msg`, `time` in ISO form.
 * Children carry `kind`, `service`, `listener`, `handler`, `sid`, `remote`, `local`, ...
 */
import pino, { type Logger, type DestinationStream } from 'pino';
import { Writable } from 'node:stream';

export type { Logger };

export interface LogOptions {
  level?: string;
  format?: string;
  output?: string;
}

const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

/** Turns a pino JSON line into gost's text format: `time level msg key=value ...`. */
function textDestination(dest: DestinationStream): DestinationStream {
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        try {
          const o = JSON.parse(line) as Record<string, unknown>;
          const { time, level, msg, ...rest } = o;
          const fields = Object.entries(rest)
            .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
            .join(' ');
          dest.write(`${String(time)} ${String(level)} ${String(msg)}${fields ? ' ' + fields : ''}\n`);
        } catch {
          dest.write(line + '\n');
        }
      }
      cb();
    },
  });
  return w as unknown as DestinationStream;
}

export function createLogger(opts: LogOptions = {}, destination?: DestinationStream): Logger {
  let level = (opts.level ?? 'info').toLowerCase();
  if (level === 'warning') level = 'warn';
  if (!LEVELS.has(level)) level = 'info';
  let dest: DestinationStream;
  if (destination) dest = destination;
  else if (!opts.output || opts.output === 'stderr') dest = pino.destination({ fd: 2, sync: true });
  else if (opts.output === 'stdout') dest = pino.destination({ fd: 1, sync: true });
  else if (opts.output === 'none') {
    level = 'silent';
    dest = pino.destination({ fd: 2, sync: true });
  } else dest = pino.destination({ dest: opts.output, mkdir: true, sync: true });
  if (opts.format === 'text') dest = textDestination(dest);
  return pino(
    {
      level,
      base: undefined,
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: ['password', 'auth', '*.password'], censor: '[redacted]' },
    },
    dest,
  );
}

/** A logger that drops everything (tests, libraries). */
export const silentLogger: Logger = pino({ level: 'silent' });

/**
 * A child logger made on first use. Services give every connection a logger with its bindings
 * (sid, remote, local); most connections never log at the default level, so building a pino
 * child for each would only cost memory (thousands of idle connections) and time. A lazy child
 * is a Proxy over the bindings object itself (it takes `bindings` over: the parent and, once
 * built, the real child are kept in it under symbols, which pino does not see), with one
 * handler shared by all of them.
 */
export function lazyChild(parent: Logger, bindings: Record<string, unknown>): Logger {
  const state = bindings as LazyState;
  state[kParent] = parent;
  return new Proxy(state, lazyHandler) as unknown as Logger;
}

const kParent = Symbol('lazyChild.parent');
const kReal = Symbol('lazyChild.real');

/**
 * A lazy child's bindings may carry, under this key, a function called with them once, right
 * before they are first used (a line logged, `bindings()`), that fills in fields too costly to
 * compute for every connection (a local address is a system call). Shared functions only: it
 * is stored on every connection's bindings.
 */
export const kLateFields = Symbol('lazyChild.lateFields');
/** What the late-fields function reads from (its second argument). */
const kLateSource = Symbol('lazyChild.lateSource');

/** Fills in late fields of `bindings` from `source` (a shared function, not a closure). */
export type LateFields<S> = (bindings: Record<string, unknown>, source: S) => void;

/** The bindings (string keys), the parent logger and, once built, the real child. */
type LazyState = Record<string, unknown> & {
  [kParent]: Logger;
  [kReal]?: Logger;
  [kLateFields]?: LateFields<unknown>;
  [kLateSource]?: unknown;
};

function fillLate(t: LazyState): void {
  const fill = t[kLateFields];
  if (fill === undefined) return;
  t[kLateFields] = undefined;
  fill(t, t[kLateSource]);
  t[kLateSource] = undefined;
}

/**
 * A connection's log fields as gost names them (sid, remote, local, client), for `lazyChild`.
 * `local` costs a system call, so `fillLocal` sets it from `source` when a line is first logged.
 */
export function connLogFields<S>(sid: string, remote: string, source: S, fillLocal: LateFields<S>): Record<string, unknown> {
  const b: LazyState = { sid, remote, local: undefined, client: remote } as unknown as LazyState;
  b[kLateSource] = source;
  b[kLateFields] = fillLocal as LateFields<unknown>;
  return b;
}

function realize(t: LazyState): Logger {
  if (t[kReal] === undefined) {
    fillLate(t);
    t[kReal] = realLogger(t[kParent]).child(t);
  }
  return t[kReal];
}

/** The bindings alone (own string keys with a value). */
function ownBindings(t: LazyState): Record<string, unknown> {
  fillLate(t);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(t)) if (t[k] !== undefined) out[k] = t[k];
  return out;
}

// The lazy child's own methods, shared by all of them (`this` is the proxy; no closure per call).
const kState = Symbol('lazyChild.state');
const kRealize = Symbol('lazyChild.realize');
/** What a lazy child answers besides a logger's own members (its handler's `get`). */
type LazyLogger = Logger & { [kState]?: LazyState; [kRealize]?: (this: Logger) => Logger };
function stateOf(proxy: Logger): LazyState {
  return (proxy as LazyLogger)[kState]!;
}
function lazyRealize(this: Logger): Logger {
  return realize(stateOf(this));
}
function lazyIsLevelEnabled(this: Logger, level: string): boolean {
  const t = stateOf(this);
  return (t[kReal] ?? t[kParent]).isLevelEnabled(level);
}
function lazyBindings(this: Logger): Record<string, unknown> {
  const t = stateOf(this);
  return { ...t[kParent].bindings(), ...ownBindings(t) };
}
/** A child of a child is lazy too (one with options is built at once). */
function lazyChildOf(this: Logger, b: Record<string, unknown>, o?: pino.ChildLoggerOptions): Logger {
  return o ? realize(stateOf(this)).child(b, o) : lazyChild(this, b);
}

const lazyHandler: ProxyHandler<LazyState> = {
  get(t, prop) {
    if (prop === kState) return t;
    if (prop === kRealize) return lazyRealize;
    if (prop === 'isLevelEnabled') return lazyIsLevelEnabled;
    if (prop === 'level') return (t[kReal] ?? t[kParent]).level;
    if (prop === 'bindings') return lazyBindings;
    if (!t[kReal]) {
      // A call at a disabled level builds nothing.
      if (prop === 'child') return lazyChildOf;
      if (typeof prop === 'string' && LEVEL_METHODS.has(prop) && !t[kParent].isLevelEnabled(prop)) return noop;
    }
    const real = realize(t);
    const v = (real as unknown as Record<string | symbol, unknown>)[prop];
    return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(real) : v;
  },
};

/** The pino logger behind a lazy child (built now), or `logger` itself. */
function realLogger(logger: Logger): Logger {
  const realize = (logger as LazyLogger)[kRealize];
  return realize ? realize.call(logger) : logger;
}


const LEVEL_METHODS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);

function noop(): void {}
