/**
 * Two-way copy between two byte streams with backpressure, half-close and byte counters.
 *
 * Ownership: `relay(a, b)` takes both streams and destroys both when it settles, on every
 * path. EOF on one side becomes `end()` (a half-close: TCP FIN, smux FIN) on the other; the
 * remaining direction keeps flowing until it ends too, or until it has been idle for
 * `halfCloseIdleMs` (gost gives it a fixed 10 s read deadline; we reset the timer on data, so a
 * long response after a half-close is never cut off while it is still flowing). A clean end
 * never drops bytes: a side that was ended is destroyed only once it has flushed what it was
 * given (a stream waiting for window, a socket waiting for its reader).
 *
 * Send timeout: a side that stops reading altogether (its writes wait for a 'drain' that does
 * not come for `sendTimeoutMs`, 60 s by default, as nginx's send_timeout) ends the relay. Without
 * it a connection whose reader never reads is held forever, and so is the other side even after
 * it has left: its FIN waits unread behind the bytes backpressure stopped reading. The clock
 * runs only while a write waits, so a slow reader that makes any progress is never cut off.
 *
 * An abnormal end looks abnormal: when one side fails before its end (a reset, a multiplexed
 * stream whose session died: its client was killed or timed out) or closes without one, or a
 * send timeout gives up, the other side is reset (`abort`: TCP RST where it is a TCP socket)
 * instead of getting a clean FIN that would make a cut transfer look complete. A side that
 * fails after its end has delivered everything: the other side gets it all and a clean end.
 *
 * Memory: a relay is one object. Its listeners are the same few functions for every relay
 * (they find their relay through the stream they are called on), it has no timer while both
 * directions are open and no write waits, and the idle timeouts of all relays are checked by
 * one shared timer. Thousands of idle connections cost little more than their streams.
 */
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { DEFAULTS } from '../core/config';
import { SendTimeoutError } from '../core/errors';

export interface RelayResult {
  /** Bytes read from `a` and written to `b`. */
  aToB: number;
  /** Bytes read from `b` and written to `a`. */
  bToA: number;
  /** The first error seen on either side (peer resets included), if any. */
  error?: Error;
}

export interface RelayOptions {
  halfCloseIdleMs?: number;
  /** Idle timeout for the whole relay (no data either way); 0 = none. */
  idleTimeoutMs?: number;
  /** Longest wait for a side to take more bytes (no 'drain'); 0 = none. */
  sendTimeoutMs?: number;
}

/**
 * Ends a stream abnormally: a TCP socket is reset (RST, the peer reads ECONNRESET), anything
 * else (a TLS socket, a multiplexed stream) is destroyed.
 */
export function abort(s: Duplex | undefined | null): void {
  if (!s || s.destroyed) return;
  if (s instanceof Socket) {
    try {
      // Throws for a socket whose handle is not TCP (TLS): destroyed below instead.
      s.resetAndDestroy();
      return;
    } catch {
      /* not a TCP handle */
    }
  }
  destroy(s);
}

/** Destroys a stream, tolerating one that is already destroyed. */
export function destroy(s: Duplex | undefined | null, err?: Error): void {
  if (!s || s.destroyed) return;
  try {
    s.destroy(err);
  } catch {
    /* already gone */
  }
}

export function relay(a: Duplex, b: Duplex, opts: RelayOptions = {}): Promise<RelayResult> {
  return new Promise((resolve) => {
    new Relay(a, b, opts, resolve).start();
  });
}

/**
 * What a relay reports to when it settles, as an object: a long relay then keeps the handler's
 * own small record (its fields and a shared method), not a closure and its context.
 */
export interface RelaySettle {
  relaySettled(r: RelayResult): void;
}

/**
 * `relay` with a callback instead of a promise, called once when it settles. What a long relay
 * (an idle connection can last for hours) keeps is then this one function (or `RelaySettle`
 * object), not a promise and the reactions of everything chained to it.
 */
export function relayThen(a: Duplex, b: Duplex, opts: RelayOptions, done: ((r: RelayResult) => void) | RelaySettle): void {
  new Relay(a, b, opts, done).start();
}

/**
 * An 'error' listener that drops errors, for a stream whose errors its owner reports once it
 * has it (before, an 'error' without a listener would throw). A relay that takes the stream
 * removes it: its own listener reports errors, and one listener per event costs less than two.
 */
export function errorsBeforeRelay(): void {}

/** The relay a stream is part of. */
const kRelay = Symbol('burrow.relay');
type Side = Duplex & { [kRelay]?: Relay };

// Listeners shared by every relay: `this` is the stream that emitted.
function onData(this: Side, chunk: Buffer): void {
  this[kRelay]?.data(this, chunk);
}
function onDrain(this: Side): void {
  this[kRelay]?.drained(this);
}
function onEnd(this: Side): void {
  this[kRelay]?.ended(this);
}
function onError(this: Side, err: Error): void {
  this[kRelay]?.failed(this, err);
}
function onClose(this: Side): void {
  this[kRelay]?.closed(this);
}
/**
 * A multiplexed stream tells us when its peer finished even if data is still queued for a
 * reader that does not read: from then on the half-close idle timer bounds the wait.
 */
function onPeerEnd(this: Side): void {
  this[kRelay]?.peerEnded();
}
function onFinish(this: Side): void {
  this[kRelay]?.flushed(this);
}

const A = 1;
const B = 2;

class Relay {
  readonly a: Duplex;
  readonly b: Duplex;
  /** What moved, and the first error (the result, made when the relay settles). */
  aToB = 0;
  bToA = 0;
  error: Error | undefined;
  readonly #resolve: ((r: RelayResult) => void) | RelaySettle;
  readonly #halfCloseIdleMs: number;
  readonly idleTimeoutMs: number;
  readonly #sendTimeoutMs: number;
  /** Last data either way (ms), kept only with an idle timeout. */
  lastActivity = 0;
  #ends = 0;
  #settled = false;
  #flushing = false;
  /** Sides we paused because the other side wants a 'drain' (A, B bits). */
  #paused = 0;
  /** Sides that have our 'drain' listener (A, B bits). */
  #drainWatched = 0;
  /** The sides still flushing once both directions are done (known a turn after that). */
  #pending: Duplex[] | undefined;
  #pendingLeft = 0;
  #halfTimer: NodeJS.Timeout | undefined;
  #sendTimer: NodeJS.Timeout | undefined;
  /** Send-timeout clocks of `a` and `b` as destinations, made when one first has to wait. */
  #waitA: Wait | undefined;
  #waitB: Wait | undefined;

  constructor(a: Duplex, b: Duplex, opts: RelayOptions, resolve: ((r: RelayResult) => void) | RelaySettle) {
    this.a = a;
    this.b = b;
    this.#resolve = resolve;
    this.#halfCloseIdleMs = opts.halfCloseIdleMs ?? DEFAULTS.halfCloseReadTimeoutMs;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 0;
    this.#sendTimeoutMs = opts.sendTimeoutMs ?? DEFAULTS.sendTimeoutMs;
  }

  start(): void {
    for (const s of [this.a, this.b] as Side[]) {
      s[kRelay] = this;
      s.removeListener('error', errorsBeforeRelay);
      s.on('peerend', onPeerEnd);
      s.on('end', onEnd);
      s.on('error', onError);
      s.on('close', onClose);
      s.on('data', onData);
    }
    if (this.idleTimeoutMs > 0) {
      this.lastActivity = Date.now();
      watchIdle(this);
    }
    for (const s of [this.a, this.b]) {
      // A side that ended or went away before the relay began has no event left to give.
      if (s.destroyed) process.nextTick(() => this.closed(s));
      else if (s.readableEnded) process.nextTick(() => this.ended(s));
      else s.resume();
    }
  }

  data(src: Duplex, chunk: Buffer): void {
    const toB = src === this.a;
    const dest = toB ? this.b : this.a;
    if (toB) this.aToB += chunk.length;
    else this.bToA += chunk.length;
    if (this.idleTimeoutMs > 0) this.lastActivity = Date.now();
    this.#halfTimer?.refresh();
    if (dest.destroyed || this.#settled) return;
    if (dest.write(chunk)) return;
    // The destination is full: stop reading until it drains.
    const bit = toB ? B : A;
    this.#paused |= toB ? A : B;
    src.pause();
    if (!(this.#drainWatched & bit)) {
      this.#drainWatched |= bit;
      dest.on('drain', onDrain);
    }
    this.#startWait(dest, Date.now());
  }

  drained(dest: Duplex): void {
    const src = dest === this.b ? this.a : this.b;
    const srcBit = dest === this.b ? A : B;
    const w = dest === this.b ? this.#waitB : this.#waitA;
    if (w) w.since = 0;
    if (this.#paused & srcBit) {
      this.#paused &= ~srcBit;
      if (!this.#settled) src.resume();
    }
  }

  ended(side: Duplex): void {
    if (this.#settled) return;
    // EOF on one side is a half-close of the other.
    const other = side === this.a ? this.b : this.a;
    if (!other.writableEnded && !other.destroyed) other.end();
    if (++this.#ends >= 2) this.finishAfterFlush();
    else this.#armHalfTimer();
  }

  peerEnded(): void {
    if (!this.#halfTimer) this.#armHalfTimer();
  }

  failed(side: Duplex, err: Error): void {
    if (this.#settled) return;
    if (!this.error) this.error = err;
    // What it sent arrived whole (its end came first): the other side gets it and a clean end.
    if (side.readableEnded) this.finishAfterFlush();
    else this.finish(err, true);
  }

  closed(side: Duplex): void {
    if (this.#settled) return;
    if (this.#flushing) {
      // A side that was still flushing went away: nothing more can be delivered. (One that
      // closes before the pending sides are known is left out of them, being destroyed.)
      if (this.#pending?.includes(side) && !side.writableFinished) setImmediate(() => this.finish());
      return;
    }
    // A side that closed after its end (EOF) can take nothing more: what it sent is
    // flushed to the other side, then the relay ends. One that closed without an end
    // (reset, destroyed) resets the other.
    if (side.readableEnded) this.finishAfterFlush();
    else setImmediate(() => this.finish(undefined, true));
  }

  flushed(side: Duplex): void {
    if (this.#settled || !this.#pending?.includes(side)) return;
    if (--this.#pendingLeft === 0) setImmediate(() => this.finish());
  }

  /** Settles the relay; `abnormal` resets the sides (see `abort`) instead of closing them. */
  finish(err?: Error, abnormal = false): void {
    if (this.#settled) return;
    this.#settled = true;
    if (err && !this.error) this.error = err;
    if (this.#halfTimer) clearTimeout(this.#halfTimer);
    if (this.#sendTimer) clearTimeout(this.#sendTimer);
    if (this.idleTimeoutMs > 0) unwatchIdle(this);
    // 'end', 'error' and 'close' stay: they may still come while the streams go away, and
    // do nothing once the relay has settled.
    for (const s of [this.a, this.b]) {
      s.off('data', onData);
      s.off('drain', onDrain);
      s.off('peerend', onPeerEnd);
      s.off('finish', onFinish);
    }
    if (abnormal) {
      abort(this.a);
      abort(this.b);
    } else {
      destroy(this.a);
      destroy(this.b);
    }
    const result: RelayResult = { aToB: this.aToB, bToA: this.bToA };
    if (this.error) result.error = this.error;
    const done = this.#resolve;
    if (typeof done === 'function') done(result);
    else done.relaySettled(result);
  }

  #armHalfTimer(): void {
    if (this.#flushing) return;
    if (this.#halfTimer) this.#halfTimer.refresh();
    else {
      this.#halfTimer = setTimeout(halfCloseIdle, this.#halfCloseIdleMs, this);
      this.#halfTimer.unref?.();
    }
  }

  /**
   * Both directions are done (or given up on): the relay ends once every side that was
   * ended has flushed what it was given. Destroying it sooner would drop those bytes (a
   * stream waiting for window, a socket for its reader) behind a clean-looking close. The
   * send timeout's progress check bounds the wait.
   */
  finishAfterFlush(): void {
    if (this.#settled || this.#flushing) return;
    this.#flushing = true;
    if (this.#halfTimer) clearTimeout(this.#halfTimer);
    this.#halfTimer = undefined;
    // A turn later, so that writes and ends of this turn are accounted for.
    setImmediate(() => {
      if (this.#settled) return;
      const pending = [this.a, this.b].filter((x) => !x.destroyed && x.writableEnded && !x.writableFinished);
      this.#pending = pending;
      this.#pendingLeft = pending.length;
      if (pending.length === 0) return this.finish();
      const now = Date.now();
      for (const x of pending) {
        x.on('finish', onFinish);
        this.#startWait(x, now);
      }
    });
  }

  /** `dest` holds bytes it has not taken: its send-timeout clock starts, unless it runs. */
  #startWait(dest: Duplex, now: number): void {
    if (this.#sendTimeoutMs <= 0) return;
    const w = dest === this.b ? (this.#waitB ??= new Wait()) : (this.#waitA ??= new Wait());
    if (w.since !== 0) return;
    w.since = now;
    w.len = dest.writableLength;
    // One timer at most, armed when a write starts waiting; it re-arms itself while one waits.
    if (!this.#sendTimer && !this.#settled) this.checkSend();
  }

  checkSend(): void {
    this.#sendTimer = undefined;
    const now = Date.now();
    const sinceA = this.#waitA?.progressed(this.a, now) || Infinity;
    const sinceB = this.#waitB?.progressed(this.b, now) || Infinity;
    const since = Math.min(sinceA, sinceB);
    if (since === Infinity) return;
    const left = since + this.#sendTimeoutMs - now;
    if (left <= 0) {
      const side = sinceB <= sinceA ? 'b' : 'a';
      this.finish(
        new SendTimeoutError(side, `send timeout: ${side === 'b' ? 'the far side' : 'the near side'} took no bytes for ${this.#sendTimeoutMs} ms`),
        true,
      );
      return;
    }
    this.#sendTimer = setTimeout(checkSend, left, this);
    this.#sendTimer.unref?.();
  }
}

/**
 * The send-timeout clock of one destination: since when it has held bytes it does not take
 * (0 = it is not waiting), and how many it held then (fewer later is progress: a side that is
 * ending gets no 'drain', only its buffer shrinks).
 */
class Wait {
  since = 0;
  len = 0;

  /** Restarts the clock if `dest` took bytes since; returns when it started (0 = not waiting). */
  progressed(dest: Duplex, now: number): number {
    if (this.since === 0) return 0;
    const len = dest.writableLength;
    if (len === 0) this.since = 0;
    else if (len < this.len) {
      this.since = now;
      this.len = len;
    }
    return this.since;
  }
}

function halfCloseIdle(r: Relay): void {
  r.finishAfterFlush();
}

function checkSend(r: Relay): void {
  r.checkSend();
}

// Idle timeouts: one timer for every relay that has one, ticking at the shortest timeout's
// resolution (at most a second), so a relay is ended between its timeout and one tick later.
const idleRelays = new Set<Relay>();
let idleTimer: NodeJS.Timeout | undefined;
let idleTick = 0;

function watchIdle(r: Relay): void {
  idleRelays.add(r);
  const tick = Math.min(r.idleTimeoutMs, 1000);
  if (idleTimer && tick >= idleTick) return;
  if (idleTimer) clearInterval(idleTimer);
  idleTick = tick;
  idleTimer = setInterval(sweepIdle, tick);
  idleTimer.unref();
}

function unwatchIdle(r: Relay): void {
  idleRelays.delete(r);
  if (idleRelays.size === 0 && idleTimer) {
    clearInterval(idleTimer);
    idleTimer = undefined;
    idleTick = 0;
  }
}

function sweepIdle(): void {
  const now = Date.now();
  for (const r of idleRelays) if (now - r.lastActivity >= r.idleTimeoutMs) r.finish();
}
