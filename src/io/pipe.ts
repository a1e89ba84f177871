/**
 * Two-way copy between two byte streams with backpressure, half-close and byte counters.
 *
 * Ownership: `relay(a, b)` takes both streams and destroys both when it settles, on every
 * path. EOF on one side becomes `end()` (a half-close: TCP FIN, smux FIN) on the other; the
 * remaining direction keeps flowing until it ends too, or until it has been idle for
 * `halfCloseIdleMs` (gost gives it a fixed 10 s read deadline; we reset the timer on data, so a
 * long response after a half-close is never cut off while it is still flowing).
 */
import type { Duplex } from 'node:stream';
import { DEFAULTS } from '../config/model';

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
  return new Promise((resolve) => {
    const result: RelayResult = { aToB: 0, bToA: 0 };
    let ended = 0;
    let settled = false;
    let halfTimer: NodeJS.Timeout | undefined;
    let idleTimer: NodeJS.Timeout | undefined;
    let lastActivity = Date.now();

    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      if (err && !result.error) result.error = err;
      if (halfTimer) clearTimeout(halfTimer);
      if (idleTimer) clearInterval(idleTimer);
      a.off('data', onAData);
      b.off('data', onBData);
      a.off('peerend', onPeerEnd);
      b.off('peerend', onPeerEnd);
      a.unpipe(b);
      b.unpipe(a);
      destroy(a);
      destroy(b);
      resolve(result);
    };
    const armHalfTimer = (): void => {
      if (halfTimer) clearTimeout(halfTimer);
      halfTimer = setTimeout(() => finish(), halfCloseIdleMs);
      halfTimer.unref?.();
    };
    const onAData = (chunk: Buffer): void => {
      result.aToB += chunk.length;
      lastActivity = Date.now();
      if (halfTimer) armHalfTimer();
    };
    const onBData = (chunk: Buffer): void => {
      result.bToA += chunk.length;
      lastActivity = Date.now();
      if (halfTimer) armHalfTimer();
    };
    const onEnd = (): void => {
      ended++;
      if (ended >= 2) {
        // Both directions done; give the final writes a tick to flush.
        setImmediate(() => finish());
      } else {
        armHalfTimer();
      }
    };
    const onError = (err: Error): void => finish(err);
    const onClose = (): void => {
      // A side closed without both directions ending cleanly: tear the other down.
      if (!settled) setImmediate(() => finish());
    };

    a.on('data', onAData);
    b.on('data', onBData);
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
    a.once('close', onClose);
    b.once('close', onClose);
    if (idleTimeoutMs > 0) {
      idleTimer = setInterval(() => {
        if (Date.now() - lastActivity >= idleTimeoutMs) finish();
      }, Math.min(idleTimeoutMs, 1000));
      idleTimer.unref?.();
    }
    a.pipe(b);
    b.pipe(a);
  });
}
