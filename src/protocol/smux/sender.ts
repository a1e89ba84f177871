/**
 * The send side of an smux session (session.ts): one send turn per event-loop turn
 * (setImmediate), in one corked batch, so what many streams wrote while the loop handled its
 * I/O leaves in one write: first the control frames (SYN, FIN, UPD, NOP; never held back by
 * backpressure), then data frames through a round-robin rotation of streams, one frame per
 * stream per pass, held while `conn` wants a 'drain'. While a turn waits for 'drain' longer
 * than `sendTimeoutMs`, the session is told (a peer that keeps sending but stopped reading).
 */
import type { Duplex } from 'node:stream';
import { SendTimeoutError } from '../../core/errors';
import type { SmuxConfig } from './config';
import { CMD_PSH, HEADER_SIZE, writeHeader } from './frame';
import { kQueued, kSendFrame, type Stream } from './stream';

/** Payload bytes written per send turn before other I/O gets a chance. */
const FLUSH_BATCH_BYTES = 512 * 1024;

export class Sender {
  readonly #conn: Duplex;
  readonly #config: Readonly<SmuxConfig>;
  readonly #onTimeout: (err: Error) => void;
  #stopped = false;
  /** Control frames waiting for the next send turn. */
  #control: Buffer[] = [];
  #ready: (Stream | undefined)[] = [];
  #readyHead = 0;
  #flushScheduled = false;
  #flushing = false;
  #waitingDrain = false;
  /** Since when a send turn has been waiting for `conn` to drain (ms); 0 = not waiting. */
  #waitingSince = 0;
  #sendTimer: NodeJS.Timeout | undefined;

  /** `onTimeout`: the send timeout passed; the owner ends the session (and calls `stop`). */
  constructor(conn: Duplex, config: Readonly<SmuxConfig>, onTimeout: (err: Error) => void) {
    this.#conn = conn;
    this.#config = config;
    this.#onTimeout = onTimeout;
    conn.on('drain', this.#onConnDrain);
  }

  /**
   * Control frames go out with the next send turn, ahead of its data frames, so the frames of
   * one event-loop turn share one write. Inside a turn (the conn is corked) they are written
   * at once.
   */
  writeControl(frame: Buffer): void {
    if (this.#stopped) return;
    if (this.#flushing) {
      this.#conn.write(frame);
      return;
    }
    this.#control.push(frame);
    this.#scheduleFlush();
  }

  /** Puts `s` in the rotation (once) for the next send turn. */
  wantSend(s: Stream): void {
    if (s[kQueued] || this.#stopped) return;
    s[kQueued] = true;
    this.#ready.push(s);
    if (!this.#waitingDrain) this.#scheduleFlush();
  }

  /** Stops sending: drops the rotation and timers and returns the control frames still queued. */
  stop(): Buffer[] {
    this.#stopped = true;
    clearTimeout(this.#sendTimer);
    this.#conn.off('drain', this.#onConnDrain);
    this.#ready = [];
    this.#readyHead = 0;
    const control = this.#control;
    this.#control = [];
    return control;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#flushing) return;
    this.#flushScheduled = true;
    setImmediate(this.#flush);
  }

  /** Writes the queued control frames (the conn is corked by the caller). */
  #writeQueuedControl(): void {
    const control = this.#control;
    if (control.length === 0) return;
    this.#control = [];
    for (const frame of control) this.#conn.write(frame);
  }

  /** Payload bytes of the PSH frames written (status and metrics readers). */
  bytesSent = 0;

  #writeData = (sid: number, payload: Buffer): void => {
    this.bytesSent += payload.length;
    const h = Buffer.allocUnsafe(HEADER_SIZE);
    writeHeader(h, 0, this.#config.version, CMD_PSH, payload.length, sid);
    this.#conn.write(h);
    this.#conn.write(payload);
  };

  /**
   * One send turn, after the I/O callbacks of the current event-loop turn (setImmediate), so
   * that what many streams wrote in that turn leaves in one write: the queued control frames,
   * then data round-robin, one frame per stream per pass, in one corked batch. Control frames
   * are written even while `conn` wants a 'drain'; data waits for it.
   */
  #flush = (): void => {
    this.#flushScheduled = false;
    if (this.#stopped || this.#flushing) return;
    const conn = this.#conn;
    if (this.#waitingDrain || conn.writableNeedDrain) {
      if (this.#control.length > 0) {
        conn.cork();
        this.#writeQueuedControl();
        conn.uncork();
      }
      if (this.#readyHead < this.#ready.length) this.#waitForDrain();
      return;
    }
    const ready = this.#ready;
    const maxFrame = this.#config.maxFrameSize;
    let sent = 0;
    this.#flushing = true;
    conn.cork();
    try {
      this.#writeQueuedControl();
      while (this.#readyHead < ready.length && sent < FLUSH_BATCH_BYTES && !this.#stopped) {
        const s = ready[this.#readyHead]!;
        ready[this.#readyHead++] = undefined;
        s[kQueued] = false;
        sent += s[kSendFrame](this.#writeData, maxFrame);
      }
    } finally {
      // `finally`: a write callback of the user's may throw; the session must not stay corked.
      this.#flushing = false;
      if (this.#stopped) {
        // stop() already dropped the rotation
      } else if (this.#readyHead >= ready.length) {
        ready.length = 0;
        this.#readyHead = 0;
      } else if (this.#readyHead > 1024 && this.#readyHead * 2 > ready.length) {
        this.#ready = ready.slice(this.#readyHead);
        this.#readyHead = 0;
      }
      conn.uncork();
    }
    if (this.#stopped) return;
    if (this.#readyHead >= this.#ready.length) {
      // Control frames queued by write callbacks during the turn (a FIN after the last data).
      if (this.#control.length > 0) this.#scheduleFlush();
      return;
    }
    if (conn.writableNeedDrain) {
      this.#waitForDrain();
      if (this.#control.length > 0) this.#scheduleFlush();
    } else {
      this.#scheduleFlush();
    }
  };

  #waitForDrain(): void {
    this.#waitingDrain = true;
    if (this.#waitingSince === 0) this.#waitingSince = Date.now();
    if (this.#config.sendTimeoutMs > 0 && !this.#sendTimer) this.#checkSend();
  }

  /** One timer at most, armed while a send turn waits; it re-arms itself for the time left. */
  #checkSend = (): void => {
    this.#sendTimer = undefined;
    if (this.#stopped || !this.#waitingDrain) return;
    const left = this.#waitingSince + this.#config.sendTimeoutMs - Date.now();
    if (left <= 0) {
      this.#onTimeout(new SendTimeoutError('peer', `smux: send timeout: the peer took no bytes for ${this.#config.sendTimeoutMs} ms`));
      return;
    }
    this.#sendTimer = setTimeout(this.#checkSend, left);
    this.#sendTimer.unref();
  };

  #onConnDrain = (): void => {
    if (!this.#waitingDrain) return;
    this.#waitingDrain = false;
    this.#waitingSince = 0;
    this.#flush();
  };
}
