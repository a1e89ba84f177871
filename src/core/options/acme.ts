/**
 * The entry point's automatic certificates (ACME, RFC 8555): `entrypoint.acme*` keys of the
 * tunnel handler ([docs/acme.md](../../../docs/acme.md)).
 */
import { duration, int, str } from './options';

function httpsUrl(s: string): string | undefined {
  try {
    const u = new URL(s);
    return u.protocol === 'https:' || u.protocol === 'http:' ? undefined : 'an http(s):// directory URL';
  } catch {
    return 'a directory URL such as https://acme-v02.api.letsencrypt.org/directory';
  }
}

function redisUrl(s: string): string | undefined {
  return /^rediss?:\/\//.test(s) ? undefined : 'redis://[[user]:password@]host:port[/db] or rediss://…';
}

/** The challenge types an order may answer (RFC 8555 HTTP-01, RFC 8737 TLS-ALPN-01). */
export const ACME_CHALLENGE_TYPES = ['tls-alpn-01', 'http-01'] as const;

/** `entrypoint.acmeChallenges` as a list (empty text: undefined, the default order). */
export function parseChallengeList(s: string | undefined): Array<(typeof ACME_CHALLENGE_TYPES)[number]> | undefined {
  const items = (s ?? '').split(',').map((x) => x.trim().toLowerCase()).filter(Boolean);
  return items.length === 0 ? undefined : (items as Array<(typeof ACME_CHALLENGE_TYPES)[number]>);
}

function challengeList(s: string): string | undefined {
  const items = parseChallengeList(s) ?? [];
  const ok = items.length > 0 && items.every((x) => (ACME_CHALLENGE_TYPES as readonly string[]).includes(x)) && new Set(items).size === items.length;
  return ok ? undefined : 'tls-alpn-01, http-01 or both, comma-separated';
}

export const ENTRYPOINT_ACME_OPTIONS = {
  acme: str('entrypoint.acme', {
    default: undefined,
    burrow: true,
    expect: 'directory URL',
    check: httpsUrl,
    doc:
      'ACME directory URL (e.g. Let\'s Encrypt\'s): certificates are ordered at the first TLS handshake for names of live ' +
      'tunnels only, answered by HTTP-01 or TLS-ALPN-01 on the entry point, renewed before expiry ([docs/acme.md](acme.md))',
  }),
  acmeEmail: str('entrypoint.acmeEmail', { default: undefined, burrow: true, expect: 'e-mail address', doc: 'contact address of the ACME account' }),
  acmeCA: str('entrypoint.acmeCA', {
    default: undefined,
    burrow: true,
    expect: 'PEM file',
    doc: 'a CA certificate to trust for the ACME server itself (a private CA); the system\'s roots otherwise',
  }),
  acmeStorage: str('entrypoint.acmeStorage', {
    default: undefined,
    defaultText: '`$BURROW_HOME/acme`, else `$XDG_DATA_HOME/burrow/acme`, else `~/.local/share/burrow/acme`',
    burrow: true,
    expect: 'directory',
    doc: 'account key and certificates (keys 0600), one subdirectory per CA; loaded at start, so a restart orders nothing',
  }),
  acmeStore: str('entrypoint.acmeStore', {
    default: undefined,
    defaultText: '`tunnel.publicStore`, else files',
    burrow: true,
    expect: 'redis://[[user]:password@]host:port[/db]',
    check: redisUrl,
    doc: 'keep certificates, pending challenges and an issuance lock in Redis: servers sharing it issue each name once and any of them answers a challenge',
  }),
  acmeRate: int('entrypoint.acmeRate', {
    default: 10,
    min: 1,
    max: 10_000,
    burrow: true,
    doc: 'ACME orders (new names and renewals) this server starts per minute at most; beyond it names pass through, with one log line',
  }),
  acmeChallenges: str('entrypoint.acmeChallenges', {
    default: undefined,
    defaultText: '`tls-alpn-01,http-01`',
    burrow: true,
    expect: 'tls-alpn-01, http-01 or both (comma-separated, preferred first)',
    check: challengeList,
    doc: 'the challenge types to answer, in order of preference: `http-01` alone when only port 80 reaches the entry point as the CA sees it, `tls-alpn-01` alone when only 443 does',
  }),
  acmeRenewBefore: duration('entrypoint.acmeRenewBefore', {
    default: 0,
    defaultText: 'a third of the lifetime, at most 30 days',
    zeroIsDefault: true,
    burrow: true,
    doc: 'renew a certificate this long before it expires',
  }),
};
