/**
 * Chains: hops of nodes, each node a dialer + connector (`-F tunnel+wss://host:443?...`).
 * burrow's connectors end the chain (the tunnel connector speaks CONNECT/BIND to the server;
 * the forward connector hands over the dialed connection to a node that forwards by itself), so
 * the last hop is the one dialed; a hop with several nodes is selected round-robin, skipping
 * nodes whose last dial failed within `failTimeout`.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Conn, Dialer } from '../core/transport';
import type { BindRequest, BindResult, ConnectRequest, Connector } from '../core/handler';
import { BurrowError } from '../core/errors';
import { destroy } from '../io/pipe';
import { Metadata } from '../core/metadata';
import { RoundRobin } from '../forward/round-robin';

export interface ChainNode {
  name: string;
  addr: string;
  dialerType: string;
  connectorType: string;
  dialer: Dialer;
  connector: Connector;
  metadata: Metadata;
  fails: number;
  failedAt: number;
}

export class Hop {
  readonly rr: RoundRobin;
  constructor(
    readonly name: string,
    readonly nodes: ChainNode[],
    failTimeoutMs: number,
    maxFails: number,
  ) {
    this.rr = new RoundRobin(maxFails, failTimeoutMs);
  }

  select(): ChainNode {
    const n = this.rr.pick(this.nodes);
    if (!n) throw new BurrowError('BURROW_ERR_DIAL', `hop ${this.name}: no nodes`);
    return n;
  }
}

export class Chain {
  constructor(
    readonly name: string,
    readonly hops: Hop[],
    readonly logger: Logger,
  ) {}

  #node(): { hop: Hop; node: ChainNode } {
    const hop = this.hops[this.hops.length - 1];
    if (!hop) throw new BurrowError('BURROW_ERR_DIAL', `chain ${this.name}: no hops`);
    return { hop, node: hop.select() };
  }

  nodeLogger(hop: Hop, node: ChainNode): Logger {
    return this.logger.child({
      kind: 'connector',
      hop: hop.name,
      node: node.name,
      connector: node.connectorType,
      dialer: node.dialerType,
    });
  }

  /** Dials the node (marking it failed or healthy) and runs `exchange` on the new conn. */
  async #through<T>(hop: Hop, node: ChainNode, signal: AbortSignal | undefined, exchange: (conn: Conn) => Promise<T>): Promise<T> {
    let conn: Conn;
    try {
      conn = await node.dialer.dial(node.addr, signal);
    } catch (err) {
      hop.rr.failed(node);
      throw err;
    }
    hop.rr.ok(node);
    try {
      return await exchange(conn);
    } catch (err) {
      destroy(conn.stream);
      throw err;
    }
  }

  /** Dials through the chain and runs the connect exchange; returns the payload stream. */
  connect(req: ConnectRequest, signal?: AbortSignal): Promise<Duplex> {
    const { hop, node } = this.#node();
    return this.#through(hop, node, signal, (conn) => node.connector.connect(conn, req, signal));
  }

  /** Dials through the chain and registers a reverse endpoint (BIND). */
  async bind(req: BindRequest, signal?: AbortSignal): Promise<BindResult & { node: ChainNode; hop: Hop }> {
    const { hop, node } = this.#node();
    const bind = node.connector.bind?.bind(node.connector);
    if (!bind) throw new BurrowError('BURROW_ERR_CONFIG', `connector ${node.connectorType} cannot bind`);
    const r = await this.#through(hop, node, signal, (conn) => bind(conn, req, signal));
    return { ...r, node, hop };
  }

  /**
   * One chain per node of the last hop (the hops before it shared), each dialing that node
   * alone: a client that keeps a session to every server of its node list (`tunnel.all`).
   */
  perNode(): Chain[] {
    const last = this.hops[this.hops.length - 1];
    if (!last || last.nodes.length < 2) return [this];
    const before = this.hops.slice(0, -1);
    return last.nodes.map(
      (n) => new Chain(this.name, [...before, new Hop(last.name, [n], last.rr.failTimeoutMs, last.rr.maxFails)], this.logger),
    );
  }

  async close(): Promise<void> {
    for (const hop of this.hops) for (const n of hop.nodes) await n.dialer.close?.();
  }
}
