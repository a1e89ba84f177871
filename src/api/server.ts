/**
 * The web API (`-api [user:pass@]addr`, `api:`), on gost's routes and response shapes, with
 * burrow's additions (health, status, events). What it guards, in order (docs/api.md):
 *
 * 1. CORS as gost sets it: any origin may read (`Access-Control-Allow-Origin: *`), preflights
 *    get 204 with the methods and headers gost allows.
 * 2. Credentials (`auth` or `auther`, HTTP Basic) on every route but the preflight, `/healthz`,
 *    `/readyz` and `/docs`; a wrong or missing one gets 401.
 * 3. Without credentials, the Host must be an IP address or localhost (DNS rebinding).
 * 4. State-changing methods: an `Origin` other than the API's own or an allowed one gets 403,
 *    a body that is not `application/json` gets 415 (no form-post CSRF).
 *
 * `GET /` is a small status page (page.ts), live from `/events`.
 *
 * Errors are `{code, msg}` as gost's. The config routes (crud.ts) change the running
 * configuration through the app's reload (a difference: unrelated services are not touched).
 * Kinds of gost's objects burrow does not implement answer 501, never a silent success.
 */
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { App } from '../app/app';
import type { ApiConfig } from '../core/config';
import { renderConfig } from '../config/output';
import { joinHostPort, splitHostPort } from '../core/addr';
import { Auther } from '../auth/auther';
import { serveHealth } from '../observe/metrics';
import { redactConfig } from './redact';
import { statusSnapshot, StatusFeed, type StatusEvent } from './status';
import { PAGE_HEADERS, PAGE_HTML, PAGE_JS } from './page';
import { ConfigRoutes, type ConfigRoutesOptions } from './crud';
import { ApiError, methodNotAllowed } from './errors';
import { Controls } from './controls';

/** Most `/events` subscribers at once; more get 503. */
export const MAX_EVENT_STREAMS = 64;
/** Most bytes of a request body read. */
const MAX_BODY_BYTES = 1 << 20;
/** A comment line on idle event streams, so proxies keep them open. */
const EVENT_HEARTBEAT_MS = 15_000;

const STATE_CHANGING = new Set(['POST', 'PUT', 'DELETE', 'PATCH']);

export { ApiError } from './errors';

let apiDoc: string | undefined;
/** The API description (docs/api-swagger.yaml), read once. */
function apiDescription(): string {
  apiDoc ??= readFileSync(join(__dirname, '..', '..', 'docs', 'api-swagger.yaml'), 'utf8');
  return apiDoc;
}

interface Ctx {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  method: string;
  /** Path under the prefix. */
  path: string;
  query: URLSearchParams;
  /** True when the request carried valid credentials (an API with credentials only). */
  authenticated: boolean;
  /** A state-changing request's JSON body. */
  body: unknown;
  /** The authenticated user, if any. */
  user?: string;
}

export class ApiServer {
  readonly #cfg: ApiConfig;
  readonly #app: App;
  readonly #logger: Logger;
  readonly #prefix: string;
  /** The API's own credentials (`auth`), or undefined. */
  readonly #ownAuther: Auther | undefined;
  /** The name of the auther the API uses (`auther`): looked up per request, a reload may replace it. */
  readonly #autherName: string | undefined;
  readonly #allowOrigins: Set<string>;
  readonly #streams = new Set<http.ServerResponse>();
  #feed: StatusFeed | undefined;
  #controls: Controls | undefined;
  #server: http.Server | undefined;
  readonly #config: ConfigRoutes;

  constructor(cfg: ApiConfig, app: App, logger: Logger, opts: ConfigRoutesOptions = {}) {
    this.#cfg = cfg;
    this.#app = app;
    this.#logger = logger.child({ kind: 'api' });
    this.#prefix = (cfg.pathPrefix ?? '').replace(/\/+$/, '');
    if (this.#prefix && !this.#prefix.startsWith('/')) this.#prefix = `/${this.#prefix}`;
    if (cfg.auther) this.#autherName = cfg.auther;
    else if (cfg.auth && cfg.auth.username !== '') {
      this.#ownAuther = new Auther({ name: 'api', auths: [{ username: cfg.auth.username, password: cfg.auth.password ?? '' }], logger: this.#logger });
    }
    this.#allowOrigins = new Set((cfg.allowOrigins ?? []).map((o) => o.replace(/\/$/, '')));
    this.#config = new ConfigRoutes(app, opts);
  }

  /** True when the API asks for credentials. */
  get protected(): boolean {
    return this.#ownAuther !== undefined || this.#autherName !== undefined;
  }

  /** Checks credentials against the API's auther (the running one of that name). */
  async #check(user: string, pass: string, req: http.IncomingMessage): Promise<boolean> {
    const a = this.#ownAuther ?? (this.#autherName !== undefined ? this.#app.built.authers.get(this.#autherName) : undefined);
    return a !== undefined && a.check(user, pass, remoteOf(req), 'api');
  }

  /** Listens on the configured address; returns the bound one. */
  async listen(): Promise<string> {
    const { host, port } = splitHostPort(this.#cfg.addr);
    const server = http.createServer((req, res) => this.#serve(req, res));
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: host || undefined, port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.#logger.warn(`api: ${err.message}`));
    this.#server = server;
    const feed = new StatusFeed(this.#app);
    this.#feed = feed;
    this.#controls = new Controls(this.#app, this.#logger, (e) => feed.emit('event', e));
    const a = server.address() as { address: string; port: number };
    const bound = joinHostPort(a.address, a.port);
    this.#logger.info(`api: http://${bound}${this.#prefix || ''}/`);
    return bound;
  }

  async close(): Promise<void> {
    this.#feed?.close();
    for (const s of this.#streams) s.end();
    this.#streams.clear();
    const s = this.#server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  #serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    const started = Date.now();
    if (this.#cfg.accesslog) {
      res.once('finish', () => {
        this.#logger.info(
          { method: req.method, uri: req.url, code: res.statusCode, client: req.socket.remoteAddress, duration: Date.now() - started },
          `${res.statusCode} ${req.method} ${req.url}`,
        );
      });
    }
    this.#route(req, res).catch((err: unknown) => {
      const e = err instanceof ApiError ? err : new ApiError(500, 50000, (err as Error)?.message ?? String(err));
      if (!(err instanceof ApiError)) this.#logger.warn(`api ${req.method} ${req.url}: ${e.message}`);
      sendError(res, e);
    });
  }

  async #route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://api.invalid');
    } catch {
      throw new ApiError(400, 40001, 'bad request target');
    }
    let path = url.pathname;
    if (this.#prefix) {
      if (path !== this.#prefix && !path.startsWith(`${this.#prefix}/`)) throw new ApiError(404, 40004, 'not found');
      if (path === this.#prefix && method === 'GET') {
        // The page's relative links need the trailing slash.
        res.writeHead(301, { location: `${this.#prefix}/${url.search}` }).end();
        return;
      }
      path = path.slice(this.#prefix.length) || '/';
    }
    if (path.length > 1) path = path.replace(/\/+$/, '');

    // 1. CORS, as gost's (gin-contrib/cors with every origin allowed).
    const origin = req.headers.origin;
    if (origin !== undefined) {
      res.setHeader('access-control-allow-origin', '*');
      if (method === 'OPTIONS') {
        res.setHeader('access-control-allow-methods', 'GET,POST,PUT,DELETE,OPTIONS');
        res.setHeader('access-control-allow-headers', '*');
        if (req.headers['access-control-request-private-network'] === 'true') {
          res.setHeader('access-control-allow-private-network', 'true');
        }
        res.writeHead(204).end();
        return;
      }
    }
    if (method === 'GET' && (path === '/healthz' || path === '/readyz')) {
      await serveHealth(path, () => this.#app.readiness(), res);
      return;
    }
    // 3. Without credentials, only requests addressed to an IP or localhost (DNS rebinding).
    if (!this.protected && !hostIsAddress(req.headers.host)) {
      throw new ApiError(403, 40300, `host "${req.headers.host ?? ''}" refused: an API without credentials answers only to an IP address or localhost`);
    }
    if (method === 'GET' && (path === '/docs' || path === '/docs/swagger.yaml')) {
      res.writeHead(200, { 'content-type': 'application/yaml; charset=utf-8' }).end(apiDescription());
      return;
    }
    // 2. Credentials.
    const ctx: Ctx = { req, res, method, path, query: url.searchParams, authenticated: false, body: undefined };
    if (this.protected) {
      const cred = basicAuth(req.headers.authorization);
      const ok = cred !== undefined && (await this.#check(cred.user, cred.pass, req));
      if (!ok) {
        res.setHeader('www-authenticate', 'Basic realm="burrow"');
        throw new ApiError(401, 40100, 'unauthorized');
      }
      ctx.authenticated = true;
      ctx.user = cred.user;
    }
    // 4. State-changing requests: same origin (or allowed) and JSON bodies only.
    if (STATE_CHANGING.has(method)) {
      this.#checkOrigin(req);
      ctx.body = await readJsonBody(req);
    }
    await this.#dispatch(ctx);
  }

  #checkOrigin(req: http.IncomingMessage): void {
    const origin = req.headers.origin;
    if (origin === undefined) return; // not a browser
    const own = req.headers.host ? `http://${req.headers.host}` : undefined;
    if (origin === own || this.#allowOrigins.has(origin)) return;
    throw new ApiError(403, 40300, `origin "${origin}" may not change state (allowed: the API's own origin and api.allowOrigins)`);
  }

  async #dispatch(ctx: Ctx): Promise<void> {
    const { method, path } = ctx;
    if (path === '/config' && method === 'GET') return this.#getConfig(ctx);
    if (path === '/config' || path.startsWith('/config/')) {
      const answer = await this.#config.handle(method, path, ctx.query, ctx.body, this.#reveal(ctx));
      ctx.res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(`${JSON.stringify(answer)}\n`);
      return;
    }
    if (path.startsWith('/status/') && this.#controls) {
      const by = `${remoteOf(ctx.req)}${ctx.user !== undefined ? ` (user ${ctx.user})` : ''}`;
      if (this.#controls.handle({ method, path, body: ctx.body, by, res: ctx.res })) return;
    }
    if (method !== 'GET') {
      if (path === '/status' || path === '/events' || path === '/docs') throw methodNotAllowed(method, path);
      throw new ApiError(404, 40004, `${path}: not found`);
    }
    if (path === '/status') {
      const snap = await statusSnapshot(this.#app);
      ctx.res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(`${JSON.stringify(snap)}\n`);
      return;
    }
    if (path === '/events') return this.#events(ctx);
    if (path === '/') {
      ctx.res.writeHead(200, { ...PAGE_HEADERS, 'content-type': 'text/html; charset=utf-8' }).end(PAGE_HTML);
      return;
    }
    if (path === '/ui.js') {
      ctx.res.writeHead(200, { ...PAGE_HEADERS, 'content-type': 'text/javascript; charset=utf-8' }).end(PAGE_JS);
      return;
    }
    throw new ApiError(404, 40004, `${path}: not found`);
  }

  /** True when `?secrets=true` asks for secrets (403 without credentials). */
  #reveal(ctx: Ctx): boolean {
    const secrets = ctx.query.get('secrets');
    const reveal = secrets !== null && ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(secrets);
    if (reveal && !ctx.authenticated) {
      throw new ApiError(403, 40300, 'secrets are shown only to an authenticated request (the API has no credentials configured)');
    }
    return reveal;
  }

  #getConfig(ctx: Ctx): void {
    const format = ctx.query.get('format') ?? 'json';
    if (format !== 'json' && format !== 'yaml') throw new ApiError(400, 40001, `format "${format}": expected json or yaml`);
    const cfg = this.#reveal(ctx) ? this.#app.config : redactConfig(this.#app.config);
    const text = renderConfig(cfg, format);
    const type = format === 'json' ? 'application/json' : 'application/yaml; charset=utf-8';
    ctx.res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(text);
  }

  async #events(ctx: Ctx): Promise<void> {
    if (this.#streams.size >= MAX_EVENT_STREAMS) throw new ApiError(503, 50300, `too many event streams (at most ${MAX_EVENT_STREAMS})`);
    const feed = this.#feed;
    if (!feed) throw new ApiError(503, 50300, 'the API is stopping');
    const { res, req } = ctx;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    const send = (e: StatusEvent | { event: 'status'; data: unknown }): void => {
      res.write(`event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`);
    };
    // Events that happen while the first snapshot is taken come after it.
    const queued: StatusEvent[] = [];
    let live = false;
    const onEvent = (e: StatusEvent): void => (live ? send(e) : void queued.push(e));
    feed.on('event', onEvent);
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), EVENT_HEARTBEAT_MS);
    heartbeat.unref();
    this.#streams.add(res);
    const done = (): void => {
      clearInterval(heartbeat);
      feed.off('event', onEvent);
      this.#streams.delete(res);
    };
    req.socket.once('close', done);
    res.once('close', done);
    try {
      send({ event: 'status', data: await statusSnapshot(this.#app) });
    } finally {
      live = true;
      for (const e of queued.splice(0)) send(e);
    }
  }
}

function sendError(res: http.ServerResponse, e: ApiError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(e.status, { 'content-type': 'application/json' }).end(`${JSON.stringify({ code: e.code, msg: e.message })}\n`);
}

function remoteOf(req: http.IncomingMessage): string {
  const a = req.socket.remoteAddress ?? '';
  return joinHostPort(a, req.socket.remotePort ?? 0);
}

/** user and password of an `Authorization: Basic` header, or undefined. */
function basicAuth(header: string | undefined): { user: string; pass: string } | undefined {
  const m = /^Basic +([A-Za-z0-9+/=]+) *$/i.exec(header ?? '');
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return undefined;
  return { user: text.slice(0, colon), pass: text.slice(colon + 1) };
}

/** True for a Host header naming an IP address or localhost (any port). */
function hostIsAddress(host: string | undefined): boolean {
  if (!host) return false;
  let name = host.toLowerCase();
  if (name.startsWith('[')) {
    const end = name.indexOf(']');
    if (end < 0) return false;
    name = name.slice(1, end);
  } else if (name.indexOf(':') === name.lastIndexOf(':')) {
    name = name.split(':')[0]!;
  }
  return name === 'localhost' || isIP(name) !== 0;
}

/**
 * Reads a state-changing request's body: none, or JSON declared as `application/json`. A body
 * of another type (a form post) gets 415, bad JSON 400, more than 1 MiB 413.
 */
async function readJsonBody(req: http.IncomingMessage): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  if (type === '' && !hasBody) return undefined;
  if (type !== 'application/json') {
    req.resume();
    throw new ApiError(415, 41500, `content type "${type || '(none)'}" refused: state-changing requests take application/json only`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY_BYTES) throw new ApiError(413, 41300, `body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(c);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch (err) {
    throw new ApiError(400, 40001, `body is not JSON: ${(err as Error).message}`);
  }
}
