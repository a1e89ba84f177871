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
 */
import type { Duplex } from 'node:stream';
import { DEFAULTS } from '../config/model';
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
  const halfCloseIdleMs = opts.halfCloseIdleMs ?? DEFAULTS.halfCloseReadTimeoutMs;
  const idleTimeoutMs = opts.idleTimeoutMs ?? 0;
  const sendTimeoutMs = opts.sendTimeoutMs ?? DEFAULTS.sendTimeoutMs;
  return new Promise((resolve) => {
    const result: RelayResult = { aToB: 0, bToA: 0 };
    let ended = 0;
    let settled = false;
    let halfTimer: NodeJS.Timeout | undefined;
    let idleTimer: NodeJS.Timeout | undefined;
    let lastActivity = Date.now();
    // Per destination: since when it has held bytes it does not take (0 = it is not waiting),
    // and how many it held then (fewer later is progress: a side that is ending gets no
    // 'drain', only its buffer shrinks).
    const waitA = { since: 0, len: 0 };
    const waitB = { since: 0, len: 0 };
    let sendTimer: NodeJS.Timeout | undefined;

    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      if (err && !result.error) result.error = err;
      if (halfTimer) clearTimeout(halfTimer);
      if (idleTimer) clearInterval(idleTimer);
      if (sendTimer) clearTimeout(sendTimer);
      a.off('data', onAData);
      b.off('data', onBData);
      a.off('drain', onADrain);
      b.off('drain', onBDrain);
      a.off('peerend', onPeerEnd);
      b.off('peerend', onPeerEnd);
      a.unpipe(b);
      b.unpipe(a);
      destroy(a);
      destroy(b);
      resolve(result);
    };
    let flushing = false;
    /** The sides still flushing once both directions are done (set a turn after that). */
    let pendingSides: Duplex[] | undefined;
    const armHalfTimer = (): void => {
      if (flushing) return;
      if (halfTimer) clearTimeout(halfTimer);
      halfTimer = setTimeout(finishAfterFlush, halfCloseIdleMs);
      halfTimer.unref?.();
    };
    /**
     * Both directions are done (or given up on): the relay ends once every side that was
     * ended has flushed what it was given. Destroying it sooner would drop those bytes (a
     * stream waiting for window, a socket for its reader) behind a clean-looking close. The
     * send timeout's progress check bounds the wait.
     */
    const finishAfterFlush = (): void => {
      if (settled || flushing) return;
      flushing = true;
      if (halfTimer) clearTimeout(halfTimer);
      halfTimer = undefined;
      // A turn later: pipe ends the other side in its own 'end' listener, after ours.
      setImmediate(() => {
        if (settled) return;
        const pending = [a, b].filter((x) => !x.destroyed && x.writableEnded && !x.writableFinished);
        pendingSides = pending;
        let left = pending.length;
        if (left === 0) return finish();
        for (const x of pending) {
          x.once('finish', () => {
            if (--left === 0) setImmediate(() => finish());
          });
          startWait(x === a ? waitA : waitB, x, Date.now());
        }
      });
    };
    // One timer at most, armed when a write starts waiting; it re-arms itself while one waits.
    const progressed = (w: { since: number; len: number }, s: Duplex, now: number): void => {
      if (w.since === 0) return;
      const len = s.writableLength;
      if (len === 0) w.since = 0;
      else if (len < w.len) {
        w.since = now;
        w.len = len;
      }
    };
    const checkSend = (): void => {
      sendTimer = undefined;
      const now = Date.now();
      progressed(waitA, a, now);
      progressed(waitB, b, now);
      const since = Math.min(waitB.since || Infinity, waitA.since || Infinity);
      if (since === Infinity) return;
      const left = since + sendTimeoutMs - now;
      if (left <= 0) {
        const side = waitB.since && waitB.since <= (waitA.since || Infinity) ? 'b' : 'a';
        finish(new SendTimeoutError(side, `send timeout: ${side === 'b' ? 'the far side' : 'the near side'} took no bytes for ${sendTimeoutMs} ms`));
        return;
      }
      sendTimer = setTimeout(checkSend, left);
      sendTimer.unref?.();
    };
    /** `dest` holds bytes it has not taken: its send-timeout clock starts, unless it runs. */
    const startWait = (w: { since: number; len: number }, dest: Duplex, now: number): void => {
      if (sendTimeoutMs <= 0 || w.since !== 0) return;
      w.since = now;
      w.len = dest.writableLength;
      if (!sendTimer && !settled) checkSend();
    };
    const onAData = (chunk: Buffer): void => {
      result.aToB += chunk.length;
      lastActivity = Date.now();
      if (halfTimer) armHalfTimer();
      // Runs after pipe's write of this chunk (registered after pipe()).
      if (b.writableNeedDrain) startWait(waitB, b, lastActivity);
    };
    const onBData = (chunk: Buffer): void => {
      result.bToA += chunk.length;
      lastActivity = Date.now();
      if (halfTimer) armHalfTimer();
      if (a.writableNeedDrain) startWait(waitA, a, lastActivity);
    };
    const onBDrain = (): void => {
      waitB.since = 0;
    };
    const onADrain = (): void => {
      waitA.since = 0;
    };
    const onEnd = (): void => {
      ended++;
      if (ended >= 2) finishAfterFlush();
      else armHalfTimer();
    };
    const onError = (err: Error): void => finish(err);
    const onClose = (side: Duplex): void => {
      if (settled) return;
      if (flushing) {
        // A side that was still flushing went away: nothing more can be delivered. (One that
        // closes before the pending sides are known is left out of them, being destroyed.)
        if (pendingSides?.includes(side) && !side.writableFinished) setImmediate(() => finish());
        return;
      }
      // A side that closed after its end (EOF) can take nothing more: what it sent is
      // flushed to the other side, then the relay ends. One that closed without an end
      // (reset, destroyed) tears the other down.
      if (side.readableEnded) finishAfterFlush();
      else setImmediate(() => finish());
    };
    const onAClose = (): void => onClose(a);
    const onBClose = (): void => onClose(b);

    // A multiplexed stream tells us when its peer finished even if data is still queued for a
    // reader that does not read: from then on the half-close idle timer bounds the wait.
    const onPeerEnd = (): void => {
      if (!halfTimer) armHalfTimer();
    };
    a.once('peerend', onPeerEnd);
    b.once('peerend', onPeerEnd);
    a.once('end', onEnd);
    b.once('end', onEnd);
    a.on('error', onError);
    b.on('error', onError);
    a.once('close', onAClose);
    b.once('close', onBClose);
    if (idleTimeoutMs > 0) {
      idleTimer = setInterval(() => {
        if (Date.now() - lastActivity >= idleTimeoutMs) finish();
      }, Math.min(idleTimeoutMs, 1000));
      idleTimer.unref?.();
    }
    a.pipe(b);
    b.pipe(a);
    // After pipe(): each data listener runs once pipe has written the chunk.
    a.on('data', onAData);
    b.on('data', onBData);
    if (sendTimeoutMs > 0) {
      a.on('drain', onADrain);
      b.on('drain', onBDrain);
    }
  });
}
