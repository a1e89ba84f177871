/**
 * Where each list item of a merged config came from (a file, stdin, "-L …"), so that checks run
 * after merging can still name the source and the path inside it. Items keep their identity
 * through merging, so a WeakMap keyed by the item object is enough.
 */

export interface Origin {
  /** File name, "<stdin>", "-L …", "-F …" or "command line". */
  source: string;
  /** Path inside that source, e.g. "services[1]". */
  path: string;
}

const origins = new WeakMap<object, Origin>();

export function setOrigin(item: object, source: string, path: string): void {
  origins.set(item, { source, path });
}

export function originOf(item: object): Origin | undefined {
  return origins.get(item);
}

/** Origin of `item`, falling back to `fallbackPath` in an unnamed source. */
export function originOr(item: object, fallbackPath: string): Origin {
  return origins.get(item) ?? { source: 'config', path: fallbackPath };
}

/** Human text "source: path" used in warnings. */
export function where(o: Origin, sub = ''): string {
  const path = sub ? (sub.startsWith('[') ? `${o.path}${sub}` : `${o.path}.${sub}`) : o.path;
  return path ? `${o.source}: ${path}` : o.source;
}
