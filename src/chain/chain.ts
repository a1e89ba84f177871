/**
 * Chains: hops of nodes, each node a dialer + connector (`-F tunnel+wss://host:443?...`).
 * burrow's connectors end the chain (the tunnel connector speaks CONNECT/BIND to the server;
 * the forward connector hands over the dialed connection to a node that forwards by itself), so
 * the last hop is the one dialed; a hop with several nodes is selected round-robin, skipping
 * nodes whose last dial failed within `failTimeout`.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Dialer } from '../core/transport';
import type { BindRequest, BindResult, ConnectRequest, Connector } from '../core/handler';
import { BurrowError } from '../core/errors';
import { destroy } from '../io/pipe';
import { Metadata } from '../core/metadata';

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
  #rr = 0;
  constructor(
    readonly name: string,
    readonly nodes: ChainNode[],
    readonly failTimeoutMs: number,
    readonly maxFails: number,
  ) {}

  select(): ChainNode {
    if (this.nodes.length === 0) throw new BurrowError('BURROW_ERR_DIAL', `hop ${this.name}: no nodes`);
    const now = Date.now();
    const alive = this.nodes.filter((n) => n.fails < this.maxFails || now - n.failedAt >= this.failTimeoutMs);
    const from = alive.length ? alive : this.nodes;
    const n = from[this.#rr % from.length]!;
    this.#rr = (this.#rr + 1) >>> 0;
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

  /** Dials through the chain and runs the connect exchange; returns the payload stream. */
  async connect(req: ConnectRequest, signal?: AbortSignal): Promise<Duplex> {
    const { node } = this.#node();
    let conn;
    try {
      conn = await node.dialer.dial(node.addr, signal);
    } catch (err) {
      node.fails++;
      node.failedAt = Date.now();
      throw err;
    }
    node.fails = 0;
    try {
      return await node.connector.connect(conn, req, signal);
    } catch (err) {
      destroy(conn.stream);
      throw err;
    }
  }

  /** Dials through the chain and registers a reverse endpoint (BIND). */
  async bind(req: BindRequest, signal?: AbortSignal): Promise<BindResult & { node: ChainNode; hop: Hop }> {
    const { hop, node } = this.#node();
    if (!node.connector.bind) {
      throw new BurrowError('BURROW_ERR_CONFIG', `connector ${node.connectorType} cannot bind`);
    }
    let conn;
    try {
      conn = await node.dialer.dial(node.addr, signal);
    } catch (err) {
      node.fails++;
      node.failedAt = Date.now();
      throw err;
    }
    node.fails = 0;
    try {
      const r = await node.connector.bind(conn, req, signal);
      return { ...r, node, hop };
    } catch (err) {
      destroy(conn.stream);
      throw err;
    }
  }

  async close(): Promise<void> {
    for (const hop of this.hops) for (const n of hop.nodes) await n.dialer.close?.();
  }
}
