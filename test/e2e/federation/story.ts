// SCENARIOS.md A5–A7 told step by step to a person (the second half of `npm run demo`), on the
// same cast and topology as the federation suite (fedCast.ts, topology.ts): three datacenters in
// network namespaces when run as root (overlapping addresses), else on loopback, which it says.
// Every wait has a deadline; every process it started is stopped at the end, on failure or Ctrl-C.

import { waitFor } from '../../support/index.ts';
import { CAST, FedCast, describeCall } from './fedCast.ts';

const V2_ONPREM = 'payments v2 (onprem) -> currency (onprem)';
const V2_CLOUD = 'payments v2 (onprem) -> currency (cloud)';
const THREE = 'backend (space) -> payments v2 (onprem) -> currency (onprem)';
const TEST = { group: 'test' };

export async function federationStory(say: (text: string) => void, show: (text: string) => void): Promise<void> {
  say('A5 Three datacenters: onprem (primary), cloud, space, each a server agent and a mesh gateway');
  const cast = await FedCast.create((line) => show(line));
  const stopOnSignal = () => { void cast.stop().finally(() => process.exit(130)); };
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
  try {
    const ask = async (front: 'web' | 'api', path: string, headers: Record<string, string> = {}) => {
      const h = Object.entries(headers).map(([k, v]) => ` -H '${k}: ${v}'`).join('');
      show(`GET ${path}${h} → ${front} → ${await cast.via(front, path, headers)}`);
    };
    const count = async (n: number, front: 'web' | 'api', path: string, headers: Record<string, string> = {}) => {
      const seen = await cast.tally(n, front, path, headers, 4);
      show(`${n} × GET ${path} on ${front}${Object.keys(headers).length ? ` ${JSON.stringify(headers)}` : ''}: ${[...seen].map(([w, k]) => `${k} → ${w}`).join(', ')}`);
    };
    const write = async (entry: Record<string, unknown>) => {
      await cast.putConfig(entry);
      show(`PUT /v1/config (onprem) ${JSON.stringify(entry)}`);
    };
    const settle = async (who: string, front: 'web' | 'api', path: string, headers: Record<string, string> = {}) => {
      const at = Date.now();
      await waitFor(`${front} ${path} → ${who}`, async () => {
        for (let i = 0; i < 5; i++) if ((await cast.via(front, path, headers)) !== who) return false;
        return true;
      }, 60_000, 200);
      show(`(in effect after ${Date.now() - at} ms, no restart)`);
    };

    await Promise.all([cast.startServer('onprem'), cast.startServer('cloud')]);
    await cast.writeGlobals();
    show('proxy-defaults/global: protocol http, MeshGateway.Mode local; intentions: default deny + the story\'s allows');
    await write({ Kind: 'service-resolver', Name: 'payments', DefaultSubset: 'v1', Subsets: {
      v1: { Filter: 'Service.Meta.version == 1' }, v2: { Filter: 'Service.Meta.version == 2' } } });
    await write({ Kind: 'service-router', Name: 'payments', Routes: [
      { Match: { HTTP: { Header: [{ Name: 'group', Exact: 'test' }] } }, Destination: { Service: 'payments', ServiceSubset: 'v2' } }] });
    await Promise.all([cast.startGateway('onprem'), cast.startGateway('cloud')]);
    for (const dc of ['onprem', 'cloud'] as const) {
      const s = cast.site(dc);
      show(`${dc}: server ${s.wanHost}:${s.ports.server}; mesh gateway LAN ${s.lanHost}:${s.ports.gwLan}, WAN ${s.wanHost}:${s.ports.gwWan}`);
    }
    const members = await cast.cli('onprem', ['members', '-wan']);
    show(`trellis members -wan:\n${members.stdout.trimEnd().split('\n').map((l) => `     ${l}`).join('\n')}`);
    for (const m of [CAST.paymentsV1, CAST.currencyV1, CAST.paymentsV2, CAST.web, CAST.currencyCloud, CAST.api]) await cast.add(m);
    for (const m of [CAST.paymentsV1, CAST.currencyV1, CAST.paymentsV2, CAST.web, CAST.currencyCloud, CAST.api]) await cast.waitPassing(m);
    const port = (dc: 'onprem' | 'cloud') => cast.site(dc).ports.currencySidecar;
    show(`currency's sidecar listens on 127.0.0.1:${port('onprem')} in onprem and on 127.0.0.1:${port('cloud')} in cloud${cast.topo.mode === 'netns' ? ' (the same address: overlapping networks)' : ''}`);
    await settle(V2_ONPREM, 'web', '/', TEST);
    await ask('web', '/', TEST);

    await cast.stopGateway('onprem');
    show('stopped the onprem mesh gateway');
    await write({ Kind: 'service-resolver', Name: 'currency', Redirect: { Datacenter: 'cloud' } });
    await waitFor('the currency call fails', async () => (await cast.via('web', '/', TEST)).includes('status'), 30_000, 200);
    const r = await cast.get('web', '/', TEST);
    show(`GET / -H 'group: test' → web answers ${r.status}: payments → ${describeCall(Object.values(r.body.upstream_calls ?? {})[0])}`);
    await cast.startGateway('onprem');
    show('started the onprem mesh gateway again');
    await settle(V2_CLOUD, 'web', '/', TEST);
    await count(100, 'web', '/', TEST);
    show(`onprem gateway forwarded ${await cast.gatewayMetric('onprem', 'consul_mesh_gateway_conns_total', { target: 'cloud', route: 'remote' })} connection(s) to cloud; ` +
      `cloud gateway ${await cast.gatewayMetric('cloud', 'consul_mesh_gateway_conns_total', { target: 'currency.default.cloud', route: 'local' })} to currency`);
    await cast.deleteConfig('service-resolver', 'currency');
    show('DELETE /v1/config/service-resolver/currency');
    await settle(V2_ONPREM, 'web', '/', TEST);

    say('A6 space joins; api (cloud) → backend (space); failover; a split across datacenters');
    await cast.startServer('space');
    await cast.startGateway('space');
    await cast.add(CAST.backend);
    await cast.waitPassing(CAST.backend);
    await waitFor('three datacenters', async () => (await cast.getJson<string[]>('onprem', '/v1/catalog/datacenters')).length === 3, 60_000, 500);
    show(`datacenters: ${(await cast.getJson<string[]>('onprem', '/v1/catalog/datacenters')).join(', ')}`);
    await ask('api', '/');
    await write({ Kind: 'service-resolver', Name: 'backend', Redirect: { Datacenter: 'space' } });
    await settle('backend (space)', 'api', '/');
    await ask('api', '/');
    await write({ Kind: 'service-resolver', Name: 'currency', ConnectTimeout: '3s', Failover: { '*': { Datacenters: ['onprem', 'cloud'] } } });
    await ask('web', '/', TEST);
    await cast.halt(CAST.currencyV1);
    show('stopped onprem\'s currency');
    await settle(V2_CLOUD, 'web', '/', TEST);
    await count(50, 'web', '/', TEST);
    await cast.add(CAST.currencyV1);
    await cast.waitPassing(CAST.currencyV1);
    show('started onprem\'s currency again');
    await settle(V2_ONPREM, 'web', '/', TEST);
    await write({ Kind: 'service-resolver', Name: 'currency', DefaultSubset: 'onprem', Subsets: {
      onprem: { Filter: 'Node.Datacenter == "onprem"' }, cloud: { Filter: 'Node.Datacenter == "cloud"' } } });
    await write({ Kind: 'service-resolver', Name: 'currency-cloud', Redirect: { Service: 'currency', ServiceSubset: 'cloud', Datacenter: 'cloud' } });
    await write({ Kind: 'service-splitter', Name: 'currency', Splits: [{ Weight: 50, ServiceSubset: 'onprem' }, { Weight: 50, Service: 'currency-cloud' }] });
    await waitFor('both datacenters answer', async () => { const s = await cast.tally(20, 'web', '/', TEST); return s.has(V2_ONPREM) && s.has(V2_CLOUD); }, 30_000, 200);
    await count(200, 'web', '/', TEST);
    for (const [kind, name] of [['service-splitter', 'currency'], ['service-resolver', 'currency-cloud'], ['service-resolver', 'currency']]) await cast.deleteConfig(kind!, name!);
    await settle(V2_ONPREM, 'web', '/', TEST);

    say('A7 Connect everything: backend (space) calls payments (onprem)');
    await cast.halt(CAST.backend);
    await cast.add(CAST.backend, 'payments');
    await cast.waitPassing(CAST.backend);
    await write({ Kind: 'service-resolver', Name: 'payments', DefaultSubset: 'v1', Subsets: {
      v1: { Filter: 'Service.Meta.version == 1' }, v2: { Filter: 'Service.Meta.version == 2' } }, Redirect: { Datacenter: 'onprem' } });
    await settle(THREE, 'api', '/', TEST);
    await ask('api', '/', TEST);
    await ask('api', '/');
    await ask('web', '/', TEST);
    for (const dc of ['onprem', 'cloud', 'space'] as const) {
      await cast.stopGateway(dc);
      show(`stopped ${dc}'s gateway:`);
      await waitFor('the crossing hops fail', async () => (await cast.via('api', '/', TEST)).includes('status'), 30_000, 200);
      await ask('api', '/', TEST);
      await ask('web', '/', TEST);
      await cast.startGateway(dc);
      await settle(THREE, 'api', '/', TEST);
      show(`started ${dc}'s gateway again: healed`);
    }
    say('Done: stopping every process and removing the namespaces');
  } finally {
    process.off('SIGINT', stopOnSignal);
    process.off('SIGTERM', stopOnSignal);
    await cast.stop();
  }
}
