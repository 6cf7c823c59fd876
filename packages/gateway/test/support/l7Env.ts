// The in-process L7 path the gateway's unit tests share: a fake agent, the web sidecar's TLS material
// (leaf and roots of one test CA), a stand-in for a peer sidecar's mTLS listener, a one-resolver
// discovery chain, and an upstream listener on it. A test file calls useL7Env() once at top level:
// it registers the before/after hooks, and what it returns is filled in before the first test. A
// file's own set-up goes in `setup`, not in a before() of its own: node:test starts top-level
// before() hooks without waiting for the earlier ones.
import { after, before } from 'node:test';
import tls from 'node:tls';
import { AgentApi } from '../../src/agentApi.ts';
import type { CompiledDiscoveryChain } from '../../src/chainTypes.ts';
import { L7Inbound } from '../../src/l7Inbound.ts';
import { L7UpstreamListener } from '../../src/l7Upstream.ts';
import { silentLogger, type Logger } from '../../src/log.ts';
import { Metrics } from '../../src/metrics.ts';
import { TlsMaterial } from '../../src/tlsMaterial.ts';
import { FakeAgent } from './fakeAgent.ts';
import { makeLeaf, makeRoot, rootsBody } from './testCa.ts';
import { freePort } from '../../../../test/support/index.ts';

export const TD = '11111111-2222-3333-4444-555555555555.consul';
export const DC = 'dc1';

export interface L7Env {
  root: ReturnType<typeof makeRoot>;
  /** The web sidecar's leaf and roots (the upstream side's client certificate). */
  material: TlsMaterial;
  agent: FakeAgent;
  api: AgentApi;
  /** Run in reverse order after the file's tests. */
  closers: Array<() => Promise<void> | void>;
}

export function useL7Env(setup?: (env: L7Env) => Promise<void>): L7Env {
  const env = { root: makeRoot(TD), material: new TlsMaterial(), closers: [] } as unknown as L7Env;
  before(async () => {
    env.agent = await FakeAgent.start();
    env.api = new AgentApi({ httpAddr: env.agent.addr });
    env.material.setLeaf(makeLeaf(env.root, { trustDomain: TD, dc: DC, service: 'web' }));
    env.material.setRoots(rootsBody(TD, [{ root: env.root, active: true }]));
    await setup?.(env);
  });
  after(async () => {
    for (const c of env.closers.reverse()) await c();
    env.api.close();
    await env.agent.close();
  });
  return env;
}

/** A peer sidecar stand-in: mTLS with `service`'s certificate (choosing among `alpn`), registered as its healthy instance; counts connections. */
export async function sidecar(env: L7Env, service: string, onSocket: (s: tls.TLSSocket) => void, alpn?: string[]): Promise<{ port: number; conns: () => number }> {
  const leaf = makeLeaf(env.root, { trustDomain: TD, dc: DC, service });
  let conns = 0;
  const server = tls.createServer({ key: leaf.PrivateKeyPEM, cert: leaf.CertPEM, ca: [env.root.pem], requestCert: true, rejectUnauthorized: true, ...(alpn ? { ALPNProtocols: alpn } : {}) },
    (s) => { conns++; onSocket(s); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  env.closers.push(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as { port: number }).port;
  setInstance(env, service, port);
  return { port, conns: () => conns };
}

/** `service`'s sidecar with its L7 inbound side (every caller allowed) in front of the app on `appPort`; callers are web. */
export async function inboundSidecar(env: L7Env, service: string, appPort: number): Promise<{ port: number; conns: () => number }> {
  const inbound = new L7Inbound({
    api: env.api, metrics: new Metrics(), logger: silentLogger, service,
    localApp: () => ({ host: '127.0.0.1', port: appPort }),
    authorize: () => Promise.resolve({ Authorized: true, Reason: 'test: allowed' }),
  });
  env.closers.push(() => inbound.close());
  return sidecar(env, service, (s) => inbound.accept(s, { uri: `spiffe://${TD}/ns/default/dc/${DC}/svc/web`, service: 'web', serial: '01' }));
}

/** Registers `port` as the one healthy instance of `service`'s sidecar. */
export function setInstance(env: L7Env, service: string, port: number): void {
  env.agent.setHealth(service, [{ Node: { Node: 'n1', Address: '127.0.0.1' }, Service: { ID: `${service}-sidecar-proxy`, Service: `${service}-sidecar-proxy`, Port: port } }]);
}

/** The chain of an http service with only its default resolver (and an optional ConnectTimeout). */
export function resolverChain(service: string, connectTimeout?: string): CompiledDiscoveryChain {
  const id = `${service}.default.default.${DC}`;
  const ct = connectTimeout === undefined ? {} : { ConnectTimeout: connectTimeout };
  return {
    ServiceName: service, Datacenter: DC, Protocol: 'http', StartNode: `resolver:${id}`,
    Nodes: { [`resolver:${id}`]: { Type: 'resolver', Name: id, Resolver: { Target: id, ...ct } } },
    Targets: { [id]: { ID: id, Service: service, Datacenter: DC, SNI: `${service}.default.${DC}.internal.${TD}`, ...ct } },
  };
}

/** An upstream listener (L7UpstreamListener or a subclass) on `chain`, listening once its target's health is known. */
export async function upstreamListener<L extends L7UpstreamListener>(env: L7Env, chain: CompiledDiscoveryChain,
  o: { logger?: Logger; make?: (opts: ConstructorParameters<typeof L7UpstreamListener>[0]) => L } = {}): Promise<{ listener: L; port: number }> {
  const opts = { api: env.api, tls: env.material, metrics: new Metrics(), logger: o.logger ?? silentLogger, chain,
    upstream: { DestinationName: chain.ServiceName, LocalBindAddress: '127.0.0.1', LocalBindPort: await freePort() } };
  const listener = o.make ? o.make(opts) : new L7UpstreamListener(opts) as L;
  env.closers.push(() => listener.close());
  await listener.healthKnown(5000);
  return { listener, port: (await listener.listen()).port };
}
