/**
 * burrow's command line, parsed the way gost's (Go `flag` package) is: flags may start with
 * "-" or "--", values follow as the next argument or after "=", bool flags take no value
 * (or "=true"/"=false"), -L/-F/-C repeat and keep their order, a later -O/-api/-metrics/-R
 * replaces an earlier one. Pure; throws ConfigError naming the flag.
 */
import { parseGoBool } from '../core/bool';
import { ConfigError } from '../core/errors';
import { parseGoDurationMs } from '../core/metadata';
import { CONNECTOR_TYPES, DIALER_TYPES, HANDLER_TYPES, LISTENER_TYPES } from '../core/parts';

export interface CliArgs {
  /** -L values in order. */
  listen: string[];
  /** -F values in order (one hop each). */
  forward: string[];
  /** -C values in order. */
  configs: string[];
  /** -D → debug, -DD → trace. */
  logLevel?: 'debug' | 'trace';
  /** -V */
  version: boolean;
  /** -O */
  output?: 'yaml' | 'json';
  /** -h, -help, --help */
  help: boolean;
  /** -api */
  api?: string;
  /** -metrics */
  metrics?: string;
  /** -R: Go duration text, validated. */
  reload?: string;
}

type FlagKind = 'list' | 'string' | 'bool';

const FLAGS: Record<string, FlagKind> = {
  L: 'list',
  F: 'list',
  C: 'list',
  O: 'string',
  api: 'string',
  metrics: 'string',
  R: 'string',
  D: 'bool',
  DD: 'bool',
  V: 'bool',
  h: 'bool',
  help: 'bool',
};

const SOURCE = 'command line';

/** Name of the flag in `arg` ("-L=x" → "L"), or undefined when `arg` is not a flag. */
function flagName(arg: string): string | undefined {
  if (arg.length < 2 || arg[0] !== '-') return undefined;
  if (arg === '--') return undefined;
  const body = arg.startsWith('--') ? arg.slice(2) : arg.slice(1);
  const eq = body.indexOf('=');
  return eq >= 0 ? body.slice(0, eq) : body;
}

/** Parses argv (without node and script). Throws ConfigError. */
export function parseArgs(argv: string[]): CliArgs {
  const out: CliArgs = { listen: [], forward: [], configs: [], version: false, help: false };
  let debug = false;
  let trace = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      throw new ConfigError(
        `"--" (running several instances) is not supported by burrow; start one burrow per instance`,
        { source: SOURCE },
      );
    }
    if (arg.length < 2 || arg[0] !== '-') {
      throw new ConfigError(
        `unexpected argument ${JSON.stringify(arg)} (every value needs a flag such as -L or -F; quote URLs that contain "&" or spaces)`,
        { source: SOURCE },
      );
    }
    let body = arg.startsWith('--') ? arg.slice(2) : arg.slice(1);
    if (body === '' || body.startsWith('-') || body.startsWith('=')) {
      throw new ConfigError(`bad flag syntax: ${arg}`, { source: SOURCE });
    }
    let value: string | undefined;
    const eq = body.indexOf('=');
    if (eq >= 0) {
      value = body.slice(eq + 1);
      body = body.slice(0, eq);
    }
    const kind = FLAGS[body];
    const flag = `-${body}`;
    if (!kind) {
      throw new ConfigError(`flag provided but not defined: ${flag} (see burrow --help)`, { source: SOURCE });
    }

    if (kind === 'bool') {
      let on = true;
      if (value !== undefined) {
        const parsed = parseGoBool(value);
        if (parsed === undefined) {
          throw new ConfigError(`invalid boolean value ${JSON.stringify(value)} for ${flag} (expected true or false)`, { source: SOURCE });
        }
        on = parsed;
      }
      if (body === 'D') debug = on;
      else if (body === 'DD') trace = on;
      else if (body === 'V') out.version = on;
      else out.help = on;
      continue;
    }

    if (value === undefined) {
      const next = argv[i + 1];
      const nextFlag = next === undefined ? undefined : flagName(next);
      if (next === undefined || (nextFlag !== undefined && FLAGS[nextFlag] !== undefined)) {
        throw new ConfigError(`flag needs an argument: ${flag}`, { source: SOURCE });
      }
      value = next;
      i++;
    }
    setValue(out, body, flag, value);
  }
  if (trace) out.logLevel = 'trace';
  else if (debug) out.logLevel = 'debug';
  return out;
}

function setValue(out: CliArgs, name: string, flag: string, value: string): void {
  const source = SOURCE;
  switch (name) {
    case 'L':
    case 'F':
    case 'C':
      if (value.trim() === '') throw new ConfigError(`empty value for ${flag}`, { source });
      (name === 'L' ? out.listen : name === 'F' ? out.forward : out.configs).push(value);
      return;
    case 'O':
      if (value !== 'yaml' && value !== 'json') {
        throw new ConfigError(`invalid value ${JSON.stringify(value)} for -O (expected yaml or json)`, { source });
      }
      out.output = value;
      return;
    case 'R':
      if (parseGoDurationMs(value) === undefined || (parseGoDurationMs(value) ?? 0) < 0) {
        throw new ConfigError(`invalid value ${JSON.stringify(value)} for -R (expected a duration such as 30s or 5m)`, { source });
      }
      out.reload = value;
      return;
    case 'api':
      out.api = value;
      return;
    case 'metrics':
      out.metrics = value;
      return;
  }
}

/** Usage text for -h / --help. */
export const HELP_TEXT = `burrow — a reverse proxy tunnel, command-line and config compatible with GOST v3

Usage:
  burrow [flags]

Flags:
  -L <url>        a service to run (repeatable)
                    [handler[+listener]://][user:pass@][host]:port[/target1,target2,…][?key=value&…]
  -F <url>        a node of the chain the services go through (repeatable; one hop per -F, in order)
                    [connector[+dialer]://][user:pass@]host:port[,host2:port2,…][?key=value&…]
  -C <source>     a config file (.yaml, .yml or .json), "-" for stdin, an inline JSON object
                  '{"services": […]}' or an http(s):// URL (repeatable; merged in order, then -L/-F)
  -D              debug logging
  -DD             trace logging
  -O yaml|json    print the resulting configuration and exit
  -R <duration>   reload the configuration periodically (e.g. 30s, 5m); SIGHUP reloads too
  -api <addr>     serve the web API: [user:pass@]host:port[?pathPrefix=/api&accesslog=true]
                  (not on loopback: credentials, or ?allowUnauthenticated=true)
  -metrics <addr> serve Prometheus metrics: [user:pass@]host:port[?path=/metrics]
  -V              print the version and exit
  -h, --help      print this help and exit

  Flags start with "-" or "--"; a value may follow as the next argument or after "=" (-L=…).

URLs:
  handler:   ${HANDLER_TYPES.join(', ')}
  listener:  ${LISTENER_TYPES.join(', ')}   (default tcp; tunnel+ws://…)
  connector: ${CONNECTOR_TYPES.join(', ')}
  dialer:    ${DIALER_TYPES.join(', ')}   (default tcp; tunnel+wss://…)
  The options of each part (query keys, YAML metadata) are listed in docs/options.md.

  A path lists forward targets (host:port; port optional when the tunnel routes by host name).
  With targets, tcp://, udp://, rtcp:// and rudp:// forward to them.
  ":8000-8002" runs one service per port. Query parameters become metadata of the
  handler, listener and service (-L) or of the hop, node, connector and dialer (-F);
  prefix a key with "handler.", "listener.", "service.", "hop.", "node.", "connector." or
  "dialer." to set it in that place only. Quote URLs in the shell: "&" and "$" are special.

Server (tunnel with an HTTP/TLS entry point on :80 and two routing rules):
  burrow -L "tunnel://:8443?entrypoint=:80&tunnel=.example.com:4d21094e-b74c-4916-86c1-d9fa36ea677b,example.org:ac74d9dd-3125-442a-a7c1-f9e49e05faca"
  burrow -L "tunnel+ws://:8443?tunnel.direct=true"

Client (publish 192.168.1.1:80 through the tunnel):
  burrow -L rtcp://:0/192.168.1.1:80 -F "tunnel://server.example.com:8443?tunnel.id=4d21094e-b74c-4916-86c1-d9fa36ea677b&tunnel.weight=1"
  burrow -L rtcp://:0/:5201 -L rudp://:0/:5201 -F "tunnel+wss://server.example.com:443?tunnel.id=22f43305-42f7-4232-bbbc-aa6c042e3bc3"

Visitor (a private entry point on this machine):
  burrow -L tcp://:2222/ssh.srv-2.local -F "tunnel://server.example.com:8443?tunnel.id=aede1f6a-762b-45da-b937-b6632356555a"
  burrow -L udp://:1053/dns.srv-2.local -F "tunnel://server.example.com:8443?tunnel.id=aede1f6a-762b-45da-b937-b6632356555a"
  burrow -L "tcp://:8000?sniffing=true" -F "tunnel://server.example.com:8443?tunnel.id=ac74d9dd-3125-442a-a7c1-f9e49e05faca"

Config files:
  burrow -C burrow.yaml
  burrow -L rtcp://:0/192.168.1.1:80 -F tunnel://:8443 -O yaml    # print the YAML equivalent
`;
