/**
 * Checks every part's metadata against the parts' option declarations (core/parts): a malformed
 * or out-of-range value is a ConfigError naming the key, where it was given and what was
 * expected; a key no scope declares gets one warning with the nearest declared key; a gost key
 * burrow does not implement gets a warning that it is ignored.
 *
 * Scopes: a key in `handler.metadata` is the handler's, in `listener.metadata` the listener's;
 * a service's own `metadata` reaches the handler and the listener (build.ts merges it into
 * both). The command line copies each -L key into all three maps (each -F key into the hop,
 * node, connector and dialer), so a command-line key is unknown only when none of those scopes
 * declares it.
 */
import { Metadata } from '../core/metadata';
import { HOP_OPTIONS, SERVICE_OPTIONS, partOf, type PartKind } from '../core/parts';
import { keyIndex, nearestKey, parseOptions, type OptionShape } from '../core/options/options';
import { parseTunnelRules } from '../core/options/tunnel-rules';
import type { Config, MetadataMap } from '../core/config';
import { originOr, where, type Origin } from './origin';

interface Scoped {
  /** Metadata map and its path below the item's origin. */
  map: MetadataMap | undefined;
  sub: string;
  /** The option shapes that read keys given in this map. */
  shapes: OptionShape[];
}

const fromCli = (o: Origin): boolean => o.source.startsWith('-L ') || o.source.startsWith('-F ');

function shapeOf(kind: PartKind, type: string | undefined): OptionShape {
  return (type && partOf(kind, type)?.options) || {};
}

/** Throws ConfigError for the first bad value; appends key warnings (each once) to `warnings`. */
export function checkOptions(cfg: Config, warnings: string[]): void {
  const seen = new Set<string>();
  const warn = (text: string): void => {
    if (seen.has(text)) return;
    seen.add(text);
    warnings.push(text);
  };

  cfg.services?.forEach((svc, i) => {
    const o = originOr(svc, `services[${i}]`);
    const handler = shapeOf('handler', svc.handler.type);
    const listener = shapeOf('listener', svc.listener.type);
    const all = [handler, listener, SERVICE_OPTIONS];
    const cli = fromCli(o);
    // Values: each part parses what it reads, from the merged maps build.ts gives it.
    parseOptions(handler, new Metadata({ ...(svc.metadata ?? {}), ...(svc.handler.metadata ?? {}) }), at(o, 'handler.metadata'));
    parseOptions(listener, new Metadata({ ...(svc.metadata ?? {}), ...(svc.listener.metadata ?? {}) }), at(o, 'listener.metadata'));
    checkKeys(o, [
      { map: svc.handler.metadata, sub: 'handler.metadata', shapes: cli ? all : [handler] },
      { map: svc.listener.metadata, sub: 'listener.metadata', shapes: cli ? all : [listener] },
      { map: svc.metadata, sub: 'metadata', shapes: all },
    ], warn);
    if (svc.handler.type === 'tunnel') {
      const md = new Metadata({ ...(svc.metadata ?? {}), ...(svc.handler.metadata ?? {}) });
      const rules = md.getString('tunnel');
      if (rules) {
        for (const bad of parseTunnelRules(rules).malformed) {
          warn(`${cli ? o.source : where(o, 'handler.metadata.tunnel')}: tunnel rule "${bad.rule}" ignored: ${bad.reason}`);
        }
      }
    }
  });

  const checkHop = (hop: NonNullable<Config['hops']>[number], ho: Origin): void => {
    hop.nodes?.forEach((node, n) => {
      const o = originOr(node, `${ho.path}.nodes[${n}]`);
      const connector = shapeOf('connector', node.connector?.type ?? 'tunnel');
      const dialer = shapeOf('dialer', node.dialer?.type ?? 'tcp');
      const all = [connector, dialer, HOP_OPTIONS];
      const cli = fromCli(o);
      const shared = { ...(hop.metadata ?? {}), ...(node.metadata ?? {}) };
      parseOptions(connector, new Metadata({ ...shared, ...(node.connector?.metadata ?? {}) }), at(o, 'connector.metadata'));
      parseOptions(dialer, new Metadata({ ...shared, ...(node.dialer?.metadata ?? {}) }), at(o, 'dialer.metadata'));
      checkKeys(o, [
        { map: node.connector?.metadata, sub: 'connector.metadata', shapes: cli ? all : [connector] },
        { map: node.dialer?.metadata, sub: 'dialer.metadata', shapes: cli ? all : [dialer] },
        { map: node.metadata, sub: 'metadata', shapes: all },
      ], warn);
    });
    if (hop.metadata) {
      const types = (hop.nodes ?? []).flatMap((n) => [shapeOf('connector', n.connector?.type ?? 'tunnel'), shapeOf('dialer', n.dialer?.type ?? 'tcp')]);
      checkKeys(ho, [{ map: hop.metadata, sub: 'metadata', shapes: [...types, HOP_OPTIONS] }], warn);
    }
  };
  cfg.chains?.forEach((chain, c) => {
    const co = originOr(chain, `chains[${c}]`);
    chain.hops.forEach((hop, h) => checkHop(hop, originOr(hop, `${co.path}.hops[${h}]`)));
  });
  cfg.hops?.forEach((hop, h) => checkHop(hop, originOr(hop, `hops[${h}]`)));
}

function at(o: Origin, sub: string): { source: string; path: string } {
  return { source: o.source, path: `${o.path}.${sub}` };
}

function checkKeys(o: Origin, scoped: Scoped[], warn: (text: string) => void): void {
  const cli = fromCli(o);
  for (const s of scoped) {
    if (!s.map) continue;
    const index = keyIndex(s.shapes);
    for (const key of Object.keys(s.map)) {
      // A command-line key names the flag; a prefixed one ("handler.x") was meant for that scope.
      const place = cli ? o.source : where(o, `${s.sub}.${key}`);
      const d = index.get(key.toLowerCase());
      if (d) {
        if (!d.implemented && d.warn) warn(`${place}: "${key}" (${d.doc}) is a gost option burrow does not implement (ignored)`);
        continue;
      }
      const near = nearestKey(key, s.shapes);
      warn(`${place}: unknown option "${key}"${near ? ` (did you mean ${near}?)` : ''}; ignored`);
    }
  }
}
