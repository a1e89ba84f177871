/**
 * Talking to burrow's web API in tests: the bound address from the "api: http://…" log line,
 * requests with full control of the headers (Host, Origin, Authorization), and a reader of
 * `/events` (server-sent events) that collects events as they arrive.
 */
import http from 'node:http';
import type { BurrowProcess } from './cli';
import { httpCall, LOCAL } from './local';

/** The API's port, from its "api: http://127.0.0.1:PORT/…" line. */
export async function apiPort(p: BurrowProcess, timeoutMs = 10_000): Promise<number> {
  const line = await p.waitForMsg(/^api: http:\/\/\S+:\d+\//, { timeoutMs, what: 'the api line' });
  return Number(/:(\d+)\//.exec(line.msg!)![1]);
}

/** The metrics address's port, from its "metrics: http://127.0.0.1:PORT/metrics" line. */
export async function metricsPort(p: BurrowProcess, timeoutMs = 10_000): Promise<number> {
  const line = await p.waitForMsg(/^metrics: http:\/\/\S+:\d+\//, { timeoutMs, what: 'the metrics line' });
  return Number(/:(\d+)\//.exec(line.msg!)![1]);
}

export interface ApiAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The body as JSON, or undefined when it is not JSON. */
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export function basic(user: string, pass: string): string {
  return `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
}

export async function apiCall(
  port: number,
  method: string,
  path: string,
  opts: { headers?: Record<string, string>; body?: string } = {},
): Promise<ApiAnswer> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.body !== undefined) headers['content-length'] = String(Buffer.byteLength(opts.body));
  const r = await httpCall({ host: LOCAL, port, method, path, headers, agent: false }, opts.body, 10_000);
  const text = r.body.toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.res.statusCode ?? 0, headers: r.res.headers, text, json };
}

export interface SseEvent {
  event: string;
  data: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** An open `/events` stream; `next(pred)` resolves with the first matching event not yet taken. */
export class EventStream {
  readonly events: SseEvent[] = [];
  readonly status: number;
  readonly #res: http.IncomingMessage;
  readonly #req: http.ClientRequest;
  #waiters: Array<{ pred: (e: SseEvent) => boolean; from: number; resolve: (e: SseEvent) => void }> = [];

  private constructor(req: http.ClientRequest, res: http.IncomingMessage) {
    this.#req = req;
    this.#res = res;
    this.status = res.statusCode ?? 0;
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buf += chunk;
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) event = line.slice(7);
          else if (line.startsWith('data: ')) data.push(line.slice(6));
        }
        if (data.length === 0) continue;
        this.events.push({ event, data: JSON.parse(data.join('\n')) });
        this.#wake();
      }
    });
  }

  static open(port: number, path = '/events', headers: Record<string, string> = {}): Promise<EventStream> {
    return new Promise((resolve, reject) => {
      const req = http.get({ host: LOCAL, port, path, headers, agent: false }, (res) => resolve(new EventStream(req, res)));
      req.on('error', reject);
    });
  }

  #wake(): void {
    for (const w of [...this.#waiters]) {
      const e = this.events.slice(w.from).find(w.pred);
      if (e) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve(e);
      }
    }
  }

  /** The first event (from index `from`) matching `pred`, waiting up to `timeoutMs`. */
  next(pred: (e: SseEvent) => boolean, timeoutMs = 10_000, from = 0): Promise<SseEvent> {
    const seen = this.events.slice(from).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = { pred, from, resolve: (e: SseEvent) => (clearTimeout(t), resolve(e)) };
      const t = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        reject(new Error(`no matching event within ${timeoutMs} ms; got: ${this.events.map((e) => e.event).join(', ')}`));
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  close(): void {
    this.#res.destroy();
    this.#req.destroy();
  }
}
