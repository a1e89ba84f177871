/**
 * What services and tunnel servers report. The Prometheus implementation lives in metrics.ts
 * (loaded only when metrics are on); with metrics off, everything gets `NOOP_METRICS`.
 */

/** A live tunnel as a tunnel server sees it: its connectors and their byte counts so far. */
export interface TunnelTraffic {
  tunnelId: string;
  connectors: number;
  /** Bytes sent into the tunnel (towards its client) by the live connectors. */
  bytesIn: number;
  /** Bytes that came out of the tunnel (from its client) on the live connectors. */
  bytesOut: number;
}

/** A tunnel server, as the metrics read it (per-tunnel series). */
export interface TunnelSource {
  /** Live tunnels. */
  tunnels(): TunnelTraffic[];
  /** True when the configuration routes to the tunnel (an ingress rule names it). */
  configured(tunnelId: string): boolean;
  /** Calls `fn` with a connector's final byte counts when it goes; returns the unsubscribe. */
  onConnectorGone(fn: (tunnelId: string, bytesIn: number, bytesOut: number) => void): () => void;
}

export interface ServiceMetrics {
  requestStarted(service: string): void;
  requestFinished(service: string, durationMs: number, inputBytes: number, outputBytes: number, failed: boolean): void;
  /**
   * An HTTP request at an entry point got its answer: `code` is the status sent to the
   * visitor ("101"/"upgrade" for a WebSocket); `tunnelId` "" when no tunnel was found.
   */
  tunnelRequest?(tunnelId: string, host: string, code: string): void;
  /** A tunnel server to read per-tunnel series from, until the returned function is called. */
  addTunnelSource?(src: TunnelSource): () => void;
}

export const NOOP_METRICS: ServiceMetrics = {
  requestStarted() {},
  requestFinished() {},
  tunnelRequest() {},
  addTunnelSource: () => () => {},
};

/** Client side (rtcp/rudp services): what each reverse listener has done so far. */
export interface ClientTunnelCounts {
  /** Tunnel sessions established so far (the first and every reconnect). */
  sessions: number;
  /** 1 while a tunnel session is up. */
  bound: boolean;
  /** Streams the server opened towards this client so far, and those open now. */
  streams: number;
  openStreams: number;
}
