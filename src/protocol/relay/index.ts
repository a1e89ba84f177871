/**
 * go-gost relay v1 codec (spec/protocol.md §1–§4): constants, TunnelID, feature TLVs,
 * request/response messages and an incremental reader. Pure: no sockets.
 */
export * from './constants';
export * from './tunnel-id';
export * from './feature';
export * from './message';
export * from './reader';
export { formatIP, parseIPv4, parseIPv6, ipFamily, ipBytes } from './ip';
