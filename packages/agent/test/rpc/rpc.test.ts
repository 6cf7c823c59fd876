// Server RPC plumbing (rpc/server.ts, client.ts, errors.ts) on loopback: errors keep
// their code across the wire, a call that never connected says so, restores stream in chunks.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RpcServer, type RpcHandlers } from '../../src/rpc/server.ts';
import { RpcClient } from '../../src/rpc/client.ts';
import { RemoteError, RpcCallError } from '../../src/rpc/errors.ts';
import { NotLeaderError } from '@trellis/raft';
import { quietLogger } from '../server/helpers.ts';
import { freePort } from '../../../../test/support/ports.ts';


const fail = (code: string, message: string) => Object.assign(new Error(message), { code });

describe('server RPC', () => {
  let server: RpcServer;
  let client: RpcClient;
  let addr: string;
  let restored: Buffer | undefined;
  /** Writes the silent-leader handler (0xfe) has received. */
  let silentWrites = 0;

  before(async () => {
    const handlers: RpcHandlers = {
      status: () => ({ server: { id: 'srv', name: 'srv' }, term: 7, lastContactMs: -1 }),
      apply: () => { throw new NotLeaderError('lead-id', '10.0.0.1:8300'); },
      readIndex: (req) => ({ index: req.consistent ? 42 : 41 }),
      renewSession: () => { throw fail('ERR_NO_LEADER', 'No cluster leader'); },
      addPeer: () => { throw fail('ERR_VALIDATION', 'bad peer'); },
      removePeer: async () => { throw new Error('plain error without a code'); },
      transferLeader: () => ({ id: 'x' }),
      autopilotHealth: () => ({ json: Buffer.from('{}') }),
      http: (req) => ({ status: 201, headers: { ...req.headers, 'x-method': req.method ?? '', 'x-url': req.url ?? '' }, body: req.body }),
      nodeState: (req) => ({ json: Buffer.from(`node=${req.node}`) }),
      restore: async (data) => { restored = data; return { index: data.length }; },
      signIntermediate: () => { throw fail('ERR_VALIDATION', 'not in this test'); },
      // Echo after a delay given by the first byte (answers come back out of order); 0xff fails.
      applyFrame: async (command) => {
        if (command[0] === 0xff) throw new NotLeaderError('lead-id', '10.0.0.2:8300');
        // 0xfe: a leader that went silent (frozen) and never answers.
        if (command[0] === 0xfe) { silentWrites++; return new Promise<Buffer>(() => {}); }
        await new Promise((r) => setTimeout(r, command[0]));
        return command;
      },
    };
    const port = await freePort();
    addr = `127.0.0.1:${port}`;
    server = new RpcServer({ listen: addr, handlers, logger: quietLogger });
    await server.bind();
    client = new RpcClient({ logger: quietLogger });
  });
  after(async () => {
    client.close();
    await server.stop();
  });

  const opts = () => ({ deadline: Date.now() + 3000, connectTimeoutMs: 1000 });

  test('Forward.Http carries method, URL, header map and body bytes both ways', async () => {
    const body = Buffer.from([0, 1, 2, 255]);
    const res = await client.call(addr, 'Forward.Http', { method: 'PUT', url: '/v1/kv/a?cas=0', headers: { 'content-type': 'application/octet-stream', 'x-consul-token': 't' }, body }, { deadline: Date.now() + 5000 });
    assert.equal(res.status, 201);
    assert.deepEqual(res.headers, { 'content-type': 'application/octet-stream', 'x-consul-token': 't', 'x-method': 'PUT', 'x-url': '/v1/kv/a?cas=0' });
    assert.deepEqual(Buffer.from(res.body ?? []), body);
    const ns = await client.call(addr, 'Forward.NodeState', { node: 'web-1' }, { deadline: Date.now() + 5000 });
    assert.equal(Buffer.from(ns.json ?? []).toString(), 'node=web-1');
  });

  test('a unary call returns the typed response (64-bit fields as numbers, -1 kept)', async () => {
    const r = await client.call(addr, 'Status.Status', {}, opts());
    assert.equal(r.server?.id, 'srv');
    assert.equal(r.term, 7);
    assert.equal(r.lastContactMs, -1);
    assert.equal((await client.call(addr, 'Forward.ReadIndex', { consistent: true }, opts())).index, 42);
  });

  test('a handler error arrives with its code, text and the leader it named', async () => {
    await assert.rejects(client.call(addr, 'Forward.Apply', { command: Buffer.from([1]) }, opts()), (err: RemoteError) => {
      assert.ok(err instanceof RemoteError);
      assert.equal(err.code, 'ERR_NOT_LEADER');
      assert.equal(err.details['leader-address'], '10.0.0.1:8300');
      return true;
    });
    await assert.rejects(client.call(addr, 'Forward.RenewSession', { id: 's' }, opts()), { code: 'ERR_NO_LEADER', message: 'No cluster leader' });
    await assert.rejects(client.call(addr, 'Operator.RemovePeer', {}, opts()), { code: 'ERR_INTERNAL', message: 'plain error without a code' });
  });

  test('a call to a closed port fails as "never sent" within the connect timeout', async () => {
    const closed = `127.0.0.1:${await freePort()}`;
    const t0 = Date.now();
    await assert.rejects(client.call(closed, 'Status.Status', {}, { deadline: Date.now() + 10_000, connectTimeoutMs: 500 }), (err: RpcCallError) => {
      assert.ok(err instanceof RpcCallError);
      assert.equal(err.mayHaveArrived, false);
      assert.match(err.message, /^rpc error making call: 127\.0\.0\.1:\d+: /);
      return true;
    });
    assert.ok(Date.now() - t0 < 2000);
  });

  test('an aborted call rejects with the abort reason', async () => {
    const ac = new AbortController();
    ac.abort(new Error('client went away'));
    await assert.rejects(client.call(addr, 'Status.Status', {}, { ...opts(), signal: ac.signal }), /client went away/);
  });

  test('forwarded writes share one stream; each answer finds its caller, in any order', async () => {
    const delays = [30, 1, 15, 0, 7];
    const results = await Promise.all(delays.map((d, i) => client.apply(addr, Buffer.from([d, i]), opts())));
    assert.deepEqual(results.map((r) => [...r]), delays.map((d, i) => [d, i]));
    await assert.rejects(client.apply(addr, Buffer.from([0xff]), opts()), (err: RemoteError) => {
      assert.equal(err.code, 'ERR_NOT_LEADER');
      assert.equal(err.details['leader-address'], '10.0.0.2:8300');
      return true;
    });
    // The stream survives an error frame.
    assert.deepEqual([...(await client.apply(addr, Buffer.from([0, 9]), opts()))], [0, 9]);
  });

  test('a forwarded write without an answer by its deadline fails as "may have arrived"', async () => {
    await assert.rejects(client.apply(addr, Buffer.from([200]), { deadline: Date.now() + 50 }), (err: RpcCallError) => {
      assert.equal(err.code, 'ERR_RPC_TIMEOUT');
      assert.equal(err.mayHaveArrived, true);
      return true;
    });
  });

  test('abandoning the writes waiting on a silent leader fails them at once as "may have arrived"; the next write opens a new stream', async () => {
    const t0 = Date.now();
    const seen = silentWrites;
    const pending = client.apply(addr, Buffer.from([0xfe]), { deadline: Date.now() + 30_000 });
    // In flight: the silent leader has it.
    for (let i = 0; i < 500 && silentWrites === seen; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(silentWrites, seen + 1, 'the write reached the silent leader');
    client.abandonApplies(addr, 'the leader changed while the write was in flight');
    const err = await pending.then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof RpcCallError, String(err));
    assert.equal(err.mayHaveArrived, true);
    assert.match(err.message, /the leader changed while the write was in flight/);
    assert.ok(Date.now() - t0 < 25_000, 'failed when abandoned, not at its 30 s deadline');
    assert.deepEqual(await client.apply(addr, Buffer.from([1, 2]), { deadline: Date.now() + 5000 }), Buffer.from([1, 2]));
  });

  test('a restore upload arrives whole, across several chunks', async () => {
    const data = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < data.length; i++) data[i] = i % 251;
    const r = await client.restore(addr, data, { deadline: Date.now() + 10_000 });
    assert.equal(r.index, data.length);
    assert.ok(restored?.equals(data));
  });
});
