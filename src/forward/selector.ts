/**
 * Forwarder node selection (behavior.md §5.2): host filters with the documented fallback
 * semantics, round-robin among candidates, and failure marking (maxFails / failTimeout).
 *
 * - With a host: nodes whose `filter.host` matches come first; unfiltered nodes are the
 *   fallback; nodes with metadata `backup: true` come last.
 * - Without a host: every node is a candidate (backup nodes last).
 * - Filter match as gost's checkHost: "*.x" and "*x" become ".x"; ".x" matches any host ending
 *   in "x" (and the apex); otherwise exact. Case-insensitive here, port stripped.
 */
import type { ForwardNodeConfig, SelectorConfig, TLSConfig } from '../core/config';
import { compileNodeHttp, type NodeHttp } from './node-http';
import { parseRule, pathOf, type MatchInput, type Rule } from './matcher';
import { Metadata, parseGoDurationMs } from '../core/metadata';
import { stripPort } from '../core/addr';
import { DEFAULTS } from '../core/config';
import { RoundRobin } from './round-robin';

export interface ForwardNode {
  name: string;
  addr: string;
  network?: string;
  filterHost?: string;
  /** `filter.protocol`: the sniffed protocol (http, tls, ssh) must be this. */
  filterProtocol?: string;
  /** `filter.path`: a sniffed HTTP request's path must start with this. */
  filterPath?: string;
  backup: boolean;
  metadata: Metadata;
  /** A routing rule and its priority (the rule's length unless set). */
  matcher?: { rule: Rule; priority: number };
  /** HTTP settings for sniffed requests to this node. */
  http?: NodeHttp;
  /** The node speaks TLS. */
  tls?: TLSConfig;
  fails: number;
  failedAt: number;
}

function normFilter(h: string | undefined): string | undefined {
  if (!h) return undefined;
  let v = h.trim().toLowerCase();
  if (v.startsWith('*')) v = v.slice(1);
  if (v.startsWith('.')) return v;
  return v || undefined;
}

export function hostMatches(filter: string, host: string): boolean {
  const h = stripPort(host).toLowerCase().replace(/\.$/, '');
  if (filter === h) return true;
  if (filter.startsWith('.')) return h.endsWith(filter.slice(1));
  return false;
}

/** The node has a `filter` (host, protocol or path). */
function filtered(n: ForwardNode): boolean {
  return n.filterHost !== undefined || n.filterProtocol !== undefined || n.filterPath !== undefined;
}

export class Forwarder {
  readonly nodes: ForwardNode[];
  readonly #rr: RoundRobin;
  /** Some node has a matcher rule. */
  readonly #hasRules: boolean;

  constructor(nodes: ForwardNodeConfig[] = [], selector?: SelectorConfig) {
    this.nodes = nodes.map((n) => {
      const md = new Metadata(n.metadata);
      return {
        name: n.name,
        addr: n.addr,
        network: n.network,
        filterHost: normFilter(n.filter?.host ?? n.host),
        filterProtocol: (n.filter?.protocol ?? n.protocol)?.trim().toLowerCase() || undefined,
        filterPath: n.filter?.path ?? n.path ?? undefined,
        backup: md.getBool('backup') ?? false,
        metadata: md,
        matcher: n.matcher?.rule
          ? { rule: parseRule(n.matcher.rule), priority: n.matcher.priority ?? n.matcher.rule.length }
          : undefined,
        http: compileNodeHttp(n.http),
        tls: n.tls,
        fails: 0,
        failedAt: 0,
      };
    });
    this.#hasRules = this.nodes.some((n) => n.matcher !== undefined);
    this.#rr = new RoundRobin(
      selector?.maxFails && selector.maxFails > 0 ? selector.maxFails : DEFAULTS.selectorMaxFails,
      (selector?.failTimeout ? parseGoDurationMs(selector.failTimeout) : undefined) ?? DEFAULTS.selectorFailTimeoutMs,
    );
  }

  get size(): number {
    return this.nodes.length;
  }

  /** Some node is chosen by what sniffing finds (a `filter` or a `matcher` rule). */
  get routesByHost(): boolean {
    return this.nodes.some((n) => filtered(n) || n.matcher !== undefined);
  }

  #pick(list: ForwardNode[]): ForwardNode | undefined {
    return this.#rr.pick(list);
  }

  /**
   * Picks a node for `host` (the stream header's dst or a sniffed Host/SNI), or undefined.
   * Nodes with a `matcher` rule come first: of those whose rule matches `input` (the host
   * included), the ones with the highest priority; then `filter.host` as before, with the nodes
   * that have neither a rule nor a filter as the fallback.
   */
  select(host?: string, input?: MatchInput): ForwardNode | undefined {
    const h = host ? stripPort(host) : '';
    const m: MatchInput | undefined = this.#hasRules ? { ...input, host: input?.host ?? host } : undefined;
    if (m) {
      let best: ForwardNode[] = [];
      let top = -Infinity;
      for (const n of this.nodes) {
        if (!n.matcher || n.backup || n.matcher.priority < top || !n.matcher.rule(m)) continue;
        if (n.matcher.priority > top) {
          top = n.matcher.priority;
          best = [];
        }
        best.push(n);
      }
      const picked = best.length ? this.#pick(best) : undefined;
      if (picked) return picked;
    }
    if (!h && input?.proto === undefined) {
      // Nothing to route by (a stream without a host, traffic not sniffed): any node.
      return (
        this.#pick(this.nodes.filter((n) => !n.backup && !n.matcher)) ?? this.#pick(this.nodes.filter((n) => n.backup && !n.matcher))
      );
    }
    const path = input ? pathOf(input) : undefined;
    const fits = (n: ForwardNode): boolean =>
      (n.filterHost === undefined || (h !== '' && hostMatches(n.filterHost, h))) &&
      (n.filterProtocol === undefined || input?.proto === n.filterProtocol) &&
      (n.filterPath === undefined || (path !== undefined && path.startsWith(n.filterPath)));
    const matched = this.nodes.filter((n) => filtered(n) && !n.matcher && !n.backup && fits(n));
    if (matched.length) return this.#pick(matched);
    const unfiltered = this.nodes.filter((n) => !filtered(n) && !n.matcher && !n.backup);
    if (unfiltered.length) return this.#pick(unfiltered);
    const backups = this.nodes.filter(
      (n) => n.backup && (n.matcher ? n.matcher.rule(m!) : !filtered(n) || fits(n)),
    );
    return this.#pick(backups);
  }

  markFailed(n: ForwardNode): void {
    this.#rr.failed(n);
  }

  markOk(n: ForwardNode): void {
    this.#rr.ok(n);
  }
}
