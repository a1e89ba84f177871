/**
 * zod schemas for the config model (spec/config.md §2), declared in gost's field order so that
 * the same shapes drive key canonicalisation (normalize.ts) and `-O` output order (output.ts).
 *
 * Scalars are as lenient as gost's viper decoding where that is harmless ("3" for an int,
 * "true" for a bool, 123456 for a password, a nanosecond number for a duration) and strict
 * where a wrong type is a mistake (part `type`s, addresses, names).
 *
 * Each object schema is registered in `objectInfo` with the gost keys burrow does not
 * implement: those are warned about and dropped rather than reported as unknown.
 */
import { z } from 'zod';
import { parseGoBool } from '../core/bool';
import { formatDurationMs, parseGoDurationMs } from '../core/metadata';

export interface ObjectInfo {
  /** What the object is, for messages ("service", "node", …). */
  kind: string;
  /** gost keys burrow ignores (dropped with a warning), with an optional reason. */
  ignored?: Record<string, string>;
  /** Model keys that burrow keeps but does not act on yet (kept, with a warning). */
  unsupported?: Record<string, string>;
}

export const objectInfo = z.registry<ObjectInfo>();


/** A string; numbers and booleans are formatted (gost's weak decoding). */
const text = z.preprocess((v) => (typeof v === 'number' || typeof v === 'boolean' ? String(v) : v), z.string());
/** A string, strictly (types, names, addresses). */
const str = z.string();
/** An integer; decimal strings are accepted. */
const int = z.preprocess(
  (v) => (typeof v === 'string' && /^\s*[+-]?\d+\s*$/.test(v) ? Number.parseInt(v, 10) : v),
  z.number({ error: 'expected an integer' }).int({ error: 'expected an integer' }),
);
/** A boolean; Go ParseBool strings and numbers are accepted. */
const bool = z.preprocess((v) => {
  if (typeof v === 'string') return parseGoBool(v.trim()) ?? v;
  if (typeof v === 'number') return v !== 0;
  return v;
}, z.boolean());
/** A Go duration string; a bare number is nanoseconds, as Go's time.Duration decodes it. */
const duration = z.preprocess(
  (v) => (typeof v === 'number' && Number.isFinite(v) ? formatDurationMs(v / 1e6) : v),
  z.string().refine((s) => parseGoDurationMs(s) !== undefined, {
    message: 'expected a duration such as "10s", "500ms" or "1m30s"',
  }),
);
/** A list of strings; a comma-separated string is split (viper's string-to-slice hook). */
const strList = z.preprocess(
  (v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v),
  z.array(text),
);
/** Free-form metadata: keys kept as written (lookups are case-insensitive), values as parsed. */
export const metadataSchema = z.record(z.string(), z.unknown());

function info<T extends z.ZodType>(schema: T, meta: ObjectInfo): T {
  objectInfo.add(schema, meta);
  return schema;
}

const NOT_IMPLEMENTED = 'not implemented by burrow';

export const authSchema = info(z.object({ username: text.default(''), password: text.default('') }), { kind: 'auth' });
/** A user of an `authers:` entry; `tunnels` limits the credential to those tunnel IDs. */
const autherUserSchema = info(
  z.object({ username: text.default(''), password: text.default(''), tunnels: strList.optional() }),
  { kind: 'auth' },
);

export const tlsOptionsSchema = info(
  z.object({ minVersion: str.optional(), maxVersion: str.optional(), cipherSuites: strList.optional(), alpn: strList.optional() }),
  { kind: 'TLS options' },
);

export const tlsSchema = info(
  z.object({
    certFile: str.optional(),
    keyFile: str.optional(),
    caFile: str.optional(),
    secure: bool.optional(),
    serverName: str.optional(),
    options: tlsOptionsSchema.optional(),
    validity: duration.optional(),
    commonName: text.optional(),
    organization: text.optional(),
  }),
  { kind: 'TLS', ignored: { rejectUnknownSNI: NOT_IMPLEMENTED, serverNames: NOT_IMPLEMENTED } },
);

export const selectorSchema = info(
  z.object({ strategy: str.optional(), maxFails: int.optional(), failTimeout: duration.optional() }),
  { kind: 'selector' },
);

export const pluginSchema = info(
  z.object({ type: str.optional(), addr: str, tls: tlsSchema.optional(), token: text.optional(), timeout: duration.optional() }),
  { kind: 'plugin' },
);

const fileLoaderSchema = info(z.object({ path: str }), { kind: 'file loader' });
const httpLoaderSchema = info(z.object({ url: str, timeout: duration.optional() }), { kind: 'http loader' });
const redisLoaderSchema = info(
  z.object({
    addr: str,
    db: int.optional(),
    username: text.optional(),
    password: text.optional(),
    key: text.optional(),
    type: str.optional(),
  }),
  { kind: 'redis loader' },
);

export const handlerSchema = info(
  z.object({
    type: str.optional(),
    retries: int.optional(),
    chain: str.optional(),
    ingress: str.optional(),
    auther: str.optional(),
    authers: strList.optional(),
    auth: authSchema.optional(),
    limiter: str.optional(),
    observer: str.optional(),
    metadata: metadataSchema.optional(),
  }),
  {
    kind: 'handler',
    ignored: { chainGroup: NOT_IMPLEMENTED, tls: 'a handler-level TLS certificate is not used by burrow' },
    unsupported: { limiter: 'traffic limiters are not implemented by burrow', observer: 'observers are not implemented by burrow' },
  },
);

export const listenerSchema = info(
  z.object({
    type: str.optional(),
    chain: str.optional(),
    auther: str.optional(),
    authers: strList.optional(),
    auth: authSchema.optional(),
    tls: tlsSchema.optional(),
    metadata: metadataSchema.optional(),
  }),
  { kind: 'listener', ignored: { chainGroup: NOT_IMPLEMENTED } },
);

export const filterSchema = info(z.object({ host: str.optional(), protocol: str.optional(), path: str.optional() }), {
  kind: 'filter',
});

const headerMap = z.record(z.string(), text);

export const httpNodeSchema = info(
  z.object({
    host: str.optional(),
    requestHeader: headerMap.optional(),
    header: headerMap.optional(),
    responseHeader: headerMap.optional(),
    auth: authSchema.optional(),
    rewriteURL: z
      .array(info(z.object({ match: text, replacement: text.default('') }), { kind: 'URL rewrite' }))
      .optional(),
    rewriteBody: z
      .array(info(z.object({ match: text, replacement: text.default(''), type: text.optional() }), { kind: 'body rewrite' }))
      .optional(),
  }),
  { kind: 'node http', ignored: { rewrite: NOT_IMPLEMENTED } },
);

export const forwardNodeSchema = info(
  z.object({
    name: text.default(''),
    addr: str,
    network: str.optional(),
    filter: filterSchema.optional(),
    host: str.optional(),
    protocol: str.optional(),
    path: str.optional(),
    http: httpNodeSchema.optional(),
    matcher: info(z.object({ rule: text, priority: int.optional() }), { kind: 'matcher', ignored: { bodySize: NOT_IMPLEMENTED } }).optional(),
    tls: tlsSchema.optional(),
    metadata: metadataSchema.optional(),
  }),
  {
    kind: 'forward node',
    ignored: {
      bypass: NOT_IMPLEMENTED,
      bypasses: NOT_IMPLEMENTED,
      auth: NOT_IMPLEMENTED,
    },
  },
);

export const forwarderSchema = info(
  z.object({ selector: selectorSchema.optional(), nodes: z.array(forwardNodeSchema).optional(), hop: str.optional() }),
  { kind: 'forwarder', ignored: { name: 'a forwarder name has no effect in burrow' } },
);

const SERVICE_IGNORED = [
  'interface',
  'sockopts',
  'admission',
  'admissions',
  'bypass',
  'bypasses',
  'resolver',
  'hosts',
  'limiter',
  'climiter',
  'rlimiter',
  'logger',
  'loggers',
  'observer',
  'recorders',
  'status',
];

export const serviceSchema = info(
  z.object({
    name: str,
    addr: str.default(''),
    handler: handlerSchema.optional(),
    listener: listenerSchema.optional(),
    forwarder: forwarderSchema.optional(),
    metadata: metadataSchema.optional(),
  }),
  { kind: 'service', ignored: Object.fromEntries(SERVICE_IGNORED.map((k) => [k, NOT_IMPLEMENTED])) },
);

export const connectorSchema = info(
  z.object({ type: str.optional(), auth: authSchema.optional(), tls: tlsSchema.optional(), metadata: metadataSchema.optional() }),
  { kind: 'connector' },
);

export const dialerSchema = info(
  z.object({ type: str.optional(), auth: authSchema.optional(), tls: tlsSchema.optional(), metadata: metadataSchema.optional() }),
  { kind: 'dialer' },
);

const NODE_IGNORED = ['host', 'network', 'protocol', 'path', 'interface', 'sockopts', 'bypass', 'bypasses', 'resolver', 'hosts', 'http', 'tls', 'auth', 'netns', 'matcher', 'filter'];

export const nodeSchema = info(
  z.object({
    name: text.default(''),
    addr: str.default(''),
    connector: connectorSchema.optional(),
    dialer: dialerSchema.optional(),
    metadata: metadataSchema.optional(),
  }),
  { kind: 'node', ignored: Object.fromEntries(NODE_IGNORED.map((k) => [k, NOT_IMPLEMENTED])) },
);

const HOP_IGNORED = ['interface', 'sockopts', 'bypass', 'bypasses', 'resolver', 'hosts', 'reload', 'file', 'redis', 'http', 'plugin'];

export const hopSchema = info(
  z.object({
    name: text.default(''),
    selector: selectorSchema.optional(),
    nodes: z.array(nodeSchema).optional(),
    metadata: metadataSchema.optional(),
  }),
  { kind: 'hop', ignored: Object.fromEntries(HOP_IGNORED.map((k) => [k, NOT_IMPLEMENTED])) },
);

export const chainSchema = info(
  z.object({ name: str, hops: z.array(hopSchema).default([]), metadata: metadataSchema.optional() }),
  { kind: 'chain' },
);

export const ingressSchema = info(
  z.object({
    name: str,
    rules: z.array(info(z.object({ hostname: text, endpoint: text }), { kind: 'ingress rule' })).optional(),
    reload: duration.optional(),
    file: fileLoaderSchema.optional(),
    redis: redisLoaderSchema.optional(),
    http: httpLoaderSchema.optional(),
    plugin: pluginSchema.optional(),
  }),
  { kind: 'ingress', unsupported: { plugin: 'ingress plugins are not implemented by burrow; its rules will be empty' } },
);

export const autherSchema = info(
  z.object({
    name: str,
    auths: z.array(autherUserSchema).optional(),
    reload: duration.optional(),
    file: fileLoaderSchema.optional(),
    redis: redisLoaderSchema.optional(),
    http: httpLoaderSchema.optional(),
    plugin: pluginSchema.optional(),
  }),
  { kind: 'auther' },
);

const sdRedisSchema = info(
  z.object({ addr: str, db: int.optional(), username: text.optional(), password: text.optional(), expiration: duration.optional() }),
  { kind: 'sd redis' },
);

export const sdSchema = info(z.object({ name: str, plugin: pluginSchema.optional(), redis: sdRedisSchema.optional() }), { kind: 'sd' });

const rotationSchema = info(
  z.object({ maxSize: int.optional(), maxAge: int.optional(), maxBackups: int.optional(), localTime: bool.optional(), compress: bool.optional() }),
  { kind: 'log rotation' },
);

export const logSchema = info(
  z.object({ output: str.optional(), level: str.optional(), format: str.optional(), rotation: rotationSchema.optional() }),
  { kind: 'log' },
);

export const apiSchema = info(
  z.object({
    addr: str,
    pathPrefix: str.optional(),
    accesslog: bool.optional(),
    auth: authSchema.optional(),
    auther: str.optional(),
    allowUnauthenticated: bool.optional(),
    allowOrigins: z.array(str).optional(),
  }),
  { kind: 'api' },
);

export const metricsSchema = info(
  z.object({ addr: str, path: str.optional(), auth: authSchema.optional(), auther: str.optional(), maxTunnels: int.refine((n) => n >= 0, { error: 'expected 0 or more' }).optional() }),
  { kind: 'metrics' },
);

const TOP_IGNORED = ['admissions', 'bypasses', 'resolvers', 'hosts', 'routers', 'recorders', 'limiters', 'climiters', 'rlimiters', 'observers', 'loggers', 'profiling'];

export const configSchema = info(
  z.object({
    services: z.array(serviceSchema).optional(),
    chains: z.array(chainSchema).optional(),
    hops: z.array(hopSchema).optional(),
    authers: z.array(autherSchema).optional(),
    ingresses: z.array(ingressSchema).optional(),
    sds: z.array(sdSchema).optional(),
    tls: tlsSchema.optional(),
    log: logSchema.optional(),
    api: apiSchema.optional(),
    metrics: metricsSchema.optional(),
  }),
  {
    kind: 'config',
    ignored: Object.fromEntries(TOP_IGNORED.map((k) => [k, NOT_IMPLEMENTED])),
  },
);

/** What the schema produces: the model before defaults (types may still be missing). */
export type ParsedConfig = z.output<typeof configSchema>;

// ---------------------------------------------------------------------------------------------
// Schema introspection shared by normalize.ts and output.ts (zod v4 definitions).

type Def = { type: string; innerType?: z.ZodType; shape?: Record<string, z.ZodType>; element?: z.ZodType; out?: z.ZodType };

function defOf(schema: z.ZodType): Def {
  return (schema as unknown as { _zod: { def: Def } })._zod.def;
}

/** Strips optional/default/nullable/pipe wrappers. */
export function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema;
  for (let i = 0; i < 16; i++) {
    const def = defOf(s);
    if ((def.type === 'optional' || def.type === 'default' || def.type === 'nullable' || def.type === 'prefault') && def.innerType) {
      s = def.innerType;
    } else if (def.type === 'pipe' && def.out) {
      s = def.out;
    } else {
      break;
    }
  }
  return s;
}

/** The field schemas of an object schema in declaration order, or undefined. */
export function shapeOf(schema: z.ZodType): Record<string, z.ZodType> | undefined {
  const def = defOf(unwrap(schema));
  return def.type === 'object' ? def.shape : undefined;
}

/** The element schema of an array schema, or undefined. */
export function elementOf(schema: z.ZodType): z.ZodType | undefined {
  const def = defOf(unwrap(schema));
  return def.type === 'array' ? def.element : undefined;
}

/** True for free-form maps (metadata). */
export function isRecord(schema: z.ZodType): boolean {
  return defOf(unwrap(schema)).type === 'record';
}

/** The registered ObjectInfo of an object schema. */
export function infoOf(schema: z.ZodType): ObjectInfo | undefined {
  const base = unwrap(schema);
  return objectInfo.get(base);
}
