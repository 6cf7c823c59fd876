// The discovery chain compiler (connect/discoveryChain.ts) as tables of config entries → the
// compiled chain's key fields, against Consul's compile.go behaviour and texts, plus a property test
// against a naive evaluator that resolves one request at a time.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ChainCompileError, compileDiscoveryChain, type ChainEntries, type ChainResolver, type ChainRouter, type ChainSplitter, type CompiledDiscoveryChain,
} from '../../src/connect/discoveryChain.ts';
import { matchRoute, type HttpRequestInfo } from '../../../gateway/src/routeMatch.ts';

const TD = '11111111-2222-3333-4444-555555555555.consul';
const fmt = (ns: number): string => (ns % 1e9 === 0 ? `${ns / 1e9}s` : `${ns / 1e6}ms`);
const http = { Protocol: 'http' };

function compile(service: string, entries: ChainEntries, extra: Partial<Parameters<typeof compileDiscoveryChain>[0]> = {}): CompiledDiscoveryChain {
  return compileDiscoveryChain({ serviceName: service, datacenter: 'dc1', trustDomain: TD, entries, formatDuration: fmt, ...extra });
}

function compileError(service: string, entries: ChainEntries): string {
  try {
    compile(service, entries);
  } catch (e) {
    assert.ok(e instanceof ChainCompileError, String(e));
    return e.message;
  }
  assert.fail('compiled without an error');
}

/** The A3 resolver: v1/v2 by Service.Meta.version, v1 by default. */
const paymentsResolver: ChainResolver = {
  Name: 'payments', DefaultSubset: 'v1',
  Subsets: { v1: { Filter: 'Service.Meta.version == 1' }, v2: { Filter: 'Service.Meta.version == 2' } },
};

describe('the default chain', () => {
  test('no entries: one default resolver, Default, tcp, Consul target id, SNI and 5s connect timeout', () => {
    const c = compile('web', {});
    assert.equal(c.StartNode, 'resolver:web.default.default.dc1');
    assert.equal(c.Default, true);
    assert.equal(c.Protocol, 'tcp');
    assert.deepEqual(Object.keys(c.Nodes), ['resolver:web.default.default.dc1']);
    assert.deepEqual(c.Nodes[c.StartNode], {
      Type: 'resolver', Name: 'web.default.default.dc1',
      Resolver: { ConnectTimeout: '5s', Default: true, Target: 'web.default.default.dc1' },
    });
    assert.deepEqual(c.Targets['web.default.default.dc1'], {
      ID: 'web.default.default.dc1', Service: 'web', Namespace: 'default', Partition: 'default', Datacenter: 'dc1',
      MeshGateway: {}, Subset: {}, TransparentProxy: {}, ConnectTimeout: '5s',
      SNI: `web.default.dc1.internal.${TD}`, Name: `web.default.dc1.internal.${TD}`,
    });
    assert.equal(c.CustomizationHash, undefined);
  });

  test('service-defaults protocol and Meta, proxy-defaults protocol and mesh gateway mode', () => {
    const c = compile('web', { serviceDefaults: { web: { Protocol: 'HTTP', Meta: { team: 'a' } } } });
    assert.equal(c.Protocol, 'http');
    assert.deepEqual(c.ServiceMeta, { team: 'a' });
    const d = compile('web', { proxyDefaults: { Config: { protocol: 'grpc' }, MeshGateway: { Mode: 'local' } } });
    assert.equal(d.Protocol, 'grpc');
    assert.deepEqual(d.Targets['web.default.default.dc1']!.MeshGateway, { Mode: 'local' });
  });
});

describe('router → splitter → resolver', () => {
  test('A2: a router by path prefix and header to currency, with the catch-all route appended', () => {
    const router: ChainRouter = {
      Name: 'payments',
      Routes: [{ Match: { HTTP: { PathPrefix: '/currency', Header: [{ Name: 'group', Exact: 'dev' }] } }, Destination: { Service: 'currency' } }],
    };
    const c = compile('payments', { serviceDefaults: { payments: http, currency: http }, routers: { payments: router } });
    assert.equal(c.StartNode, 'router:payments.default.default');
    assert.equal(c.Default, undefined);
    const routes = c.Nodes[c.StartNode]!.Routes!;
    assert.deepEqual(routes.map((r) => r.NextNode), ['resolver:currency.default.default.dc1', 'resolver:payments.default.default.dc1']);
    assert.deepEqual(routes[1]!.Definition, {
      Match: { HTTP: { PathPrefix: '/' } }, Destination: { Service: 'payments', Namespace: 'default', Partition: 'default' },
    });
    assert.deepEqual(Object.keys(c.Targets), ['currency.default.default.dc1', 'payments.default.default.dc1']);
    assert.equal(c.Targets['currency.default.default.dc1']!.SNI, `currency.default.dc1.internal.${TD}`);
  });

  test('A3: DefaultSubset v1 rewrites the plain route; a route to subset v2 goes straight to its resolver', () => {
    const router: ChainRouter = {
      Name: 'payments',
      Routes: [{ Match: { HTTP: { Header: [{ Name: 'group', Exact: 'test' }] } }, Destination: { Service: 'payments', ServiceSubset: 'v2' } }],
    };
    const c = compile('payments', { serviceDefaults: { payments: http }, routers: { payments: router }, resolvers: { payments: paymentsResolver } });
    assert.deepEqual(c.Nodes[c.StartNode]!.Routes!.map((r) => r.NextNode), [
      'resolver:v2.payments.default.default.dc1', 'resolver:v1.payments.default.default.dc1',
    ]);
    assert.deepEqual(c.Targets['v2.payments.default.default.dc1']!.Subset, { Filter: 'Service.Meta.version == 2' });
    assert.equal(c.Targets['v2.payments.default.default.dc1']!.ServiceSubset, 'v2');
    assert.equal(c.Targets['v1.payments.default.default.dc1']!.SNI, `v1.payments.default.dc1.internal.${TD}`);
    assert.equal(c.Nodes['resolver:v1.payments.default.default.dc1']!.Resolver!.Default, undefined);
  });

  test('A4: a splitter between subsets; a route naming a subset skips the splitter', () => {
    const router: ChainRouter = {
      Name: 'payments',
      Routes: [{ Match: { HTTP: { Header: [{ Name: 'group', Exact: 'test' }] } }, Destination: { ServiceSubset: 'v2' } }],
    };
    const splitter: ChainSplitter = { Name: 'payments', Splits: [{ Weight: 90, ServiceSubset: 'v1' }, { Weight: 10, ServiceSubset: 'v2' }] };
    const c = compile('payments', {
      serviceDefaults: { payments: http }, routers: { payments: router }, splitters: { payments: splitter }, resolvers: { payments: paymentsResolver },
    });
    const routes = c.Nodes[c.StartNode]!.Routes!;
    assert.equal(routes[0]!.NextNode, 'resolver:v2.payments.default.default.dc1');
    assert.equal(routes[1]!.NextNode, 'splitter:payments.default.default');
    assert.deepEqual(c.Nodes['splitter:payments.default.default']!.Splits!.map((s) => [s.Weight, s.NextNode]), [
      [90, 'resolver:v1.payments.default.default.dc1'], [10, 'resolver:v2.payments.default.default.dc1'],
    ]);
  });

  test('a splitter to a service whose resolver has a default subset goes to that subset', () => {
    const splitter: ChainSplitter = { Name: 'web', Splits: [{ Weight: 50 }, { Weight: 50, Service: 'payments' }] };
    const c = compile('web', { serviceDefaults: { web: http, payments: http }, splitters: { web: splitter }, resolvers: { payments: paymentsResolver } });
    assert.deepEqual(c.Nodes[c.StartNode]!.Splits!.map((s) => s.NextNode), [
      'resolver:web.default.default.dc1', 'resolver:v1.payments.default.default.dc1',
    ]);
  });

  test('adjacent splitters are flattened, weights multiplied, the inner splitter node removed', () => {
    const c = compile('web', {
      serviceDefaults: { web: http, a: http, b: http },
      splitters: {
        web: { Name: 'web', Splits: [{ Weight: 50, Service: 'a' }, { Weight: 50 }] },
        a: { Name: 'a', Splits: [{ Weight: 25, Service: 'b' }, { Weight: 75 }] },
      },
    });
    assert.deepEqual(c.Nodes[c.StartNode]!.Splits!.map((s) => [s.Weight, s.NextNode]), [
      [12.5, 'resolver:b.default.default.dc1'], [37.5, 'resolver:a.default.default.dc1'], [50, 'resolver:web.default.default.dc1'],
    ]);
    assert.equal(c.Nodes['splitter:a.default.default'], undefined);
  });

  test('a splitter whose split leads to a service with its own router does not follow the router (only the chain\'s router is consulted)', () => {
    const c = compile('web', {
      serviceDefaults: { web: http, api: http },
      splitters: { web: { Name: 'web', Splits: [{ Weight: 100, Service: 'api' }] } },
      routers: { api: { Name: 'api', Routes: [{ Match: { HTTP: { PathPrefix: '/x' } }, Destination: { Service: 'web' } }] } },
    });
    assert.deepEqual(c.Nodes[c.StartNode]!.Splits!.map((s) => s.NextNode), ['resolver:api.default.default.dc1']);
    assert.equal(Object.keys(c.Nodes).some((k) => k.startsWith('router:')), false);
  });
});

describe('resolvers: redirects, failover, timeouts', () => {
  test('a redirect to another service\'s subset', () => {
    const c = compile('web', {
      resolvers: {
        web: { Name: 'web', Redirect: { Service: 'payments', ServiceSubset: 'v2' } },
        payments: paymentsResolver,
      },
    });
    assert.equal(c.StartNode, 'resolver:v2.payments.default.default.dc1');
    assert.equal(c.Default, undefined);
    assert.deepEqual(Object.keys(c.Targets), ['v2.payments.default.default.dc1']);
  });

  test('a redirect to another datacenter (A5): target, SNI and id name the datacenter', () => {
    const c = compile('currency', { resolvers: { currency: { Name: 'currency', Redirect: { Datacenter: 'cloud' } } } });
    assert.equal(c.StartNode, 'resolver:currency.default.default.cloud');
    assert.equal(c.Targets['currency.default.default.cloud']!.SNI, `currency.default.cloud.internal.${TD}`);
    assert.equal(c.Targets['currency.default.default.cloud']!.Datacenter, 'cloud');
  });

  test('failover of a subset, and the "*" entry for the others', () => {
    const c = compile('payments', {
      resolvers: {
        payments: {
          ...paymentsResolver,
          Failover: { v1: { Datacenters: ['dc2', 'dc1', 'dc3'] }, '*': { Service: 'backup' } },
        },
      },
      serviceDefaults: {},
    });
    const v1 = c.Nodes['resolver:v1.payments.default.default.dc1']!.Resolver!;
    // Never fails over to itself: dc1 is skipped.
    assert.deepEqual(v1.Failover, { Targets: ['v1.payments.default.default.dc2', 'v1.payments.default.default.dc3'] });
    assert.ok(c.Targets['v1.payments.default.default.dc2']);
    assert.equal(c.Nodes['resolver:v1.payments.default.default.dc2'], undefined, 'failover targets are not nodes');
    const d = compile('payments', { resolvers: { payments: { Name: 'payments', Subsets: { v2: {} }, Failover: { '*': { Service: 'backup' } } } } });
    assert.deepEqual(d.Nodes[d.StartNode]!.Resolver!.Failover, { Targets: ['backup.default.default.dc1'] });
  });

  test('failover Targets, each resolved through its own resolver (redirect, default subset)', () => {
    const c = compile('currency', {
      resolvers: {
        currency: { Name: 'currency', Failover: { '*': { Targets: [{ Datacenter: 'cloud' }, { Service: 'payments' }] } } },
        payments: paymentsResolver,
      },
    });
    assert.deepEqual(c.Nodes[c.StartNode]!.Resolver!.Failover!.Targets, ['currency.default.default.cloud', 'v1.payments.default.default.dc1']);
  });

  test('ConnectTimeout and RequestTimeout from the resolver; overrides mark the chain customized', () => {
    const entries: ChainEntries = { resolvers: { web: { Name: 'web', ConnectTimeoutNs: 2e9, RequestTimeoutNs: 15e9 } } };
    const c = compile('web', entries);
    assert.deepEqual(c.Nodes[c.StartNode]!.Resolver, { ConnectTimeout: '2s', RequestTimeout: 15e9, Target: 'web.default.default.dc1' });
    assert.equal(c.Targets['web.default.default.dc1']!.ConnectTimeout, '2s');
    const o = compile('web', entries, { overrideConnectTimeoutNs: 7e9, overrideMeshGateway: { Mode: 'remote' }, overrideProtocol: 'http' });
    assert.equal(o.Nodes[o.StartNode]!.Resolver!.ConnectTimeout, '7s');
    assert.deepEqual(o.Targets['web.default.default.dc1']!.MeshGateway, { Mode: 'remote' });
    assert.equal(o.Protocol, 'http');
    assert.match(o.CustomizationHash ?? '', /^[0-9a-f]{8}$/);
  });

  test('OverrideProtocol tcp drops the router and splitter', () => {
    const c = compile('web', {
      serviceDefaults: { web: http },
      routers: { web: { Name: 'web', Routes: [{ Match: { HTTP: { PathPrefix: '/a' } }, Destination: { Service: 'web' } }] } },
      splitters: { web: { Name: 'web', Splits: [{ Weight: 100 }] } },
    }, { overrideProtocol: 'tcp' });
    assert.equal(c.StartNode, 'resolver:web.default.default.dc1');
    assert.equal(c.Protocol, 'tcp');
    assert.ok(c.CustomizationHash);
  });
});

describe('errors (Consul\'s texts)', () => {
  test('a route to a subset that does not exist', () => {
    assert.equal(compileError('web', {
      serviceDefaults: { web: http },
      routers: { web: { Name: 'web', Routes: [{ Match: { HTTP: { PathPrefix: '/' } }, Destination: { ServiceSubset: 'nope' } }] } },
    }), 'service "web" does not have a subset named "nope"');
  });
  test('circular redirects', () => {
    assert.equal(compileError('a', {
      resolvers: { a: { Name: 'a', Redirect: { Service: 'b' } }, b: { Name: 'b', Redirect: { Service: 'a' } } },
    }), 'detected circular resolver redirect: [a.default.default.dc1 -> b.default.default.dc1 -> a.default.default.dc1]');
  });
  test('splitters that split to each other', () => {
    assert.match(compileError('a', {
      serviceDefaults: { a: http, b: http },
      splitters: { a: { Name: 'a', Splits: [{ Weight: 100, Service: 'b' }] }, b: { Name: 'b', Splits: [{ Weight: 100, Service: 'a' }] } },
    }), /^detected circular reference: \[splitter:a\.default\.default -> splitter:b\.default\.default -> splitter:a\.default\.default\]$/);
  });
  test('a router on a tcp service; inconsistent protocols', () => {
    assert.equal(compileError('web', { routers: { web: { Name: 'web', Routes: [] } } }),
      'discovery chain "web" uses a protocol "tcp" that does not permit advanced routing or splitting behavior');
    assert.equal(compileError('web', {
      serviceDefaults: { web: http, api: { Protocol: 'grpc' } },
      routers: { web: { Name: 'web', Routes: [{ Destination: { Service: 'api' } }] } },
    }), 'discovery chain "web" uses inconsistent protocols; service "api" has "grpc" which is not "http"');
  });
  test('external SNI with subsets', () => {
    assert.equal(compileError('ext', { serviceDefaults: { ext: { ExternalSNI: 'ext.example.com' } }, resolvers: { ext: { Name: 'ext', Subsets: { a: {} } } } }),
      'service "ext" has an external SNI set; cannot define subsets for external services');
  });
});

describe('lookups', () => {
  test('entries are found whatever the case of the name (as Consul\'s state reads are); onRead names what was looked up', () => {
    const read: string[] = [];
    const c = compile('Web', {
      serviceDefaults: { web: http, api: http },
      splitters: { WEB: { Name: 'WEB', Splits: [{ Weight: 100, Service: 'api' }] } },
    }, { onRead: (s) => read.push(s) });
    assert.equal(c.Protocol, 'http');
    assert.deepEqual(c.Nodes[c.StartNode]!.Splits!.map((s) => s.NextNode), ['resolver:api.default.default.dc1']);
    assert.ok(read.includes('Web') && read.includes('api'), read.join(','));
  });
});

describe('50 config entries', () => {
  test('a chain over 50 entries compiles', () => {
    const c = compile('svc0', fiftyEntries());
    assert.equal(c.Nodes[c.StartNode]!.Type, 'router');
  });
});

/** 1 router (10 routes), 16 splitters, 16 resolvers, 17 service-defaults: 50 entries. */
function fiftyEntries(): ChainEntries {
  const serviceDefaults: ChainEntries['serviceDefaults'] & object = {};
  const splitters: Record<string, ChainSplitter> = {};
  const resolvers: Record<string, ChainResolver> = {};
  for (let i = 0; i < 17; i++) (serviceDefaults as Record<string, unknown>)[`svc${i}`] = { Protocol: 'http' };
  for (let i = 0; i < 16; i++) {
    splitters[`svc${i}`] = { Name: `svc${i}`, Splits: [{ Weight: 50, ServiceSubset: 'v1' }, { Weight: 50, Service: `svc${i + 1}` }] };
    resolvers[`svc${i}`] = { Name: `svc${i}`, DefaultSubset: 'v1', Subsets: { v1: { Filter: 'Service.Meta.version == 1' }, v2: { Filter: 'Service.Meta.version == 2' } }, Failover: { '*': { Datacenters: ['dc2'] } } };
  }
  const routes = Array.from({ length: 10 }, (_, i) => ({ Match: { HTTP: { PathPrefix: `/r${i}` } }, Destination: { Service: `svc${i}` } }));
  return { serviceDefaults, splitters, resolvers, routers: { svc0: { Name: 'svc0', Routes: routes } } };
}

// ---- property test: the compiled chain reaches what a naive one-request evaluator picks ----

const SERVICES = ['a', 'b', 'c'];
const SUBSETS = ['x', 'y'];

/**
 * Resolves one request by reading the entries directly: the chain's router (first route that
 * matches, else the service), then splitters (any split with weight > 0, chosen by `pick`), then the
 * resolver's redirect and default subset. Returns every target id it can end at.
 */
function naiveTargets(service: string, e: ChainEntries, req: HttpRequestInfo): Set<string> {
  const out = new Set<string>();
  const resolve = (svc: string, subset: string, depth: number): void => {
    if (depth > 10) return;
    const r = e.resolvers?.[svc];
    if (r?.Redirect) {
      const ns = r.Redirect.Service && r.Redirect.Service !== svc ? r.Redirect.Service : svc;
      const sub = r.Redirect.ServiceSubset || (ns === svc ? subset : '');
      if (ns !== svc || sub !== subset) return resolve(ns, sub, depth + 1);
    }
    if (subset === '' && r?.DefaultSubset) return resolve(svc, r.DefaultSubset, depth + 1);
    out.add(subset ? `${subset}.${svc}.default.default.dc1` : `${svc}.default.default.dc1`);
  };
  const split = (svc: string, depth: number): void => {
    const sp = e.splitters?.[svc];
    if (!sp || depth > 10) return resolve(svc, '', 0);
    for (const s of sp.Splits ?? []) {
      if (s.Weight <= 0) continue;
      const to = s.Service || svc;
      if (s.ServiceSubset) resolve(to, s.ServiceSubset, 0);
      else if (to === svc) resolve(to, '', 0);
      else split(to, depth + 1);
    }
  };
  const router = e.routers?.[service];
  const route = router?.Routes?.find((r) => naiveMatches(r.Match as never, req));
  if (route) {
    const d = route.Destination ?? {};
    if (d.ServiceSubset) resolve(d.Service || service, d.ServiceSubset, 0);
    else split(d.Service || service, 0);
  } else {
    split(service, 0);
  }
  return out;
}

function naiveMatches(m: { HTTP?: { PathPrefix?: string; Header?: { Name: string; Exact: string }[] } } | undefined, req: HttpRequestInfo): boolean {
  const h = m?.HTTP;
  if (!h) return true;
  if (h.PathPrefix && !req.path.startsWith(h.PathPrefix)) return false;
  return (h.Header ?? []).every((x) => req.headers[x.Name] === x.Exact);
}

/** Targets reachable in the compiled chain for a request: the matched route, then every split with weight > 0. */
function compiledTargets(c: CompiledDiscoveryChain, req: HttpRequestInfo): Set<string> {
  const out = new Set<string>();
  const walk = (name: string): void => {
    const n = c.Nodes[name]!;
    if (n.Type === 'resolver') out.add(n.Resolver!.Target);
    else if (n.Type === 'splitter') for (const s of n.Splits!) if (s.Weight > 0) walk(s.NextNode);
  };
  const choice = matchRoute(c, req);
  walk(choice ? choice.nextNode : c.StartNode);
  return out;
}

describe('property: compiled chain vs a naive evaluator', () => {
  const svc = fc.constantFrom(...SERVICES);
  const subsetOrNone = fc.constantFrom('', ...SUBSETS);
  const match = fc.record({
    HTTP: fc.record({ PathPrefix: fc.constantFrom('/', '/p', '/p/q'), Header: fc.array(fc.record({ Name: fc.constantFrom('h1', 'h2'), Exact: fc.constantFrom('1', '2') }), { maxLength: 2 }) }),
  });
  const router = (name: string) => fc.array(fc.record({ Match: match, Destination: fc.record({ Service: svc, ServiceSubset: subsetOrNone }) }), { maxLength: 4 })
    .map((Routes): ChainRouter => ({ Name: name, Routes }));
  const splitter = (name: string) => fc.array(fc.record({ Weight: fc.constantFrom(0, 10, 50), Service: svc, ServiceSubset: subsetOrNone }), { minLength: 1, maxLength: 3 })
    .map((Splits): ChainSplitter => ({ Name: name, Splits }));
  const resolver = (name: string) => fc.record({
    DefaultSubset: subsetOrNone,
    Redirect: fc.option(fc.record({ Service: svc, ServiceSubset: subsetOrNone }), { nil: undefined }),
  }).map((r): ChainResolver => ({
    Name: name, Subsets: { x: { Filter: 'Service.Meta.v == x' }, y: {} },
    ...(r.DefaultSubset ? { DefaultSubset: r.DefaultSubset } : {}), ...(r.Redirect ? { Redirect: r.Redirect } : {}),
  }));
  const optionalPerService = <T>(gen: (name: string) => fc.Arbitrary<T>) =>
    fc.tuple(...SERVICES.map((s) => fc.option(gen(s), { nil: undefined }))).map((xs) => {
      const out: Record<string, T> = {};
      xs.forEach((x, i) => { if (x !== undefined) out[SERVICES[i]!] = x; });
      return out;
    });
  const entries = fc.record({ routers: optionalPerService(router), splitters: optionalPerService(splitter), resolvers: optionalPerService(resolver) })
    .map((e): ChainEntries => ({ ...e, serviceDefaults: { a: http, b: http, c: http } }));
  const request = fc.record({ path: fc.constantFrom('/', '/p', '/p/q/r', '/z'), h1: fc.constantFrom(undefined, '1', '2'), h2: fc.constantFrom(undefined, '1', '2') })
    .map(({ path, h1, h2 }): HttpRequestInfo => ({ method: 'GET', path, headers: { ...(h1 ? { h1 } : {}), ...(h2 ? { h2 } : {}) }, query: {} }));

  test('every target the naive evaluator can pick is reachable through the route that matches, and vice versa', () => {
    let compiled = 0;
    fc.assert(fc.property(entries, fc.array(request, { minLength: 1, maxLength: 5 }), (e, reqs) => {
      let chain: CompiledDiscoveryChain;
      try {
        chain = compile('a', e);
      } catch (err) {
        // Graphs Consul refuses (cycles, a subset-less redirect target …) are not compared.
        assert.ok(err instanceof ChainCompileError, String(err));
        return;
      }
      compiled++;
      for (const req of reqs) {
        assert.deepEqual([...compiledTargets(chain, req)].sort(), [...naiveTargets('a', e, req)].sort(), JSON.stringify({ e, req }));
      }
    }), { numRuns: 400, seed: 1407 });
    assert.ok(compiled > 100, `only ${compiled} generated chains compiled`);
  });
});
