// The client agent's DNS lookups: forwarded HTTP reads. First against a fake server (the exact
// requests, parsing, every way an answer can be wrong), then against the real HTTP API over a real
// state store, as a server runs a forwarded request, and through the DNS resolver.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decode, encode, type SrvData } from 'dns-packet';
import { clientDnsLookup } from '../../src/client/dnsLookup.ts';
import { DEFAULT_SOA, domainLabels, resolve } from '../../src/dns/index.ts';
import type { ForwardedRequest, ForwardedResponse } from '../../src/http/forward.ts';
import { harness } from '../http/helpers.ts';
import { question } from '../dns/helpers.ts';

type Answer = { status: number; body: string } | Error;

/** A server that answers each URL from a table, recording the requests and their signals. */
function fakeServers(answers: Record<string, Answer>) {
  const requests: ForwardedRequest[] = [];
  const signals: AbortSignal[] = [];
  return {
    requests,
    signals,
    async http(req: ForwardedRequest, signal: AbortSignal): Promise<ForwardedResponse> {
      requests.push(req);
      signals.push(signal);
      const a = answers[req.url];
      if (a === undefined) return { status: 404, headers: {}, body: Buffer.from(`no route for ${req.url}`) };
      if (a instanceof Error) throw a;
      return { status: a.status, headers: { 'content-type': 'application/json' }, body: Buffer.from(a.body) };
    },
  };
}

const row = (node: string, nodeAddress: string, port: number, serviceAddress = '', dc = 'dc1') => ({
  Node: { ID: '', Node: node, Address: nodeAddress, Datacenter: dc, TaggedAddresses: {}, Meta: {} },
  Service: { ID: `web-${port}`, Service: 'web', Tags: ['v1'], Address: serviceAddress, Port: port },
  Checks: [{ Node: node, CheckID: 'serfHealth', Status: 'passing' }],
});

describe('clientDnsLookup against a fake server', () => {
  test('service instances: GET /v1/health/service/<name>?passing&stale[&tag=], rows to instances', async () => {
    const rows = JSON.stringify([row('c1', '10.0.0.1', 8080), row('c2', '10.0.0.2', 8081, '10.9.9.9', '')]);
    const fake = fakeServers({
      '/v1/health/service/web?passing&stale': { status: 200, body: rows },
      '/v1/health/service/web?passing&stale&tag=v1': { status: 200, body: rows },
      '/v1/health/service/none?passing&stale': { status: 200, body: '[]' },
    });
    const lookup = clientDnsLookup(fake, 'dc1');
    const want = [
      { node: 'c1', nodeAddress: '10.0.0.1', serviceAddress: '', port: 8080, datacenter: 'dc1' },
      { node: 'c2', nodeAddress: '10.0.0.2', serviceAddress: '10.9.9.9', port: 8081, datacenter: 'dc1' },
    ];
    assert.deepEqual(await lookup.serviceInstances('web', undefined), want);
    assert.deepEqual(await lookup.serviceInstances('web', 'v1'), want);
    assert.deepEqual(await lookup.serviceInstances('none', undefined), []);
    assert.deepEqual(fake.requests.map((r) => [r.method, r.url, r.body.length]), [
      ['GET', '/v1/health/service/web?passing&stale', 0],
      ['GET', '/v1/health/service/web?passing&stale&tag=v1', 0],
      ['GET', '/v1/health/service/none?passing&stale', 0],
    ]);
    // Every request is bounded in time.
    assert.ok(fake.signals.every((s) => s instanceof AbortSignal && !s.aborted));
  });

  test('names and tags are URL-encoded', async () => {
    const fake = fakeServers({
      '/v1/health/service/a%20b%2Fc%3Fd?passing&stale&tag=x%26y%3Dz': { status: 200, body: '[]' },
      '/v1/catalog/node/n%2F1%23?stale': { status: 200, body: 'null' },
    });
    const lookup = clientDnsLookup(fake, 'dc1');
    assert.deepEqual(await lookup.serviceInstances('a b/c?d', 'x&y=z'), []);
    assert.equal(await lookup.node('n/1#'), undefined);
    assert.equal(fake.requests.length, 2);
  });

  test('node: GET /v1/catalog/node/<name>?stale; null and 404 are no such node', async () => {
    const fake = fakeServers({
      '/v1/catalog/node/c1?stale': { status: 200, body: JSON.stringify({ Node: { Node: 'C1', Address: '127.0.0.1', Datacenter: 'dc1' }, Services: {} }) },
      '/v1/catalog/node/ext?stale': { status: 200, body: JSON.stringify({ Node: { Node: 'ext', Address: 'db.example.com', Datacenter: '' }, Services: {} }) },
      '/v1/catalog/node/ghost?stale': { status: 200, body: 'null' },
      '/v1/catalog/datacenters': { status: 200, body: '["dc7","dc9"]' },
    });
    const lookup = clientDnsLookup(fake, 'dc7');
    assert.deepEqual(await lookup.node('c1'), { node: 'C1', address: '127.0.0.1', datacenter: 'dc1' });
    assert.deepEqual(await lookup.node('ext'), { node: 'ext', address: 'db.example.com', datacenter: 'dc7' });
    assert.equal(await lookup.node('ghost'), undefined);
    assert.equal(await lookup.node('gone'), undefined); // the fake's 404
    assert.deepEqual(fake.requests.map((r) => r.url), ['/v1/catalog/node/c1?stale', '/v1/catalog/node/ext?stale', '/v1/catalog/node/ghost?stale', '/v1/catalog/node/gone?stale']);
    // The servers know the other datacenters (WAN pool).
    assert.deepEqual(await lookup.datacenters(), ['dc7', 'dc9']);
    assert.equal(fake.requests.at(-1)!.url, '/v1/catalog/datacenters');
  });

  test('remote(dc): the same reads with &dc=<dc>, for the server to forward', async () => {
    const fake = fakeServers({
      '/v1/health/service/web?passing&stale&dc=dc9': { status: 200, body: JSON.stringify([row('far', '10.9.0.1', 8080, '', 'dc9')]) },
      '/v1/catalog/node/far?stale&dc=dc9': { status: 200, body: JSON.stringify({ Node: { Node: 'far', Address: '10.9.0.1', Datacenter: 'dc9' }, Services: {} }) },
    });
    const remote = clientDnsLookup(fake, 'dc7').remote!('dc9');
    assert.deepEqual((await remote.serviceInstances('web', undefined)).map((i) => [i.node, i.port, i.datacenter]), [['far', 8080, 'dc9']]);
    assert.deepEqual(await remote.node('far'), { node: 'far', address: '10.9.0.1', datacenter: 'dc9' });
  });

  test('a failed or malformed answer throws, naming the request and what was wrong', async () => {
    const fake = fakeServers({
      '/v1/health/service/err?passing&stale': { status: 500, body: 'No cluster leader\n' },
      '/v1/health/service/html?passing&stale': { status: 200, body: '<html>' },
      '/v1/health/service/obj?passing&stale': { status: 200, body: '{"Node":{}}' },
      '/v1/health/service/noport?passing&stale': { status: 200, body: JSON.stringify([{ Node: { Node: 'c1' }, Service: { Port: '80' } }]) },
      '/v1/health/service/down?passing&stale': new Error('No known Consul servers'),
      '/v1/catalog/node/err?stale': { status: 403, body: 'Permission denied' },
      '/v1/catalog/node/odd?stale': { status: 200, body: '{"Node":{"Address":"10.0.0.1"}}' },
    });
    const lookup = clientDnsLookup(fake, 'dc1');
    await assert.rejects(async () => lookup.serviceInstances('err', undefined), /GET \/v1\/health\/service\/err\?passing&stale: the server answered 500: No cluster leader$/);
    await assert.rejects(async () => lookup.serviceInstances('html', undefined), /health\/service\/html.*malformed: not JSON/);
    await assert.rejects(async () => lookup.serviceInstances('obj', undefined), /malformed: not a list/);
    await assert.rejects(async () => lookup.serviceInstances('noport', undefined), /malformed: an instance has no Node.Node or numeric Service.Port/);
    await assert.rejects(async () => lookup.serviceInstances('down', undefined), /^Error: No known Consul servers$/);
    await assert.rejects(async () => lookup.node('err'), /catalog\/node\/err\?stale: the server answered 403: Permission denied/);
    await assert.rejects(async () => lookup.node('odd'), /malformed: no Node.Node/);
  });

  test('a server that never answers fails the lookup after 5 s, naming the wait', async () => {
    const hung = {
      http: (req: ForwardedRequest, signal: AbortSignal) =>
        new Promise<ForwardedResponse>((_res, rej) => signal.addEventListener('abort', () => rej(new Error('No known Consul servers')), { once: true })),
    };
    const started = Date.now();
    await assert.rejects(async () => clientDnsLookup(hung, 'dc1').node('c1'), /catalog\/node\/c1\?stale: no answer from a server within 5000 ms \(No known Consul servers\)/);
    const took = Date.now() - started;
    assert.ok(took >= 4900 && took < 8000, `${took} ms`);
  });
});

describe('clientDnsLookup against the real HTTP API', () => {
  test('a service registered as "Web" with tag "Primary" is found by its lower-cased names; failing instances are not', async () => {
    const h = harness();
    try {
      h.apply({
        type: 'catalogRegister', Node: 'C1', Address: '10.0.0.1', Datacenter: 'dc1',
        Service: { ID: 'web1', Service: 'Web', Tags: ['Primary'], Port: 8080 },
        Checks: [{ CheckID: 'web1-ok', Name: 'ok', ServiceID: 'web1', Status: 'passing' }],
      });
      h.apply({
        type: 'catalogRegister', Node: 'c2', Address: '10.0.0.2', Datacenter: 'dc1',
        Service: { ID: 'web2', Service: 'Web', Tags: ['Primary'], Port: 8081 },
        Checks: [{ CheckID: 'web2-bad', Name: 'bad', ServiceID: 'web2', Status: 'critical' }],
      });
      const seen: string[] = [];
      const servers = {
        // What a server does with a forwarded request: run it through its own HTTP API.
        async http(req: ForwardedRequest): Promise<ForwardedResponse> {
          const res = await h.req(req.method, req.url);
          seen.push(`${req.url} ${String(res.headers['x-consul-effective-consistency'] ?? '')}`);
          return { status: res.statusCode, headers: {}, body: res.rawPayload };
        },
      };
      const lookup = clientDnsLookup(servers, 'dc1');
      const c1 = { node: 'C1', nodeAddress: '10.0.0.1', serviceAddress: '', port: 8080, datacenter: 'dc1' };
      assert.deepEqual(await lookup.serviceInstances('web', undefined), [c1]);
      assert.deepEqual(await lookup.serviceInstances('web', 'primary'), [c1]);
      assert.deepEqual(await lookup.serviceInstances('web', 'secondary'), []);
      assert.deepEqual(await lookup.serviceInstances('nope', undefined), []);
      assert.deepEqual(await lookup.node('c1'), { node: 'C1', address: '10.0.0.1', datacenter: 'dc1' });
      assert.equal(await lookup.node('ghost'), undefined);
      assert.ok(seen.every((s) => s.endsWith(' stale')), `every read is stale: ${seen.join('; ')}`);

      // And through the resolver, as the client agent's DNS server answers.
      const ctx = { config: { domain: domainLabels('consul.'), datacenter: 'dc1', ttlSeconds: 0, soa: DEFAULT_SOA }, lookup, random: Math.random, now: Date.now };
      const ask = async (name: string, type: string) => decode(encode((await resolve(decode(encode(question(name, type))), ctx)).response));
      const srv = await ask('web.service.consul', 'SRV');
      assert.deepEqual(srv.answers.map((a) => [(a.data as SrvData).port, (a.data as SrvData).target]), [[8080, 'C1.node.dc1.consul']]);
      assert.deepEqual((await ask('c1.node.consul', 'A')).answers.map((a) => a.data), ['10.0.0.1']);
      assert.equal((await ask('ghost.node.consul', 'A')).rcode, 'NXDOMAIN');
    } finally {
      await h.close();
    }
  });
});
