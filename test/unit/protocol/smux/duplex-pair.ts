/**
 * In-memory connected Duplex pair for the session state-machine tests (no kernel socket):
 * what one end writes, the other end reads. end() on one side ends the other's readable side;
 * destroy() on one side ends the other too.
 */
import { Duplex } from 'node:stream';
import { FrameDecoder, type DecodedFrame } from '../../../../src/protocol/smux/decoder';
import { encodeFrame, encodeUpdFrame } from '../../../../src/protocol/smux/frame';

class End extends Duplex {
  peer!: End;
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.push(chunk);
    cb();
  }
  override _final(cb: (err?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.push(null);
    cb();
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.peer.destroyed && !this.peer.readableEnded) this.peer.push(null);
    cb(err);
  }
}

export function duplexPair(): [Duplex, Duplex] {
  const a = new End();
  const b = new End();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/** The far end of a session's conn, driven by hand: writes raw frames, records what it gets. */
export interface RawPeer {
  /** Give this to the Session. */
  conn: Duplex;
  /** The end the test drives. */
  end: Duplex;
  /** Every frame the session wrote, data copied. */
  frames: DecodedFrame[];
  send(cmd: number, sid: number, data?: Buffer): void;
  sendUpd(sid: number, consumed: number, window: number): void;
  sendRaw(bytes: Buffer): void;
}

export function rawPeer(version = 2): RawPeer {
  const [conn, end] = duplexPair();
  const frames: DecodedFrame[] = [];
  const dec = new FrameDecoder(version, (cmd, sid, data) => frames.push({ cmd, sid, data: Buffer.from(data) }));
  end.on('data', (d: Buffer) => dec.push(d));
  end.on('error', () => {});
  return {
    conn,
    end,
    frames,
    send: (cmd, sid, data) => {
      end.write(encodeFrame(version, cmd, sid, data));
    },
    sendUpd: (sid, consumed, window) => {
      end.write(encodeUpdFrame(version, sid, consumed, window));
    },
    sendRaw: (bytes) => {
      end.write(bytes);
    },
  };
}

/** Lets queued stream events and timers of 0 ms run. */
export function tick(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

export async function ticks(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await tick();
}
