/**
 * The one deadline a visitor connection has at a time, with one timer: a later deadline only
 * moves the time the timer checks when it fires (no clear and set per request), an earlier one
 * sets the timer again.
 */

import type { Logger } from 'pino';
import type { ConnectionHost } from './host';
import type { Exchange } from './exchange';

export enum Deadline {
  None,
  /** A request head is arriving (`entrypoint.sniffTimeout`). */
  Head,
  /** Between requests (`entrypoint.idleTimeout`). */
  Idle,
  /** A request went out, its response head has not come (`entrypoint.readTimeout`). */
  Response,
  /** After the last response: the socket goes once its bytes are out, or when this passes. */
  Flush,
}

export class Deadlines {
  #kind = Deadline.None;
  #at = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = 0;
  /** Called with the kind of a deadline that passed (it is None again by then). */
  readonly #onExpired: (kind: Deadline) => void;

  constructor(onExpired: (kind: Deadline) => void) {
    this.#onExpired = onExpired;
  }

  get kind(): Deadline {
    return this.#kind;
  }

  /** `kind` is due in `ms`; nothing changes once the connection is flushing its last bytes. */
  arm(kind: Deadline, ms: number): void {
    if (this.#kind === Deadline.Flush) return;
    this.#kind = kind;
    const at = Date.now() + ms;
    this.#at = at;
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(Deadlines.#fire, ms, this);
    this.#timer.unref();
  }

  /** No deadline (the timer stays, and finds nothing due); Flush stays. */
  disarm(): void {
    if (this.#kind !== Deadline.Flush) this.#kind = Deadline.None;
  }

  /**
   * No deadline any more, and the timer goes too: a pending timer holds the connection (its
   * socket and buffers) until it fires, up to `entrypoint.idleTimeout` later.
   */
  stop(): void {
    this.#kind = Deadline.None;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  static #fire(d: Deadlines): void {
    d.#onTimer();
  }

  #onTimer(): void {
    this.#timer = undefined;
    if (this.#kind === Deadline.None) return;
    const now = Date.now();
    if (now < this.#at) {
      this.#timerAt = this.#at;
      this.#timer = setTimeout(Deadlines.#fire, this.#at - now, this);
      this.#timer.unref();
      return;
    }
    const kind = this.#kind;
    this.#kind = Deadline.None;
    this.#onExpired(kind);
  }
}

/** What a passed deadline does to a visitor connection (`ex`: its current exchange). */
export function deadlinePassed(
  kind: Deadline,
  c: { readonly log: Logger; readonly peer: string; destroy(): void },
  host: ConnectionHost,
  ex: Exchange | undefined,
): void {
  if (kind === Deadline.Head) {
    const msg = `entrypoint: no complete request head within ${host.headersTimeoutMs} ms (entrypoint.sniffTimeout)`;
    host.warn(c.log, c.peer, 'entrypoint.sniffTimeout', msg);
    c.destroy();
  } else if (kind === Deadline.Idle || kind === Deadline.Flush) {
    c.destroy();
  } else if (kind === Deadline.Response) {
    if (!ex || ex.res !== undefined) return;
    c.log.error(`no response from tunnel ${ex.tunnelId} within ${host.readTimeoutMs} ms`);
    ex.abort(503);
  }
}
