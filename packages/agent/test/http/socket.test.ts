// Over a real TCP socket, driven by an existing Consul client library from npm (`consul`), plus raw
// requests that `inject` would normalise away.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import Consul from 'consul';
import { harness, NODE } from './helpers.ts';

function rawRequest(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.end(request));
    let out = '';
    sock.on('data', (d) => (out += d.toString()));
    sock.on('end', () => resolve(out));
    sock.on('error', reject);
  });
}

test('the npm consul client drives kv, agent, catalog, health, session and txn', async () => {
  const h = harness();
  const { port } = await h.server.listen();
  try {
    // The client's typings are narrower than what it accepts and returns (txn ops, KV Session);
    // the assertions below check the shapes themselves.
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const consul: any = new Consul({ host: '127.0.0.1', port });

    assert.equal(await consul.status.leader(), '127.0.0.1:8300');

    assert.equal(await consul.kv.set('app/config', 'hello'), true);
    const got = await consul.kv.get('app/config');
    assert.equal(got.Value, 'hello');
    assert.deepEqual(await consul.kv.keys('app/'), ['app/config']);
    assert.equal(await consul.kv.get('missing'), undefined);
    // The client maps a `false` body to undefined (it does so against Consul too); what matters is
    // that the stale CAS did not write.
    await consul.kv.set({ key: 'app/config', value: 'x', cas: 999 });
    assert.equal((await consul.kv.get('app/config')).Value, 'hello');

    await consul.agent.service.register({ name: 'web', port: 8080, tags: ['v1'], check: { ttl: '30s' } });
    const services = await consul.agent.service.list();
    assert.equal(services.web.Port, 8080);
    await consul.agent.check.pass({ id: 'service:web', note: 'ok' });
    assert.deepEqual(await consul.catalog.service.list(), { web: ['v1'] });
    const healthy = await consul.health.service({ service: 'web', passing: true });
    assert.equal(healthy.length, 1);
    assert.equal(healthy[0].Node.Node, NODE);

    const session = await consul.session.create({ ttl: '15s', behavior: 'release' });
    assert.equal(await consul.kv.set({ key: 'lock', value: 'me', acquire: session.ID }), true);
    const other = await consul.session.create({});
    await consul.kv.set({ key: 'lock', value: 'you', acquire: other.ID });
    assert.equal((await consul.kv.get('lock')).Session, session.ID);
    const renewed = await consul.session.renew(session.ID);
    assert.equal(renewed[0].ID, session.ID);
    await consul.session.destroy(session.ID);

    const txn = await consul.transaction.create([
      { KV: { Verb: 'set', Key: 'txn/a', Value: Buffer.from('1').toString('base64') } },
      { KV: { Verb: 'get', Key: 'txn/a' } },
    ]);
    assert.equal(txn.Results.length, 2);

    await consul.agent.service.deregister('web');
    assert.deepEqual(await consul.catalog.service.list(), {});
    const members = await consul.agent.members();
    assert.equal(members[0].Name, NODE);
  } finally {
    await h.close();
  }
});

test('raw paths: a `..` in a KV key is 400; the server survives garbage', async () => {
  const h = harness();
  const { port } = await h.server.listen();
  try {
    const traversal = await rawRequest(port, 'GET /v1/kv/a/../b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(traversal, /^HTTP\/1\.1 400/);
    assert.match(traversal, /key contains path traversal sequence/);
    const garbage = await rawRequest(port, 'BLAH\r\n\r\n');
    assert.match(garbage, /^HTTP\/1\.1 400/);
    const chunked = await rawRequest(port, `PUT /v1/kv/big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n80001\r\n${'a'.repeat(0x80001)}\r\n0\r\n\r\n`);
    assert.match(chunked, /^HTTP\/1\.1 413/);
    assert.match(chunked, /too large, max size: 524288 bytes/);
    assert.equal(h.store.kvGet('big').value, null);
    const ok = await fetch(`http://127.0.0.1:${port}/v1/status/leader`);
    assert.equal(await ok.json(), '127.0.0.1:8300');
  } finally {
    await h.close();
  }
});
