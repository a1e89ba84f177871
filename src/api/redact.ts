/**
 * `GET /config` without `secrets=true`: the config with every secret replaced by "******" —
 * passwords (auth, auths, Redis), tokens (plugins), `tunnel.bindAuth` credential lists, and the
 * password part of URLs (`tunnel.publicStore: redis://:pass@host`). The config itself is left
 * untouched (a deep copy is redacted).
 */
import type { Config } from '../core/config';

export const REDACTED = '******';

/** Keys whose values are secrets wherever they appear (metadata keys included). */
const SECRET_KEYS = new Set(['password', 'token', 'tunnel.bindauth', 'bindauth', 'secret']);

function redactUrl(text: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\/[^/]*@/i.test(text)) return text;
  try {
    const u = new URL(text);
    if (u.password === '') return text;
    u.password = REDACTED;
    return u.toString();
  } catch {
    return text;
  }
}

function redact(value: unknown): unknown {
  if (typeof value === 'string') return redactUrl(value);
  if (Array.isArray(value)) return value.map(redact);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (SECRET_KEYS.has(k.toLowerCase()) && v !== '' && v !== undefined && v !== null) out[k] = REDACTED;
    else out[k] = redact(v);
  }
  return out;
}

export function redactConfig(config: Config): Config {
  return redact(config) as Config;
}
