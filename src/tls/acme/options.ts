/** From the tunnel handler's parsed `entrypoint.acme*` options to the ACME manager's. */
import type { Logger } from '../../observe/logger';
import type { ParsedOptions } from '../../core/options/options';
import { parseChallengeList, type ENTRYPOINT_ACME_OPTIONS } from '../../core/options/acme';
import type { AcmeManagerOptions } from './manager';

export type AcmeOptionValues = ParsedOptions<typeof ENTRYPOINT_ACME_OPTIONS> & { publicStore?: string | undefined };

/**
 * The manager's options when `entrypoint.acme` is set, else undefined. Redis is
 * `entrypoint.acmeStore`, else `tunnel.publicStore` (servers sharing public names share
 * certificates too).
 */
export function acmeManagerOptions(
  o: AcmeOptionValues,
  ctx: { eligible: (name: string) => boolean; logger?: Logger },
): AcmeManagerOptions | undefined {
  if (!o.acme) return undefined;
  return {
    directoryUrl: o.acme,
    email: o.acmeEmail || undefined,
    caFile: o.acmeCA || undefined,
    storageDir: o.acmeStorage || undefined,
    redis: o.acmeStore || o.publicStore || undefined,
    ordersPerMinute: o.acmeRate,
    challenges: parseChallengeList(o.acmeChallenges),
    renewBeforeMs: o.acmeRenewBefore > 0 ? o.acmeRenewBefore : undefined,
    eligible: ctx.eligible,
    logger: ctx.logger,
  };
}
