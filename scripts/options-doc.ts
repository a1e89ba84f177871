/**
 * Renders docs/options.md from the parts registry and its option declarations (src/core/parts.ts,
 * src/core/options/). `npm run docs:options` writes it; a test fails when the checked-in file
 * differs from what this renders.
 */
import { PARTS, SERVICE_OPTIONS, HOP_OPTIONS, type PartKind } from '../src/core/parts';
import type { OptionDecl, OptionShape } from '../src/core/options/options';

const KINDS: Array<[PartKind, string, string]> = [
  ['handler', 'Handlers', '`-L handler+listener://…` query keys, or `services[].handler.metadata`'],
  ['listener', 'Listeners', '`-L handler+listener://…` query keys, or `services[].listener.metadata`'],
  ['connector', 'Connectors', '`-F connector+dialer://…` query keys, or `…nodes[].connector.metadata`'],
  ['dialer', 'Dialers', '`-F connector+dialer://…` query keys, or `…nodes[].dialer.metadata`'],
];

const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function keys(d: OptionDecl): string {
  return [d.key, ...d.aliases].map((k) => `\`${k}\``).join(' / ') + (d.burrow ? ' ★' : '');
}

function table(shape: OptionShape): string[] {
  const decls = Object.values(shape);
  const seen = new Set<string>();
  const impl = decls.filter((d) => d.implemented && !seen.has(d.key.toLowerCase()) && seen.add(d.key.toLowerCase()));
  const gost = decls.filter((d) => !d.implemented && !seen.has(d.key.toLowerCase()) && seen.add(d.key.toLowerCase()));
  const out: string[] = [];
  if (impl.length > 0) {
    out.push('| key | value | default | meaning |', '| --- | --- | --- | --- |');
    for (const d of impl) out.push(`| ${keys(d)} | ${cell(d.valueText)} | ${cell(d.defaultText)} | ${cell(d.doc)} |`);
  } else {
    out.push('No options.');
  }
  if (gost.length > 0) {
    out.push('', 'gost keys accepted here but not implemented (a warning' + (gost.some((d) => !d.warn) ? ', except where gost ignores them too' : '') + '):');
    for (const d of gost) out.push(`- ${keys(d)}: ${d.doc}`);
  }
  return out;
}

export function renderOptionsDoc(): string {
  const out: string[] = [
    '# Options reference',
    '',
    '<!-- Generated from src/core/parts.ts and src/core/options/ by `npm run docs:options`; do not edit by hand. -->',
    '',
    "Every part (listener, handler, connector, dialer) reads its own keys from its metadata. On the command line",
    'the query of `-L` goes to the handler, the listener and the service, and the query of `-F` to the hop, the',
    'node, the connector and the dialer (prefix a key with `handler.`, `listener.`, `service.`, `hop.`, `node.`,',
    '`connector.` or `dialer.` to send it to one place only); in YAML each `metadata:` map belongs to its part, and',
    "a service's own `metadata` reaches its handler and listener.",
    '',
    "Keys are matched ignoring case, and gost's other spellings (aliases) are accepted. Durations take Go syntax",
    '(`500ms`, `1m30s`) or a whole number of seconds; booleans Go\'s spellings (`true`, `1`, `t`, `false`, `0`, `f`, …).',
    'A value that is malformed or out of range stops start-up with a configuration error (exit code 2) naming the',
    'flag or file, the option and what was expected. A key no part declares gets one warning naming the closest',
    "declared key; gost's keys that burrow does not implement get a warning that they are ignored. A command-line",
    'key is unknown only when none of the places it is copied to declares it.',
    '',
    '★ marks a burrow addition or a default that differs from gost\'s. Authentication and its sources, forwarder',
    'nodes, certificates and logging are described in [configuration.md](configuration.md).',
    '',
  ];
  for (const [kind, title, where] of KINDS) {
    out.push(`## ${title}`, '', `Given as ${where}.`, '');
    for (const [name, part] of Object.entries(PARTS[kind])) {
      out.push(`### \`${name}\` ${kind}`, '', `${part.doc[0]!.toUpperCase()}${part.doc.slice(1)}.`, '', ...table(part.options), '');
      if (part.notes) out.push(part.notes, '');
    }
  }
  out.push('## Service and hop keys', '', "Keys gost reads on a service (`-L`) or a hop (`-F`) rather than on a part.", '');
  out.push('### Service', '', ...table(SERVICE_OPTIONS), '', '### Hop', '', ...table(HOP_OPTIONS), '');
  return out.join('\n');
}
