/**
 * Keys read outside the parts: a service's own metadata and a chain hop's/node's. burrow
 * implements none of gost's; the command line copies every -L key into the service's metadata
 * and every -F key into the hop's and node's, so these scopes only name the keys that, given
 * there, are gost's rather than misspellings.
 */
import { gostOnly } from './options';
import { PROXY_PROTOCOL_ACCEPT } from './transport';

/** Keys the command line already reports as not supported (their own warning names them). */
const REPORTED_BY_CLI = { warn: false } as const;

export const SERVICE_OPTIONS = {
  interface: gostOnly('interface', 'outgoing network interface'),
  soMark: gostOnly('so_mark', 'SO_MARK of outgoing connections'),
  netns: gostOnly('netns', 'network namespace'),
  netnsOut: gostOnly('netns.out', 'network namespace of outgoing connections'),
  /** Read by the tcp-based listeners; a config error on udp, rtcp and rudp (config/verify.ts). */
  proxyProtocol: PROXY_PROTOCOL_ACCEPT.proxyProtocol,
  retries: gostOnly('retries', 'attempts per connection (the command line moves it into the handler)', REPORTED_BY_CLI),
  admission: gostOnly('admission', 'admission control', REPORTED_BY_CLI),
  bypass: gostOnly('bypass', 'bypass lists', REPORTED_BY_CLI),
  resolver: gostOnly('resolver', 'custom resolver', REPORTED_BY_CLI),
  hosts: gostOnly('hosts', 'host mappings', REPORTED_BY_CLI),
  limiterIn: gostOnly('limiter.in', 'traffic limiter', REPORTED_BY_CLI),
  limiterOut: gostOnly('limiter.out', 'traffic limiter', REPORTED_BY_CLI),
  limiterConnIn: gostOnly('limiter.conn.in', 'traffic limiter', REPORTED_BY_CLI),
  limiterConnOut: gostOnly('limiter.conn.out', 'traffic limiter', REPORTED_BY_CLI),
  climiter: gostOnly('climiter', 'connection limiter', REPORTED_BY_CLI),
  rlimiter: gostOnly('rlimiter', 'rate limiter', REPORTED_BY_CLI),
};

export const HOP_OPTIONS = {
  interface: gostOnly('interface', 'outgoing network interface'),
  soMark: gostOnly('so_mark', 'SO_MARK of outgoing connections'),
  proxyProtocol: gostOnly('proxyProtocol', 'send PROXY protocol headers to the node'),
  bypass: gostOnly('bypass', 'bypass lists', REPORTED_BY_CLI),
  resolver: gostOnly('resolver', 'custom resolver', REPORTED_BY_CLI),
  hosts: gostOnly('hosts', 'host mappings', REPORTED_BY_CLI),
};
