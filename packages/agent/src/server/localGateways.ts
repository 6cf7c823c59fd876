// This datacenter's healthy mesh gateways, read from the server's own replica of the catalog (as
// Consul's gateway locator reads its state store): services of kind mesh-gateway registered with
// meta consul-wan-federation=1 (`trellis connect gateway -expose-servers`, Consul's
// MetaWANFederationKey) whose checks all pass. WAN federation through mesh gateways dials them at their LAN address and advertises their
// WAN address to the other datacenters (server/wan.ts).
import type { StateStore } from '../state/index.ts';
import type { LocalGateway } from './wan.ts';

/** Re-read at most this often: server RPC asks on every call to another datacenter. */
const CACHE_MS = 1_000;

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export function localGatewayReader(store: StateStore, now: () => number = Date.now): () => LocalGateway[] {
  let cached: { at: number; index: number; list: LocalGateway[] } | undefined;
  return () => {
    const services = store.services();
    if (cached && cached.index === services.index && now() - cached.at < CACHE_MS) return cached.list;
    const list: LocalGateway[] = [];
    for (const name of Object.keys(services.value)) {
      for (const e of store.healthServiceNodes(name, { passingOnly: true }).value) {
        if (e.Service.Kind !== 'mesh-gateway' || e.Service.Meta?.['consul-wan-federation'] !== '1') continue;
        const lanTag = e.Service.TaggedAddresses?.['lan'];
        const wanTag = e.Service.TaggedAddresses?.['wan'];
        const lan = hostPort(lanTag?.Address || e.Service.Address || e.Node.Address, lanTag?.Port || e.Service.Port);
        const wan = wanTag?.Address && wanTag.Port ? hostPort(wanTag.Address, wanTag.Port) : lan;
        list.push({ lan, wan });
      }
    }
    cached = { at: now(), index: services.index, list };
    return list;
  };
}
