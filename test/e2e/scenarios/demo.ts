// `npm run demo`: SCENARIOS.md A0–A4 told step by step to a person, on the same cast as the
// scenario suite (cast.ts): a dev agent, the test apps and their sidecar proxies as processes on
// 127.0.0.1. Each step prints what it wrote and what each request answered. Then A5–A7 across
// three datacenters (test/e2e/federation/story.ts, the federation suite's cast).
// `npm run demo -- --from A5` tells only the three-datacenter half. It stops by itself (every
// wait has a deadline) and stops every process it started, also on Ctrl-C or a failure.

import { waitFor } from '../../support/index.ts';
import { ALLOWS, Cast, ONPREM, plainProbe } from './cast.ts';
import { federationStory } from '../federation/story.ts';

let step = 0;
const say = (text: string) => process.stdout.write(`\n== ${++step}. ${text}\n`);
const show = (text: string) => process.stdout.write(`   ${text}\n`);

async function ask(cast: Cast, path: string, headers: Record<string, string> = {}) {
  const who = await cast.via(path, headers);
  const h = Object.entries(headers).map(([k, v]) => ` -H '${k}: ${v}'`).join('');
  show(`GET ${path}${h} → web → ${who}`);
}

async function count(cast: Cast, n: number, path: string, headers: Record<string, string> = {}) {
  const seen = await cast.tally(n, path, headers);
  const h = Object.entries(headers).map(([k, v]) => ` -H '${k}: ${v}'`).join('');
  show(`${n} × GET ${path}${h}: ${[...seen].map(([who, k]) => `${k} → ${who}`).join(', ')}`);
}

async function write(cast: Cast, entry: Record<string, unknown>) {
  await cast.putConfig(entry);
  show(`PUT /v1/config ${JSON.stringify(entry)}`);
}

/** Waits (bounded) until 10 answers in a row are `who`: the change reached the proxies. */
async function settle(cast: Cast, who: string, path: string, headers: Record<string, string> = {}) {
  const at = Date.now();
  await waitFor(`GET ${path} → ${who}`, async () => {
    for (let i = 0; i < 10; i++) if ((await cast.via(path, headers)) !== who) return false;
    return true;
  }, 15_000, 100);
  show(`(the proxies applied it within ${Date.now() - at} ms, no restart)`);
}

const V1 = 'payments v1 (onprem)';
const V2 = 'payments v2 (onprem) -> currency (onprem)';

async function main() {
  const at = process.argv.indexOf('--from');
  const from = at >= 0 ? process.argv[at + 1] : 'A0';
  if (from !== 'A0' && from !== 'A5') throw new Error(`--from ${String(from)}: the demo starts at A0 (default) or A5`);
  if (from === 'A0') await onprem();
  await federationStory(say, show);
}

async function onprem() {
  say('A0 Platform: a dev agent, proxy-defaults (protocol http), intentions at default deny');
  const cast = await Cast.start('demo');
  const stopOnSignal = () => { void cast.stop().finally(() => process.exit(130)); };
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
  try {
    show(`agent at http://${cast.agent.httpAddr}; leader ${(await cast.agent.request('GET', '/v1/status/leader')).text}`);
    show(`proxy-defaults/global: ${JSON.stringify(((await cast.agent.request('GET', '/v1/config/proxy-defaults/global')).json() as { Config: unknown }).Config)}`);
    show(`intentions: * → * deny; allow ${ALLOWS.map(([s, d]) => `${s} → ${d}`).join(', ')}`);
    for (const m of [ONPREM.paymentsV1, ONPREM.currencyV1, ONPREM.web]) {
      const r = await cast.add(m);
      show(`started ${m.id} (${m.display}) on ${r.app.url}, its sidecar on 127.0.0.1:${r.sidecarPort}`);
    }
    for (const m of [ONPREM.paymentsV1, ONPREM.currencyV1, ONPREM.web]) await cast.waitPassing(m);
    show('every service and its sidecar is registered and passing');
    await settle(cast, V1, '/');
    const probe = await plainProbe(cast.running.get(ONPREM.paymentsV1.id)!.sidecarPort);
    show(`a plain TCP request to payments' sidecar (no mesh certificate) got ${probe === '' ? 'nothing: refused' : JSON.stringify(probe.slice(0, 80))}`);
    for (const [s, d] of [['web', 'payments'], ['payments', 'web'], ['currency', 'payments']]) {
      const r = (await cast.agent.request('GET', `/v1/connect/intentions/check?source=${s}&destination=${d}`)).json() as { Allowed: boolean };
      show(`intention check ${s} → ${d}: ${r.Allowed ? 'allowed' : 'denied'}`);
    }

    say('A1 The monolith: web calls payments v1');
    const r = await cast.get('/');
    show(`GET / → ${r.status} ${JSON.stringify(r.body)}`);
    await ask(cast, '/currency');

    say('A2 Split off currency: a service-router on payments by path and header');
    await count(cast, 100, '/currency');
    await write(cast, { Kind: 'service-router', Name: 'payments', Routes: [
      { Match: { HTTP: { PathPrefix: '/currency', Header: [{ Name: 'group', Exact: 'dev' }] } }, Destination: { Service: 'currency' } }] });
    await settle(cast, 'currency (onprem)', '/currency', { group: 'dev' });
    await ask(cast, '/currency');
    await ask(cast, '/currency', { group: 'dev' });
    await ask(cast, '/', { group: 'dev' });
    await write(cast, { Kind: 'service-router', Name: 'payments', Routes: [
      { Match: { HTTP: { PathPrefix: '/currency' } }, Destination: { Service: 'currency' } }] });
    await settle(cast, 'currency (onprem)', '/currency');
    for (const p of ['/currency', '/currency/GBP', '/', '/payment']) await ask(cast, p);
    await cast.deleteConfig('service-router', 'payments');
    show('DELETE /v1/config/service-router/payments');
    await settle(cast, V1, '/currency');
    await ask(cast, '/currency');

    say('A3 A/B test payments v2: resolver subsets and a router to subset v2');
    await cast.add(ONPREM.paymentsV2);
    await cast.waitPassing(ONPREM.paymentsV2);
    show('started payments-v2 (calls currency through its own sidecar)');
    await waitFor('both versions answer', async () => { const s = await cast.tally(20, '/'); return s.has(V1) && s.has(V2); }, 20_000, 100);
    await count(cast, 20, '/');
    await write(cast, { Kind: 'service-resolver', Name: 'payments', DefaultSubset: 'v1', Subsets: {
      v1: { Filter: 'Service.Meta.version == 1' }, v2: { Filter: 'Service.Meta.version == 2' } } });
    await settle(cast, V1, '/');
    await count(cast, 200, '/');
    await write(cast, { Kind: 'service-router', Name: 'payments', Routes: [
      { Match: { HTTP: { Header: [{ Name: 'group', Exact: 'test' }] } }, Destination: { Service: 'payments', ServiceSubset: 'v2' } }] });
    await settle(cast, V2, '/', { group: 'test' });
    await count(cast, 100, '/', { group: 'test' });
    await count(cast, 100, '/');

    say('A4 Canary: a service-splitter on payments');
    for (const [a, b, n] of [[100, 0, 100], [50, 50, 1000], [0, 100, 100], [90, 10, 1000]] as const) {
      await write(cast, { Kind: 'service-splitter', Name: 'payments', Splits: [{ Weight: a, ServiceSubset: 'v1' }, { Weight: b, ServiceSubset: 'v2' }] });
      if (b === 100) await settle(cast, V2, '/');
      else if (a === 100) await settle(cast, V1, '/');
      else await waitFor('both answer', async () => { const s = await cast.tally(20, '/'); return s.has(V1) && s.has(V2); }, 15_000, 100);
      await count(cast, n, '/');
    }
    await count(cast, 20, '/', { group: 'test' });
    const bad = await cast.putConfig({ Kind: 'service-splitter', Name: 'payments', Splits: [{ Weight: 60, ServiceSubset: 'v1' }, { Weight: 30, ServiceSubset: 'v2' }] }, 400);
    show(`a splitter with weights 60 + 30: ${bad.status} ${bad.text.trim()}`);
    await cast.putConfig({ Kind: 'service-defaults', Name: 'ledger', Protocol: 'tcp' });
    const tcp = await cast.putConfig({ Kind: 'service-splitter', Name: 'ledger', Splits: [{ Weight: 100 }] }, 400);
    show(`a splitter for ledger (service-defaults protocol tcp): ${tcp.status} ${tcp.text.trim()}`);
    await count(cast, 100, '/');
    say('A0–A4 done: stopping the proxies, the apps and the agent (A5 starts three datacenters of its own)');
  } finally {
    process.off('SIGINT', stopOnSignal);
    process.off('SIGTERM', stopOnSignal);
    await cast.stop();
  }
}

main().then(() => process.exit(0), (err: Error) => {
  process.stderr.write(`demo failed: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
