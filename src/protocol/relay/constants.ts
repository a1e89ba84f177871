/**
 * go-gost relay v1 constants (spec/protocol.md §1.1–§1.4). Names follow the spec so that
 * `grep CMD_BIND` leads from the code to the document and back.
 *
 * Request / response header:
 *
 * ```
 * +-----+------------------+---------+----------+
 * | VER | CMD/FLAGS|STATUS | FEALEN  | FEATURES |
 * |  1  |        1         | 2 (BE)  |  FEALEN  |
 * +-----+------------------+---------+----------+
 * ```
 */

/** Relay status bytes (spec/protocol.md §1.2). */
export const STATUS_OK = 0x00;
export const STATUS_BAD_REQUEST = 0x01;
export const STATUS_UNAUTHORIZED = 0x02;
export const STATUS_FORBIDDEN = 0x03;
export const STATUS_TIMEOUT = 0x04;
export const STATUS_SERVICE_UNAVAILABLE = 0x05;
export const STATUS_HOST_UNREACHABLE = 0x06;
export const STATUS_NETWORK_UNREACHABLE = 0x07;
export const STATUS_INTERNAL_SERVER_ERROR = 0x08;

/** The only protocol version; any other first byte is rejected before anything is answered. */
export const VERSION1 = 0x01;

/** Commands: low nibble of the CMD/FLAGS byte. */
export const CMD_CONNECT = 0x01;
export const CMD_BIND = 0x02;
export const CMD_ASSOCIATE = 0x03;
export const CMD_MASK = 0x0f;

/** Flags: high nibble of the CMD/FLAGS byte. FLAG_UDP is deprecated but still sent by gost. */
export const FLAG_UDP = 0x80;
export const FLAGS_MASK = 0xf0;

/** Feature TLV types. Types other than these four are never emitted (gost ≤ 3.2.6 rejects them). */
export const FEATURE_USER_AUTH = 0x01;
export const FEATURE_ADDR = 0x02;
export const FEATURE_TUNNEL = 0x03;
export const FEATURE_NETWORK = 0x04;

/** Addr feature address types. */
export const ATYP_IPV4 = 0x01;
export const ATYP_DOMAIN = 0x03;
export const ATYP_IPV6 = 0x04;

/** Network feature values (2 bytes, BE). Unknown values are read as tcp. */
export const NETWORK_TCP = 0x0000;
export const NETWORK_UDP = 0x0001;
export const NETWORK_IP = 0x0002;
export const NETWORK_UNIX = 0x0010;
export const NETWORK_SERIAL = 0x0011;

/** FEALEN is a 16-bit field: the features block of one message never exceeds this. */
export const MAX_FEATURES_LEN = 65535;

/** VER + CMD/STATUS + FEALEN. */
export const HEADER_LEN = 4;
/** TYPE + LEN of one feature TLV. */
export const FEATURE_HEADER_LEN = 3;

/** Sizes inside the Tunnel feature (§1.4): 16 UUID bytes, flag, 2 reserved, weight. */
export const UUID_LEN = 16;
export const TUNNEL_ID_LEN = 20;

/** TunnelID flag: private tunnel (only ever set inside the server, from a `$` rule). */
export const FLAG_PRIVATE = 0x80;
/** ConnectorID flag: the connector serves UDP. */
export const FLAG_CONNECTOR_UDP = 0x01;
/**
 * ConnectorID flag (burrow): the server terminates TLS for the answered public name, so its
 * public URL is `https://`. gost clients look at no flag but UDP and ignore it.
 */
export const FLAG_CONNECTOR_HTTPS = 0x02;

/** Longest domain name an Addr feature can carry (1-byte length). */
export const MAX_DOMAIN_LEN = 255;
/** Longest username / password a UserAuth feature can carry (1-byte lengths). */
export const MAX_AUTH_FIELD_LEN = 255;
