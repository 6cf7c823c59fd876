// status/leader and status/peers: where the Raft leader is and who votes. Consul answers them from
// the Raft library directly (no state store, no index headers).

import type { EndpointSpec, RouteDeps } from '../router.ts';

export function statusRoutes({ backend }: RouteDeps): EndpointSpec[] {
  return [
    {
      path: '/v1/status/leader',
      // A JSON string "<ip>:<port>", or "" when there is no leader.
      methods: { GET: () => backend.raftStatus().leaderAddr },
    },
    {
      path: '/v1/status/peers',
      methods: { GET: () => [...backend.raftStatus().peers] },
    },
  ];
}
