/**
 * Abuse controls of the web API (docs/api.md, "Abuse controls"): an operator disconnects a
 * connector, revokes a tunnel ID (its BINDs are refused with FORBIDDEN until it is restored),
 * releases or blocks a public name. Each action is logged with who asked, answered with what it
 * changed, and published on `/events`. State lives in memory, in each tunnel service.
 *
 *   POST   /status/connectors/{id}/disconnect
 *   POST   /status/tunnels/{id}/revoke        DELETE restores
 *   POST   /status/names/{name}/release
 *   POST   /status/names/{name}/block         DELETE unblocks
 *
 * Bodies are optional JSON `{"reason": "..."}`. The server's routing (credentials, Origin,
 * content type) has already been checked for these state-changing requests.
 */
import type http from 'node:http';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { App } from '../app/app';
import { isEndpointLabel } from '../handler/tunnel/public-names';
import type { StatusEvent } from './status';
import { ApiError, ERR_INVALID, ERR_NOT_FOUND, methodNotAllowed } from './errors';

export interface ControlRequest {
  method: string;
  /** Path under the API prefix. */
  path: string;
  body: unknown;
  /** Who asked, for the log and the events: client address, and user when authenticated. */
  by: string;
  res: http.ServerResponse;
}

const BODY = z.object({ reason: z.string().max(256).optional() }).strict();
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const ROUTES: Array<{ re: RegExp; methods: string[]; run: (c: Controls, arg: string, req: ControlRequest, reason: string) => unknown }> = [
  { re: /^\/status\/connectors\/([^/]+)\/disconnect$/, methods: ['POST'], run: (c, id, r, why) => c.disconnect(uuid(id, 'connector'), r.by, why) },
  {
    re: /^\/status\/tunnels\/([^/]+)\/revoke$/,
    methods: ['POST', 'DELETE'],
    run: (c, id, r, why) => (r.method === 'POST' ? c.revoke(uuid(id, 'tunnel'), r.by, why) : c.restore(uuid(id, 'tunnel'), r.by)),
  },
  { re: /^\/status\/names\/([^/]+)\/release$/, methods: ['POST'], run: (c, name, r, why) => c.release(name, r.by, why) },
  {
    re: /^\/status\/names\/([^/]+)\/block$/,
    methods: ['POST', 'DELETE'],
    run: (c, name, r, why) => (r.method === 'POST' ? c.block(name, r.by, why) : c.unblock(name, r.by)),
  },
];

function uuid(text: string, what: string): string {
  if (!UUID_RE.test(text)) throw new ApiError(400, ERR_INVALID, `${what} ID "${text}": expected a UUID (8-4-4-4-12 hex digits)`);
  return text.toLowerCase();
}

/** The abuse controls over a running app; `publish` sends an event to `/events`. */
export class Controls {
  readonly #app: App;
  readonly #log: Logger;
  readonly #publish: (e: StatusEvent) => void;

  constructor(app: App, logger: Logger, publish: (e: StatusEvent) => void) {
    this.#app = app;
    this.#log = logger;
    this.#publish = publish;
  }

  /**
   * Answers a request when its path is one of the controls' (true), else leaves it (false).
   * Throws ApiError for a refused action.
   */
  handle(req: ControlRequest): boolean {
    for (const r of ROUTES) {
      const m = r.re.exec(req.path);
      if (!m) continue;
      if (!r.methods.includes(req.method)) throw methodNotAllowed(req.method, req.path);
      const parsed = BODY.safeParse(req.body ?? {});
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        const at = issue.path.length ? issue.path.join('.') : 'body';
        throw new ApiError(400, ERR_INVALID, `${at}: ${issue.message} (expected {"reason": "text"} or no body)`);
      }
      let arg: string;
      try {
        arg = decodeURIComponent(m[1]!);
      } catch {
        throw new ApiError(400, ERR_INVALID, `bad escape in ${req.path}`);
      }
      const data = r.run(this, arg, req, parsed.data.reason ?? '');
      req.res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      req.res.end(`${JSON.stringify({ code: 0, msg: 'OK', data })}\n`);
      return true;
    }
    return false;
  }

  #tunnelServers() {
    const list = [...this.#app.built.tunnelHandlers].map(([service, h]) => ({ service, server: h.server }));
    if (list.length === 0) throw new ApiError(409, 40900, 'this process runs no tunnel service');
    return list;
  }

  #publicServers() {
    const list = this.#tunnelServers().flatMap(({ service, server }) => (server.publicNames ? [{ service, names: server.publicNames }] : []));
    if (list.length === 0) throw new ApiError(409, 40900, 'no tunnel service is in public mode (tunnel.publicDomain)');
    return list;
  }

  #label(name: string, names: { labelOf(h: string): string | undefined }): string {
    const label = names.labelOf(name);
    if (label === undefined) throw new ApiError(400, ERR_INVALID, `name "${name}": expected a DNS label or <label>.<publicDomain>`);
    return label;
  }

  disconnect(id: string, by: string, reason: string) {
    for (const { service, server } of this.#tunnelServers()) {
      for (const [tunnelId, list] of server.pool.snapshot()) {
        const c = list.find((x) => x.id === id);
        if (!c) continue;
        c.session.close();
        this.#log.warn({ service, tunnel: tunnelId, connector: id, by }, `connector ${id} of tunnel ${tunnelId} (${c.remote}) disconnected by ${by}${because(reason)}`);
        const data = { service, tunnelId, id, client: c.remote };
        this.#publish({ event: 'connector-disconnect', data: { ...data, by, reason } });
        return data;
      }
    }
    throw new ApiError(404, ERR_NOT_FOUND, `connector ${id} is not connected`);
  }

  revoke(tunnelId: string, by: string, reason: string) {
    let disconnected = 0;
    for (const { server } of this.#tunnelServers()) {
      if (!server.revoked.has(tunnelId)) server.revoked.set(tunnelId, { since: Date.now(), reason });
      for (const c of server.pool.connectors(tunnelId)) {
        c.session.close();
        disconnected++;
      }
    }
    this.#log.warn({ tunnel: tunnelId, by }, `tunnel ${tunnelId} revoked by ${by}${because(reason)}: ${disconnected} connector(s) disconnected, binds refused until restored`);
    this.#publish({ event: 'tunnel-revoke', data: { tunnelId, disconnected, by, reason } });
    return { tunnelId, disconnected };
  }

  restore(tunnelId: string, by: string) {
    let found = false;
    for (const { server } of this.#tunnelServers()) found = server.revoked.delete(tunnelId) || found;
    if (!found) throw new ApiError(404, ERR_NOT_FOUND, `tunnel ${tunnelId} is not revoked`);
    this.#log.warn({ tunnel: tunnelId, by }, `tunnel ${tunnelId} restored by ${by}: binds accepted again`);
    this.#publish({ event: 'tunnel-restore', data: { tunnelId, by } });
    return { tunnelId };
  }

  release(name: string, by: string, reason: string) {
    const freed: Array<{ service: string; name: string; host: string; tunnelId: string }> = [];
    for (const { service, names } of this.#publicServers()) {
      const label = this.#label(name, names);
      const tunnelId = names.release(label);
      if (tunnelId !== undefined) freed.push({ service, name: label, host: names.hostFor(label), tunnelId });
    }
    if (freed.length === 0) throw new ApiError(404, ERR_NOT_FOUND, `name ${name} is not held`);
    for (const f of freed) {
      this.#log.warn({ service: f.service, tunnel: f.tunnelId, by }, `public name ${f.host} (tunnel ${f.tunnelId}) released by ${by}${because(reason)}`);
      this.#publish({ event: 'name-free', data: { ...f, by, reason } });
    }
    return { released: freed };
  }

  block(name: string, by: string, reason: string) {
    const out: Array<{ service: string; name: string; host: string; releasedFrom?: string }> = [];
    for (const { service, names } of this.#publicServers()) {
      const label = this.#label(name, names);
      if (isEndpointLabel(label)) throw new ApiError(400, ERR_INVALID, `${label} is a tunnel's endpoint name: revoke the tunnel instead`);
      const was = names.block(label, reason);
      out.push({ service, name: label, host: names.hostFor(label), ...(was !== undefined ? { releasedFrom: was } : {}) });
    }
    for (const b of out) {
      const from = b.releasedFrom ? ` (released from tunnel ${b.releasedFrom})` : '';
      this.#log.warn({ service: b.service, by }, `public name ${b.host} blocked by ${by}${because(reason)}${from}`);
      this.#publish({ event: 'name-block', data: { ...b, by, reason } });
    }
    return { blocked: out };
  }

  unblock(name: string, by: string) {
    const out: Array<{ service: string; name: string; host: string }> = [];
    for (const { service, names } of this.#publicServers()) {
      const label = this.#label(name, names);
      if (names.unblock(label)) out.push({ service, name: label, host: names.hostFor(label) });
    }
    if (out.length === 0) throw new ApiError(404, ERR_NOT_FOUND, `name ${name} is not blocked`);
    for (const u of out) {
      this.#log.warn({ service: u.service, by }, `public name ${u.host} unblocked by ${by}`);
      this.#publish({ event: 'name-unblock', data: { ...u, by } });
    }
    return { unblocked: out };
  }
}

function because(reason: string): string {
  return reason ? ` (reason: ${reason})` : '';
}
