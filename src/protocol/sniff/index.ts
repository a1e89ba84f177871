/** Protocol sniffers over byte prefixes: HTTP/1.x Host, TLS SNI, and the combination. */
export * from './http';
export * from './tls';
export * from './host';
