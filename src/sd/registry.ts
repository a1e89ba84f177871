/**
 * One tunnel server's side of service discovery: the connectors bound here are registered at
 * BIND, renewed every `renewMs` while they live, deregistered when they go, and all of them at
 * shutdown; `lookup` answers which other nodes hold a tunnel.
 *
 * Nothing here ever blocks local routing: registrations run in the background, one at a time
 * per connector. When the store fails, one warning says so for the whole outage (debug lines
 * after it); every registration counts as lost then and is sent again (as a registration, not a
 * renewal) at each renewal round until the store answers, with one info line when it does.
 *
 * The registered address: `advertise` when set; else the entry point's bound address, whose
 * host — when it listens on all interfaces — is the local address of the store connection (the
 * address this server reaches the fleet's Redis from, as gost-plugins fills it in from its gRPC
 * peer); for the HTTP plugin such a host stays empty (":port"), as gost sends it, for the
 * plugin to fill in.
 */
import { isUnspecifiedHost, joinHostPort, splitHostPort } from '../core/addr';
import type { ServiceDiscovery, SdService } from './sd';

interface Log {
  warn(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
}

/** How often registrations are renewed without `tunnel.ttl` (gost's default). */
export const SD_DEFAULT_RENEW_MS = 15_000;

export interface SdRegistryOptions {
  sd: ServiceDiscovery;
  /** This server's node ID. */
  node: string;
  /** host:port to register as given (`sd.advertise`). */
  advertise?: string;
  /** The entry point's bound address (host:port), read at each registration; '' when none. */
  entryPoint: () => string;
  renewMs: number;
  logger: Log;
}

interface Registration {
  svc: Omit<SdService, 'address'>;
  /** The store has it (as far as this server knows). */
  registered: boolean;
  /** The connector is gone: deregister once the running operation ends. */
  gone: boolean;
  /** The operation running for it, if any. */
  running: Promise<void> | undefined;
}

export class SdRegistry {
  readonly node: string;
  readonly #opts: SdRegistryOptions;
  readonly #regs = new Map<string, Registration>();
  readonly #timer: NodeJS.Timeout;
  /** Deregistrations under way (close waits for them). */
  readonly #pending = new Set<Promise<void>>();
  #down = false;
  #closed = false;
  #localHost: string | undefined;

  constructor(opts: SdRegistryOptions) {
    this.#opts = opts;
    this.node = opts.node;
    this.#timer = setInterval(() => this.#round(), Math.max(50, opts.renewMs));
    this.#timer.unref();
  }

  /** This node's registrations, for /status: how many, how many the store has, store reachable. */
  snapshot(): { node: string; connectors: number; registered: number; storeDown: boolean } {
    let registered = 0;
    for (const r of this.#regs.values()) if (r.registered) registered++;
    return { node: this.node, connectors: this.#regs.size, registered, storeDown: this.#down };
  }

  /** The number of connectors registered here (the store may not have them yet). */
  get size(): number {
    return this.#regs.size;
  }

  /** A connector was bound here: register it (in the background). */
  register(connectorId: string, tunnelId: string, network: string): void {
    if (this.#closed || this.#regs.has(connectorId)) return;
    const reg: Registration = { svc: { id: connectorId, name: tunnelId, node: this.node, network }, registered: false, gone: false, running: undefined };
    this.#regs.set(connectorId, reg);
    this.#send(reg);
  }

  /** The connector went: deregister it (in the background, after any operation under way). */
  deregister(connectorId: string): void {
    const reg = this.#regs.get(connectorId);
    if (!reg || this.#closed) return;
    this.#regs.delete(connectorId);
    reg.gone = true;
    this.#track(this.#deregister(reg));
  }

  /**
   * The services of a tunnel on other nodes that are alive (the store drops expired ones), for
   * `network` when given. A store that fails answers none (with the outage's one warning).
   */
  async lookup(tunnelId: string, network?: string): Promise<SdService[]> {
    let all: SdService[];
    try {
      all = await this.#opts.sd.get(tunnelId);
      this.#up();
    } catch (err) {
      this.#failed(err);
      return [];
    }
    return all.filter((s) => s.node !== '' && s.node !== this.node && s.address !== '' && (network === undefined || (s.network || 'tcp') === network));
  }

  /** Deregisters every connector (waiting at most for the store's own timeouts), then stops. */
  async close(): Promise<void> {
    if (this.#closed) return;
    clearInterval(this.#timer);
    const all = [...this.#regs.values()];
    this.#regs.clear();
    for (const reg of all) {
      reg.gone = true;
      this.#track(this.#deregister(reg));
    }
    this.#closed = true;
    await Promise.allSettled([...this.#pending]);
    this.#opts.sd.close();
  }

  #track(p: Promise<void>): void {
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  async #deregister(reg: Registration): Promise<void> {
    await reg.running;
    if (!reg.registered && this.#down) return; // never reached the store, or lost with it
    try {
      await this.#opts.sd.deregister({ ...reg.svc, address: await this.#address() });
      this.#up();
    } catch (err) {
      // An entry left behind expires on its own (Redis) or is the plugin's to drop.
      this.#failed(err);
    }
  }

  /** Registers (or renews) one connector unless an operation for it is under way. */
  #send(reg: Registration): void {
    if (reg.running || reg.gone) return;
    const op = async (): Promise<void> => {
      try {
        const svc = { ...reg.svc, address: await this.#address() };
        if (reg.registered) await this.#opts.sd.renew(svc);
        else await this.#opts.sd.register(svc);
        reg.registered = true;
        this.#up();
      } catch (err) {
        this.#failed(err);
      }
    };
    reg.running = op().finally(() => {
      reg.running = undefined;
    });
  }

  #round(): void {
    for (const reg of this.#regs.values()) this.#send(reg);
  }

  async #address(): Promise<string> {
    if (this.#opts.advertise) return this.#opts.advertise;
    const ep = this.#opts.entryPoint();
    if (!ep) throw new Error('no entry point address to register (set sd.advertise)');
    const { host, port } = splitHostPort(ep);
    if (!isUnspecifiedHost(host)) return ep;
    const sd = this.#opts.sd;
    if (!sd.localHost) return joinHostPort('', port);
    this.#localHost ??= await sd.localHost();
    if (!this.#localHost) throw new Error('cannot tell the address other servers reach this one at (set sd.advertise)');
    return joinHostPort(this.#localHost, port);
  }

  #up(): void {
    if (!this.#down) return;
    this.#down = false;
    this.#opts.logger.info(`${this.#opts.sd.label}: answers again; registrations are sent again`);
  }

  #failed(err: unknown): void {
    const msg = `${this.#opts.sd.label}: ${(err as Error)?.message ?? String(err)}`;
    // Whatever the store had may be gone with it: send every registration again when it is back.
    for (const reg of this.#regs.values()) reg.registered = false;
    if (this.#down) {
      this.#opts.logger.debug(`${msg} (still failing)`);
      return;
    }
    this.#down = true;
    this.#opts.logger.warn(`${msg}; local routing goes on, registrations are sent again when it answers`);
  }
}
