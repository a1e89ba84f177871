/**
 * The config routes of the web API, on gost's paths and payloads:
 *
 * - `GET /config/{kind}` → `{count, list}`; `GET /config/{kind}/{name}` → the object;
 * - `POST /config/{kind}` creates (the name must be new), `PUT /config/{kind}/{name}` replaces
 *   (the object must exist; the path names it), `DELETE /config/{kind}/{name}` removes;
 * - `POST /config` saves the running configuration to the file it was loaded from;
 * - `POST /config/reload` reads the sources again.
 *
 * A change is the running configuration with one object added, replaced or removed, checked as
 * a loaded file is (schema, then references) and applied through the app's reload: a
 * difference, so only the services it concerns restart. A payload that does not check gets 400
 * and changes nothing; so does a change whose new service cannot start. Successes answer
 * `{code: 0, msg: "OK"}` (gost's shape). Kinds of gost's objects burrow does not implement
 * (limiters, bypasses, …) answer 501.
 */
import { rename, writeFile } from 'node:fs/promises';
import { extname } from 'node:path';
import type { App, ReloadResult } from '../app/app';
import type { Config } from '../core/config';
import { ConfigError } from '../core/errors';
import { parseConfigText } from '../config/load';
import { verifyConfig } from '../config/verify';
import { renderConfig } from '../config/output';
import { isPlainObject } from '../config/normalize';
import { redactConfig } from './redact';
import { ApiError, ERR_DUP, ERR_FAILED, ERR_INVALID, ERR_NOT_FOUND, ERR_SAVE_FAILED, methodNotAllowed } from './errors';

/** The kinds burrow implements: config key → the word for one. */
const KINDS = { services: 'service', chains: 'chain', hops: 'hop', authers: 'auther', ingresses: 'ingress', sds: 'sd' } as const;
type Kind = keyof typeof KINDS;

/** gost's kinds without a counterpart in burrow. */
const NOT_IMPLEMENTED = new Set(['admissions', 'bypasses', 'resolvers', 'hosts', 'routers', 'observers', 'recorders', 'limiters', 'climiters', 'rlimiters']);

const OK = { code: 0, msg: 'OK' };

export interface ConfigRoutesOptions {
  /** Reads the config sources again and applies them (`POST /config/reload`). */
  reload?: () => Promise<ReloadResult>;
  /** The file `POST /config` writes, when the config came from exactly one file. */
  configFile?: string;
  /** Grace for connections of services a change removes or replaces, ms. */
  graceMs?: number;
}

function isKind(k: string): k is Kind {
  return Object.hasOwn(KINDS, k);
}

/** The config as gost prints it (field order, empty fields omitted), as plain JSON. */
function plain(cfg: Config): Record<string, unknown> {
  return JSON.parse(renderConfig(cfg, 'json')) as Record<string, unknown>;
}

export class ConfigRoutes {
  readonly #app: App;
  readonly #opts: ConfigRoutesOptions;

  constructor(app: App, opts: ConfigRoutesOptions) {
    this.#app = app;
    this.#opts = opts;
  }

  /** Answers a route under /config (but `GET /config`); throws ApiError. */
  async handle(method: string, path: string, query: URLSearchParams, body: unknown, reveal: boolean): Promise<unknown> {
    if (path === '/config') {
      if (method !== 'POST') throw methodNotAllowed(method, path);
      return this.#save(query);
    }
    if (path === '/config/reload') {
      if (method !== 'POST') throw methodNotAllowed(method, path);
      if (!this.#opts.reload) throw new ApiError(501, 50100, 'this process has no config sources to reload');
      const r = await this.#opts.reload().catch((err: Error) => {
        throw new ApiError(400, ERR_FAILED, `reload refused: ${err.message}; the running configuration is unchanged`);
      });
      return { ...OK, data: r };
    }
    const m = /^\/config\/([a-z]+)(?:\/([^/]+))?$/.exec(path);
    if (!m) throw new ApiError(404, ERR_NOT_FOUND, `${path}: not found`);
    const kind = m[1]!;
    if (NOT_IMPLEMENTED.has(kind)) {
      throw new ApiError(501, 50100, `${kind}: burrow does not implement gost's ${kind}, so they cannot be listed or changed`);
    }
    if (!isKind(kind)) throw new ApiError(404, ERR_NOT_FOUND, `${path}: not found (kinds: ${Object.keys(KINDS).join(', ')})`);
    let name: string | undefined;
    try {
      name = m[2] === undefined ? undefined : decodeURIComponent(m[2]);
    } catch {
      throw new ApiError(400, ERR_INVALID, `${path}: the name is not valid percent-encoding`);
    }
    if (name === undefined) {
      if (method === 'GET') return this.#list(kind, reveal);
      if (method === 'POST') return this.#change(`POST /config/${kind}`, kind, undefined, body);
      throw methodNotAllowed(method, path);
    }
    if (method === 'GET') return this.#get(kind, name, reveal);
    if (method === 'PUT' || method === 'DELETE') return this.#change(`${method} /config/${kind}/${name}`, kind, name, method === 'PUT' ? body : null);
    throw methodNotAllowed(method, path);
  }

  #items(kind: Kind, reveal: boolean): Array<Record<string, unknown>> {
    const cfg = reveal ? this.#app.config : redactConfig(this.#app.config);
    return (plain(cfg)[kind] as Array<Record<string, unknown>> | undefined) ?? [];
  }

  #list(kind: Kind, reveal: boolean): unknown {
    const list = this.#items(kind, reveal);
    return { count: list.length, list };
  }

  #get(kind: Kind, name: string, reveal: boolean): unknown {
    const item = this.#items(kind, reveal).find((i) => i.name === name);
    if (!item) throw new ApiError(404, ERR_NOT_FOUND, `${KINDS[kind]} ${name} not found`);
    return item;
  }

  /**
   * Creates (name undefined), replaces (body an object) or deletes (body null) one object, checks
   * the whole new config and applies it.
   */
  async #change(trigger: string, kind: Kind, name: string | undefined, body: unknown): Promise<unknown> {
    const one = KINDS[kind];
    const raw = plain(this.#app.config);
    const list = [...((raw[kind] as Array<Record<string, unknown>> | undefined) ?? [])];
    const at = (n: string): number => list.findIndex((i) => i.name === n);
    if (body !== null) {
      if (!isPlainObject(body)) throw new ApiError(400, ERR_INVALID, `body: expected a JSON object (a ${one}'s config)`);
      const item = { ...body };
      if (name !== undefined) item.name = name; // the path names the object (gost)
      if (typeof item.name !== 'string' || item.name.trim() === '') throw new ApiError(400, ERR_INVALID, `body: a ${one} needs a "name" (a non-empty string)`);
      if (name === undefined) {
        if (at(item.name) >= 0) throw new ApiError(400, ERR_DUP, `${one} ${item.name} already exists`);
        list.push(item);
      } else {
        const i = at(name);
        if (i < 0) throw new ApiError(404, ERR_NOT_FOUND, `${one} ${name} not found`);
        list[i] = item;
      }
    } else {
      const i = at(name!);
      if (i < 0) throw new ApiError(404, ERR_NOT_FOUND, `${one} ${name} not found`);
      list.splice(i, 1);
    }
    if (list.length) raw[kind] = list;
    else delete raw[kind];
    let next: Config;
    try {
      next = parseConfigText(JSON.stringify(raw), trigger, 'json').config;
      verifyConfig(next, []);
    } catch (err) {
      if (err instanceof ConfigError) throw new ApiError(400, ERR_INVALID, err.message);
      throw err;
    }
    try {
      await this.#app.reload(trigger, () => next, this.#opts.graceMs);
    } catch (err) {
      throw new ApiError(400, ERR_FAILED, `${(err as Error).message}; the running configuration is unchanged`);
    }
    return OK;
  }

  async #save(query: URLSearchParams): Promise<unknown> {
    const file = this.#opts.configFile;
    if (!file) {
      throw new ApiError(
        400,
        ERR_SAVE_FAILED,
        'the configuration does not come from one file (-C FILE without -L/-F), so there is no file to save it to',
      );
    }
    if (query.has('path')) throw new ApiError(400, ERR_SAVE_FAILED, `burrow saves only to the file it loaded (${file}); "path" is refused`);
    const ext = extname(file).toLowerCase();
    const own = ext === '.json' ? 'json' : 'yaml';
    const format = query.get('format') ?? own;
    if (format !== own) throw new ApiError(400, ERR_SAVE_FAILED, `format "${format}": ${file} is ${own}`);
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      await writeFile(tmp, renderConfig(this.#app.config, own), { mode: 0o600 });
      await rename(tmp, file);
    } catch (err) {
      throw new ApiError(500, ERR_SAVE_FAILED, `saving to ${file}: ${(err as Error).message}`);
    }
    return OK;
  }
}
