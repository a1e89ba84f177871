/**
 * What a service reports per connection. The Prometheus implementation lives in metrics.ts
 * (loaded only when metrics are on); with metrics off, services get `NOOP_METRICS`.
 */
export interface ServiceMetrics {
  requestStarted(service: string): void;
  requestFinished(service: string, durationMs: number, inputBytes: number, outputBytes: number, failed: boolean): void;
}

export const NOOP_METRICS: ServiceMetrics = {
  requestStarted() {},
  requestFinished() {},
};
