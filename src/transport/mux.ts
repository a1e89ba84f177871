/**
 * Multiplexed transports `mtls`, `mws`, `mwss` (protocol.md §8.4): the base transport (tls,
 * ws, wss) carries an outer smux session — version 1 and a 64 KiB stream buffer by default, as
 * gost's generic mux — and each gost "connection" is one outer stream. The tunnel then runs
 * smux inside smux.
 *
 * Listener: every accepted base connection becomes a server-role session; each stream the
 * peer opens is handed out as a Conn. Dialer: one client-role session per address, shared by
 * every dial() and re-created when it dies; each dial() opens a stream.
 */
import type { Conn, Dialer, DialerFactory, DialerOptions, ListenerFactory, ListenerOptions, StreamListener } from '../core/transport';
import type { Metadata } from '../core/metadata';
import { Session } from '../protocol/smux/session';
import { smuxConfigFromMetadata, type SmuxConfig } from '../protocol/smux/config';
import { TRANSPORT_MUX_OPTIONS } from '../core/options/mux';

/** gost's generic mux defaults (version 1, 64 KiB stream buffer) unless set explicitly. */
export function outerMuxConfig(md: Metadata): SmuxConfig {
  return smuxConfigFromMetadata(md, TRANSPORT_MUX_OPTIONS);
}

export function muxListener(base: ListenerFactory): ListenerFactory {
  return (opts: ListenerOptions): StreamListener => {
    const inner = base(opts);
    const config = outerMuxConfig(opts.metadata);
    const sessions = new Set<Session>();
    return {
      async listen(onConn) {
        await inner.listen((conn) => {
          let session: Session;
          try {
            session = new Session(conn.stream, { client: false, config });
          } catch (err) {
            opts.logger.warn(`mux: ${(err as Error).message}`);
            conn.stream.destroy();
            return;
          }
          sessions.add(session);
          session.once('close', () => sessions.delete(session));
          session.on('stream', (stream) => {
            onConn({ stream, local: conn.local, remote: conn.remote });
          });
        });
      },
      address: () => inner.address(),
      async close() {
        await inner.close();
        for (const s of sessions) s.close();
        sessions.clear();
      },
    };
  };
}

export function muxDialer(base: DialerFactory): DialerFactory {
  return (opts: DialerOptions): Dialer => {
    const inner = base(opts);
    const config = outerMuxConfig(opts.metadata);
    const sessions = new Map<string, { session?: Session; pending?: Promise<{ session: Session; conn: Conn }>; conn?: Conn }>();

    async function sessionFor(addr: string, signal?: AbortSignal): Promise<{ session: Session; conn: Conn }> {
      let entry = sessions.get(addr);
      if (entry?.session && !entry.session.isClosed && entry.conn) return { session: entry.session, conn: entry.conn };
      if (entry?.pending) return entry.pending;
      entry = {};
      sessions.set(addr, entry);
      const e = entry;
      e.pending = (async () => {
        const conn = await inner.dial(addr, signal);
        const session = new Session(conn.stream, { client: true, config });
        e.session = session;
        e.conn = conn;
        session.once('close', () => {
          if (sessions.get(addr) === e) sessions.delete(addr);
        });
        return { session, conn };
      })();
      try {
        return await e.pending;
      } catch (err) {
        if (sessions.get(addr) === e) sessions.delete(addr);
        throw err;
      } finally {
        e.pending = undefined;
      }
    }

    return {
      async dial(addr, signal) {
        const { session, conn } = await sessionFor(addr, signal);
        const stream = session.openStream();
        return { stream, local: conn.local, remote: conn.remote };
      },
      async close() {
        for (const e of sessions.values()) e.session?.close();
        sessions.clear();
        await inner.close?.();
      },
    };
  };
}
