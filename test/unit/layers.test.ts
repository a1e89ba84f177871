// The layers of src/ (docs/architecture.md, "Layers"): every import — runtime or type-only,
// static, dynamic, require() or `typeof import()` — goes from a folder to the same folder or
// to a lower layer, folders of one layer do not import each other, and no files import each
// other in a loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

const ROOT = resolve(__dirname, '../..');
const SRC = join(ROOT, 'src');

/** Lowest first. A folder of src/ (or a file at its top) may import only its own folder and lower layers. */
const LAYERS: string[][] = [
  ['core'],
  ['protocol', 'observe', 'limit'],
  ['io', 'loader'],
  ['transport'],
  ['forward', 'service', 'auth', 'ingress', 'sd', 'tls'],
  ['chain', 'connector'],
  ['handler', 'listener'],
  ['config'],
  ['app'],
  ['api'],
  ['cli'],
  ['demo.ts'],
  ['main.ts'],
];

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sourceFiles(p, out);
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Every module specifier a file names, with the line it is on. */
export function specifiers(file: string, text: string): Array<{ spec: string; line: number }> {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: Array<{ spec: string; line: number }> = [];
  const add = (node: ts.Node | undefined): void => {
    if (node && ts.isStringLiteralLike(node)) {
      found.push({ spec: node.text, line: sf.getLineAndCharacterOfPosition(node.getStart()).line + 1 });
    }
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node.moduleReference.expression);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node.argument.literal);
    else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      const dynamic = callee.kind === ts.SyntaxKind.ImportKeyword;
      const req = ts.isIdentifier(callee) && callee.text === 'require';
      if (dynamic || req) add(node.arguments[0]);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

function resolveLocal(from: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const base = resolve(dirname(from), spec);
  for (const p of [base, `${base}.ts`, join(base, 'index.ts')]) {
    if (p.startsWith(SRC + sep) && p.endsWith('.ts') && existsSync(p)) return p;
  }
  return undefined;
}

/** The top folder of src/ a file is in (or the file's own name at src/'s top). */
function unitOf(file: string): string {
  return relative(SRC, file).split(sep)[0];
}

function rankOf(unit: string): number {
  return LAYERS.findIndex((layer) => layer.includes(unit));
}

interface Edge {
  from: string;
  to: string;
  line: number;
}

function graph(): { files: string[]; edges: Edge[] } {
  const files = sourceFiles(SRC);
  const edges: Edge[] = [];
  for (const f of files) {
    for (const { spec, line } of specifiers(f, readFileSync(f, 'utf8'))) {
      const to = resolveLocal(f, spec);
      if (spec.startsWith('.') && !to && !spec.endsWith('.json')) {
        throw new Error(`${relative(ROOT, f)}:${line}: cannot resolve ${spec}`);
      }
      if (to) edges.push({ from: f, to, line });
    }
  }
  return { files, edges };
}

/** Strongly connected components with more than one file (or a file importing itself). */
function cycles(files: string[], edges: Edge[]): string[][] {
  const next = new Map<string, string[]>(files.map((f) => [f, []]));
  for (const e of edges) next.get(e.from)!.push(e.to);
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const strong = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of next.get(v)!) {
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(relative(ROOT, w));
      } while (w !== v);
      if (comp.length > 1 || next.get(v)!.includes(v)) out.push(comp.sort());
    }
  };
  for (const f of files) if (!idx.has(f)) strong(f);
  return out;
}

test('the import finder sees every kind of import', () => {
  const text = [
    "import a from './a';",
    "import type { B } from './b';",
    "import { type C } from './c';",
    "export { d } from './d';",
    "export type { E } from './e';",
    "const f = require('./f') as typeof import('./g');",
    "void import('./h');",
    "import i = require('./i');",
    "import './j';",
  ].join('\n');
  assert.deepEqual(
    specifiers('x.ts', text).map((s) => s.spec).sort(),
    ['./a', './b', './c', './d', './e', './f', './g', './h', './i', './j'],
  );
});

test('every folder of src/ has a layer', () => {
  const units = readdirSync(SRC).filter((n) => statSync(join(SRC, n)).isDirectory() || n.endsWith('.ts'));
  assert.deepEqual(units.filter((u) => rankOf(u) < 0), [], 'place these in LAYERS and docs/architecture.md');
});

test('imports point down the layers, never up or sideways', () => {
  const { edges } = graph();
  const bad: string[] = [];
  for (const e of edges) {
    const a = unitOf(e.from);
    const b = unitOf(e.to);
    if (a === b) continue;
    if (rankOf(b) >= rankOf(a)) {
      bad.push(`${relative(ROOT, e.from)}:${e.line} (${a}, layer ${rankOf(a)}) imports ${relative(ROOT, e.to)} (${b}, layer ${rankOf(b)})`);
    }
  }
  assert.deepEqual(bad, []);
});

test('no files import each other in a loop', () => {
  const { files, edges } = graph();
  assert.deepEqual(cycles(files, edges), []);
});

test('docs/architecture.md lists the same layers', () => {
  const doc = readFileSync(join(ROOT, 'docs/architecture.md'), 'utf8');
  const start = doc.indexOf('\n## Layers\n');
  assert.ok(start >= 0, 'docs/architecture.md has a "## Layers" section');
  const end = doc.indexOf('\n## ', start + 1);
  const section = doc.slice(start, end < 0 ? undefined : end);
  const listed: string[][] = [];
  for (const m of section.matchAll(/^\d+\. (.*)$/gm)) {
    listed.push([...m[1].split(' — ')[0].matchAll(/`([^`]+?)\/?`/g)].map((x) => x[1]));
  }
  assert.deepEqual(listed, LAYERS);
});
