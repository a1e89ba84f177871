/**
 * Routing decisions of the tunnel server (behavior.md §2), kept pure so they can be tested
 * as a table: given the ingress answer and the visitor's tunnel ID, which tunnel to reach or
 * which relay status to answer.
 */
import { STATUS_HOST_UNREACHABLE, STATUS_NETWORK_UNREACHABLE } from '../../protocol/relay/constants';
import type { Route } from '../../ingress/ingress';

export type ConnectDecision = { ok: true; tunnelId: string } | { ok: false; status: number; reason: string };

export interface ConnectRouteInput {
  /** Host part of the CONNECT dst ("" when none). */
  host: string;
  /** Ingress answer for host (undefined: no ingress, no rule or empty host). */
  route: Route | undefined;
  /** The visitor's tunnel ID text (lowercase UUID). */
  visitorTunnelId: string;
  /** The handler's `entrypoint.id` (lowercase UUID) or undefined. */
  entrypointId: string | undefined;
  direct: boolean;
}

/** behavior.md §2.1. */
export function routeConnect(i: ConnectRouteInput): ConnectDecision {
  if (i.entrypointId !== undefined && i.visitorTunnelId === i.entrypointId) {
    if (!i.route) return { ok: false, status: STATUS_NETWORK_UNREACHABLE, reason: `no route to host ${i.host}` };
    if (i.route.private) {
      return { ok: false, status: STATUS_HOST_UNREACHABLE, reason: `tunnel ${i.route.tunnelId} is private for host ${i.host}` };
    }
    return { ok: true, tunnelId: i.route.tunnelId };
  }
  const tid = i.direct ? i.visitorTunnelId : i.route?.tunnelId;
  if (tid !== i.visitorTunnelId) {
    return { ok: false, status: STATUS_HOST_UNREACHABLE, reason: `no route to host ${i.host} for tunnel ${i.visitorTunnelId}` };
  }
  return { ok: true, tunnelId: tid };
}
