/**
 * The configuration burrow runs with: the -C sources, the -L/-F flags, the default file when
 * neither names a service, then the GOST_* environment and -api/-metrics/-D on top, merged and
 * verified as one. Reading and normalising one source is config/load.ts's part.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../core/errors';
import { isGoTrue } from '../core/bool';
import type { ApiConfig, AuthConfig, Config, MetricsConfig } from '../core/config';
import { findDefaultConfig, loadConfigSource, mergeConfigs, type LoadedConfig, type LoadOptions } from '../config/load';
import { verifyConfig } from '../config/verify';
import { setOrigin } from '../config/origin';
import { buildConfigFromCli } from './build';

/** The command-line part of loadConfig's input. */
export interface CliConfigInput {
  listen: string[];
  forward: string[];
  logLevel?: 'debug' | 'trace';
  api?: string;
  metrics?: string;
}

/** Loads, merges, applies overrides and verifies. Throws ConfigError. */
export async function loadConfig(sources: string[], cli: CliConfigInput, opts: LoadOptions = {}): Promise<LoadedConfig> {
  const warnings: string[] = [];
  const parts: Config[] = [];
  for (const src of sources) {
    const loaded = await loadConfigSource(src, opts);
    parts.push(loaded.config);
    warnings.push(...loaded.warnings);
  }
  const fromCli = buildConfigFromCli(cli.listen, cli.forward, warnings);
  parts.push(fromCli);
  const env = opts.env ?? process.env;
  if (sources.length === 0 && !fromCli.services?.length && !cli.api && !env.GOST_API) {
    const found = await findDefaultConfig(opts.searchPaths ?? defaultSearchPaths());
    if (found) {
      const loaded = await loadConfigSource(found, opts);
      parts.unshift(loaded.config);
      warnings.push(...loaded.warnings);
    }
  }
  const config = mergeConfigs(parts);
  applyOverrides(config, cli, env, warnings);
  verifyConfig(config, warnings);
  return { config, warnings };
}

function defaultSearchPaths(): string[] {
  return ['/etc/gost/', join(homedir(), '.gost'), '.'];
}

function applyOverrides(cfg: Config, cli: CliConfigInput, env: Record<string, string | undefined>, warnings: string[]): void {
  if (env.GOST_LOGGER_LEVEL) cfg.log = { ...cfg.log, level: env.GOST_LOGGER_LEVEL };
  if (env.GOST_API) setOrigin((cfg.api = parseApiAddr(env.GOST_API, 'GOST_API')), 'GOST_API', 'api');
  if (env.GOST_METRICS) cfg.metrics = parseMetricsAddr(env.GOST_METRICS, 'GOST_METRICS');
  if (env.GOST_PROFILING) warnings.push('GOST_PROFILING: profiling is not implemented by burrow (ignored)');
  if (cli.logLevel) cfg.log = { ...cfg.log, level: cli.logLevel };
  if (cli.api) setOrigin((cfg.api = parseApiAddr(cli.api, '-api')), '-api', 'api');
  if (cli.metrics) cfg.metrics = parseMetricsAddr(cli.metrics, '-metrics');
}

/** "[user:pass@]addr[?k=v&…]" as -api / -metrics take it. */
function splitServiceAddr(value: string, source: string): { addr: string; auth?: AuthConfig; query: URLSearchParams } {
  const q = value.indexOf('?');
  const head = q >= 0 ? value.slice(0, q) : value;
  const query = new URLSearchParams(q >= 0 ? value.slice(q + 1) : '');
  const at = head.lastIndexOf('@');
  const addr = at >= 0 ? head.slice(at + 1) : head;
  if (addr === '') throw new ConfigError('missing address (expected [user:pass@]host:port)', { source });
  if (at < 0) return { addr, query };
  const info = head.slice(0, at);
  const colon = info.indexOf(':');
  const auth = colon >= 0 ? { username: info.slice(0, colon), password: info.slice(colon + 1) } : { username: info, password: '' };
  return { addr, auth, query };
}

function parseApiAddr(value: string, source: string): ApiConfig {
  const { addr, auth, query } = splitServiceAddr(value, source);
  const pathPrefix = query.get('pathPrefix');
  const accesslog = query.get('accesslog');
  const unauth = query.get('allowUnauthenticated');
  const origins = query.getAll('allowOrigins').flatMap((o) => o.split(',')).filter((o) => o !== '');
  return {
    addr,
    ...(pathPrefix ? { pathPrefix } : {}),
    ...(accesslog !== null ? { accesslog: isGoTrue(accesslog) } : {}),
    ...(auth ? { auth } : {}),
    ...(unauth !== null ? { allowUnauthenticated: isGoTrue(unauth) } : {}),
    ...(origins.length ? { allowOrigins: origins } : {}),
  };
}

function parseMetricsAddr(value: string, source: string): MetricsConfig {
  const { addr, auth, query } = splitServiceAddr(value, source);
  const path = query.get('path');
  const max = query.get('maxTunnels');
  let maxTunnels: number | undefined;
  if (max !== null) {
    maxTunnels = Number(max);
    if (!/^\d+$/.test(max) || !Number.isSafeInteger(maxTunnels)) {
      throw new ConfigError(`maxTunnels "${max}": expected a whole number`, { source, path: 'metrics.maxTunnels' });
    }
  }
  return { addr, ...(path ? { path } : {}), ...(auth ? { auth } : {}), ...(maxTunnels !== undefined ? { maxTunnels } : {}) };
}
