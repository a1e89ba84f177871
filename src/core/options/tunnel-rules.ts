/**
 * The tunnel handler's inline rules (`tunnel=host:uuid,host2:$uuid`). gost drops an entry it
 * cannot split into host and endpoint; burrow drops it too and reports it, so a rule written
 * with "=" or a bare UUID does not vanish without a word.
 */
import { isUuid } from '../uuid';

export interface TunnelRule {
  hostname: string;
  endpoint: string;
}

export interface MalformedRule {
  rule: string;
  reason: string;
}


export function parseTunnelRules(value: string): { rules: TunnelRule[]; malformed: MalformedRule[] } {
  const rules: TunnelRule[] = [];
  const malformed: MalformedRule[] = [];
  for (const raw of value.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const i = item.indexOf(':');
    if (i < 0) {
      const hint = item.includes('=') ? ' (a rule is host:tunnel-id, with ":" not "=")' : isUuid(item) ? ' (a tunnel ID needs a host: host:tunnel-id)' : '';
      malformed.push({ rule: item, reason: `expected host:tunnel-id${hint}` });
      continue;
    }
    const hostname = item.slice(0, i).trim();
    const endpoint = item.slice(i + 1).trim();
    if (!hostname || !endpoint) {
      malformed.push({ rule: item, reason: hostname ? 'no tunnel ID after ":"' : 'no host before ":"' });
      continue;
    }
    // An endpoint that is not a tunnel ID stays a rule that never matches (the ingress warns).
    rules.push({ hostname, endpoint });
  }
  return { rules, malformed };
}
