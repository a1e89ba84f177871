/**
 * A userspace delay line: a TCP proxy on 127.0.0.1 that holds every chunk it reads for a fixed
 * time before writing it on, in each direction, so a connection through it sees an RTT of twice
 * that on its application data. It stands in for `tc … netem` where the kernel has none.
 *
 * It delays data, not TCP itself: each side's TCP talks to this process over plain loopback, so
 * its ACKs and its own windows see no delay. What the line makes slow is every application-level
 * round trip: a window update that must come back before more may be sent (smux), a
 * request/response.
 *
 * Memory is bounded: each direction of each connection holds at most `maxBytes` in flight; at
 * that mark it stops reading its source (TCP backpressure to the sender) and resumes once the
 * queue has drained below it. A destination that does not take bytes stops delivery, so the
 * queue fills and the source is paused in turn.
 *
 *   node --import tsx delay-line.ts <target port> <one-way delay ms> [max bytes per direction]
 *
 * Prints `{"port":N}` once listening; SIGTERM or stdin closing exits.
 */
import net from 'node:net';

const HOST = '127.0.0.1';
const targetPort = Number(process.argv[2]);
const delayMs = Number(process.argv[3]);
const maxBytes = Number(process.argv[4] ?? 64 * 2 ** 20);
if (!(targetPort > 0) || !(delayMs >= 0) || !(maxBytes > 0)) {
  process.stderr.write('usage: delay-line.ts <target port> <one-way delay ms> [max bytes per direction]\n');
  process.exit(2);
}

/** One direction: chunks read from `src` are written to `dst` `delayMs` after they arrived. */
function delay(src: net.Socket, dst: net.Socket): void {
  /** Chunks with the time they are due; `null` stands for the source's end. */
  const queue: Array<{ due: number; chunk: Buffer | null }> = [];
  let head = 0;
  let bytes = 0;
  let timer: NodeJS.Timeout | undefined;
  let waitingDrain = false;

  const deliver = (): void => {
    clearTimeout(timer);
    timer = undefined;
    const now = performance.now();
    while (head < queue.length && !waitingDrain) {
      const item = queue[head]!;
      if (item.due > now) {
        timer = setTimeout(deliver, item.due - now);
        break;
      }
      queue[head++] = undefined as never;
      if (item.chunk === null) {
        dst.end();
        break;
      }
      bytes -= item.chunk.length;
      if (!dst.write(item.chunk)) waitingDrain = true;
    }
    if (head === queue.length) {
      queue.length = 0;
      head = 0;
    } else if (head > 4096) {
      queue.splice(0, head);
      head = 0;
    }
    if (bytes < maxBytes && src.isPaused() && !src.readableEnded) src.resume();
  };

  const schedule = (): void => {
    if (timer || waitingDrain || head >= queue.length) return;
    timer = setTimeout(deliver, Math.max(0, queue[head]!.due - performance.now()));
  };

  src.on('data', (chunk: Buffer) => {
    queue.push({ due: performance.now() + delayMs, chunk });
    bytes += chunk.length;
    if (bytes >= maxBytes) src.pause();
    schedule();
  });
  src.on('end', () => {
    queue.push({ due: performance.now() + delayMs, chunk: null });
    schedule();
  });
  dst.on('drain', () => {
    if (!waitingDrain) return;
    waitingDrain = false;
    deliver();
  });
}

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (a) => {
  const b = net.connect({ host: HOST, port: targetPort, allowHalfOpen: true, noDelay: true });
  // Ends travel through the queues like data (half-closes included); an error on either side
  // (a reset, a refused connect) takes both down at once.
  const fail = (): void => {
    a.destroy();
    b.destroy();
  };
  a.on('error', fail);
  b.on('error', fail);
  delay(a, b);
  delay(b, a);
});
server.listen(0, HOST, () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as net.AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
