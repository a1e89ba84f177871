/**
 * Automatic certificates at the entry point (`entrypoint.acme`, docs/acme.md): one ACME manager
 * per tunnel handler, asked after the certificate files, for names of live tunnels only. The
 * manager's module (and acme-client under it) is loaded only when `entrypoint.acme` is set.
 */
import type { Logger } from 'pino';
import { ConfigError } from '../../../core/errors';
import type { TunnelHandlerOptionValues } from '../../../core/options/tunnel';
import type { Ingress } from '../../../ingress/ingress';
import type * as AcmeManagerModule from '../../../tls/acme/manager';
import { acmeManagerOptions } from '../../../tls/acme/options';
import type { TunnelServer } from '../server';
import type { EntryTlsHooks } from './index';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const managerModule = (): typeof AcmeManagerModule => require('../../../tls/acme/manager') as typeof AcmeManagerModule;

/**
 * Whether `name` is a live tunnel's: an exact ingress rule (not a wildcard, not private) whose
 * tunnel has a connector here, or a public name whose tunnel has one. `ingresses()` are the
 * ingresses the entry points route by (asked at each call: entry points are made later).
 */
export function liveTunnelName(
  server: { readonly pool: Pick<TunnelServer['pool'], 'hasTunnel'>; readonly publicNames: Pick<NonNullable<TunnelServer['publicNames']>, 'lookup'> | undefined },
  ingresses: () => Iterable<Ingress | undefined>,
): (name: string) => boolean {
  return (name) => {
    const host = name.toLowerCase();
    for (const ingress of ingresses()) {
      const rule = ingress?.exact(host);
      if (rule === undefined) continue;
      // A rule claims the host: it decides (a rule to no tunnel or a private one: not eligible).
      return rule !== null && !rule.private && server.pool.hasTunnel(rule.tunnelId);
    }
    const tunnelId = server.publicNames?.lookup(host);
    return tunnelId !== undefined && server.pool.hasTunnel(tunnelId);
  };
}

export interface EntryAcme {
  manager: AcmeManagerModule.AcmeManager;
  /** The hooks for entryTlsOf: the manager as a provider, HTTP-01 and TLS-ALPN-01 answers. */
  hooks: { providers: [AcmeManagerModule.AcmeManager] } & EntryTlsHooks;
}

/** The handler's ACME manager when `entrypoint.acme` is set, else undefined (nothing loaded). */
export function entryAcmeOf(o: TunnelHandlerOptionValues, eligible: (name: string) => boolean, logger: Logger): EntryAcme | undefined {
  const opts = acmeManagerOptions(o, { eligible, logger: logger.child({ kind: 'acme' }) });
  if (opts === undefined) return undefined;
  let manager: AcmeManagerModule.AcmeManager;
  try {
    manager = new (managerModule().AcmeManager)(opts);
  } catch (err) {
    // The manager names its key (`entrypoint.acmeCA`); here it is the handler's metadata.
    if (!(err instanceof ConfigError) || err.path === undefined) throw err;
    throw new ConfigError(err.message.slice(err.path.length + 2), { path: `handler.metadata.${err.path}`, cause: err });
  }
  return {
    manager,
    hooks: {
      providers: [manager],
      httpChallenge: (host, path) => manager.httpChallenge(host, path),
      alpnChallengeContext: (name) => manager.alpnChallengeContext(name),
    },
  };
}
