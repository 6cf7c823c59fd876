// ClientServers: which server a client agent calls, and what it does when one fails. A fake pool
// (member views with Consul's tags) and fake RPC functions; the real ones are covered end to end in
// test/gossip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { ClientServers, NoServersError, serversUnreachable } from '../../src/client/servers.ts';
import { RpcCallError } from '../../src/rpc/errors.ts';
import type { MemberView } from '../../src/gossip/index.ts';
import type { RpcClient } from '../../src/rpc/client.ts';

class FakePool extends EventEmitter {
  views: MemberView[] = [];
  onMembershipChange(fn: () => void): () => void {
    this.on('member-update', fn);
    return () => this.off('member-update', fn);
  }
  memberViews(): MemberView[] {
    return this.views;
  }
  set(members: Array<{ name: string; port: number; state?: MemberView['state']; dc?: string; role?: string }>): void {
    this.views = members.map((m) => ({
      name: m.name, addr: '127.0.0.1', port: 8301, peerId: m.name, incarnation: 1, state: m.state ?? 'alive', stateChangeMs: 0,
      tags: { role: m.role ?? 'consul', dc: m.dc ?? 'dc1', port: String(m.port), id: `id-${m.name}` },
    }));
    this.emit('member-update');
  }
}

const logger = pino({ level: 'silent' });
const refused = (address: string) => new RpcCallError(address, grpc.status.UNAVAILABLE, 'connect ECONNREFUSED', false);

function make(random = () => 0, now?: () => number) {
  const pool = new FakePool();
  const servers = new ClientServers({ pool: pool as never, datacenter: 'dc1', rpc: {} as RpcClient, logger, holdTimeoutMs: 300, random, now });
  return { pool, servers };
}

test('only live servers of this datacenter are used; clients and other datacenters are not', () => {
  const { pool, servers } = make();
  pool.set([
    { name: 's1', port: 8300 }, { name: 's2', port: 8310, state: 'suspect' }, { name: 's3', port: 8320, state: 'dead' },
    { name: 'far', port: 8330, dc: 'dc2' }, { name: 'c1', port: 8340, role: 'node' },
  ]);
  assert.deepEqual(servers.servers().sort(), ['127.0.0.1:8300', '127.0.0.1:8310']);
  servers.close();
});

test('a call fails over to another server when the first cannot be reached, then skips the failed one for a while', async () => {
  const { pool, servers } = make();
  pool.set([{ name: 's1', port: 8300 }, { name: 's2', port: 8310 }]);
  const first = servers.servers()[0]!;
  const calls: string[] = [];
  const down = new Set([first]);
  const fn = async (address: string) => {
    calls.push(address);
    if (down.has(address)) throw refused(address);
    return address;
  };
  const answered = await servers.call('read', { idempotent: true, callMs: 1000 }, fn);
  assert.notEqual(answered, first);
  assert.deepEqual(calls, [first, answered]);
  // The failed server went to the back and is skipped: the next call goes straight to the other one.
  calls.length = 0;
  await servers.call('read', { idempotent: true, callMs: 1000 }, fn);
  assert.deepEqual(calls, [answered]);
  // When every server failed moments ago, one call tries the one whose back-off ends first, and
  // the next calls within a second fail at once, as unreachable.
  down.add(answered);
  await assert.rejects(servers.call('read', { idempotent: true, callMs: 1000 }, fn), (e: unknown) => serversUnreachable(e));
  calls.length = 0;
  await assert.rejects(servers.call('read', { idempotent: true, callMs: 1000 }, fn), (e: unknown) => serversUnreachable(e));
  assert.deepEqual(calls, [first], 'one probe, of the server backed off first');
  calls.length = 0;
  await assert.rejects(servers.call('read', { idempotent: true, callMs: 1000 }, fn), (e: unknown) => serversUnreachable(e) && /none of the 2 known server/.test((e as Error).message));
  assert.deepEqual(calls, [], 'no server was tried again within the probe interval');
  servers.close();
});

test('after a partition heals, calls reach a server within a second, not when the 5 s back-off ends', async () => {
  let now = 1_000_000;
  const { pool, servers } = make(() => 0, () => now);
  pool.set([{ name: 's1', port: 8300 }, { name: 's2', port: 8310 }]);
  let cut = true;
  const calls: string[] = [];
  const fn = async (address: string) => {
    calls.push(address);
    if (cut) throw new RpcCallError(address, grpc.status.DEADLINE_EXCEEDED, 'no answer (partition)', true);
    return address;
  };
  await assert.rejects(servers.call('read', { idempotent: true, callMs: 1000 }, fn));
  assert.equal(calls.length, 2, 'both servers tried while cut off');
  now += 300;
  await assert.rejects(servers.call('read', { idempotent: true, callMs: 1000 }, fn), (e: unknown) => serversUnreachable(e));
  cut = false; // the heal
  now += 200;
  await assert.rejects(servers.call('read', { idempotent: true, callMs: 1000 }, fn), (e: unknown) => serversUnreachable(e),
    'within the probe interval of the last probe: fails at once');
  now += 900;
  calls.length = 0;
  assert.equal(await servers.call('read', { idempotent: true, callMs: 1000 }, fn), '127.0.0.1:8300');
  assert.deepEqual(calls, ['127.0.0.1:8300'], 'the probe reached the healed server, 1.4 s after the cut and well inside its 5 s back-off');
  assert.equal(await servers.call('read', { idempotent: true, callMs: 1000 }, fn), '127.0.0.1:8300', 'and it is used again at once');
  servers.close();
});

test('a write whose outcome is unknown is not sent to a second server; "No cluster leader" is not retried', async () => {
  const { pool, servers } = make();
  pool.set([{ name: 's1', port: 8300 }, { name: 's2', port: 8310 }]);
  let calls = 0;
  const midCall = async (address: string): Promise<string> => {
    calls++;
    throw new RpcCallError(address, grpc.status.UNAVAILABLE, 'connection reset', true);
  };
  await assert.rejects(servers.call('apply', { idempotent: false, callMs: 1000 }, midCall), /connection reset/);
  assert.equal(calls, 1);
  calls = 0;
  const noLeader = async (): Promise<string> => {
    calls++;
    throw Object.assign(new Error('No cluster leader'), { code: 'ERR_NO_LEADER' });
  };
  await assert.rejects(servers.call('apply', { idempotent: false, callMs: 1000 }, noLeader), /No cluster leader/);
  assert.equal(calls, 1);
  servers.close();
});

test('without any known server a call waits for one up to the hold time, then says "No known Consul servers"', async () => {
  const { pool, servers } = make();
  const t0 = performance.now();
  await assert.rejects(servers.call('read', { idempotent: true, callMs: 1000 }, async () => 'x'), (e: unknown) => e instanceof NoServersError && (e as Error).message === 'No known Consul servers');
  assert.ok(performance.now() - t0 >= 250, 'waited for the hold time');
  // waitForServerMs 0 (the agent's own writes): at once.
  const t1 = performance.now();
  await assert.rejects(servers.call('apply', { idempotent: false, callMs: 1000, waitForServerMs: 0 }, async () => 'x'), NoServersError);
  assert.ok(performance.now() - t1 < 250, 'failed before the 300 ms hold time: it did not wait');
  // A server appearing while a call waits lets it go on.
  const pending = servers.call('read', { idempotent: true, callMs: 1000 }, async (a) => a);
  setTimeout(() => pool.set([{ name: 's1', port: 8300 }]), 50);
  assert.equal(await pending, '127.0.0.1:8300');
  servers.close();
});

test('calls waiting on a server that gossip marks failed end at once: a read moves to another server, a write fails as "may have arrived"', async () => {
  const { pool, servers } = make();
  pool.set([{ name: 's1', port: 8300 }, { name: 's2', port: 8310 }]);
  const first = servers.servers()[0]!;
  const other = servers.servers()[1]!;
  // The first server hangs (frozen): a call to it only ends when its signal aborts.
  let hanging = 0;
  const fn = (address: string, call: { signal?: AbortSignal }) => new Promise<string>((resolve, reject) => {
    if (address !== first) { resolve(address); return; }
    hanging++;
    call.signal!.addEventListener('abort', () => reject(call.signal!.reason), { once: true });
  });
  const read = servers.call('read', { idempotent: true, callMs: 60_000 }, fn);
  const write = servers.call('apply', { idempotent: false, callMs: 60_000 }, fn);
  // Both calls are in flight on the frozen server.
  for (let i = 0; i < 500 && hanging < 2; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(hanging, 2, 'both calls reached the frozen server');
  const name = first.endsWith(':8300') ? 's1' : 's2';
  pool.set([{ name, port: Number(first.split(':')[1]), state: 'dead' }, { name: name === 's1' ? 's2' : 's1', port: Number(other.split(':')[1]) }]);
  assert.equal(await read, other);
  const err = await write.then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof RpcCallError && err.mayHaveArrived, String(err));
  assert.match((err as Error).message, /failed or left while the call was in flight/);
  servers.close();
});

test('when gossip suspects the server a call waits on, a read moves to another server at once and a write keeps waiting; new calls prefer the other server', async () => {
  const { pool, servers } = make();
  pool.set([{ name: 's1', port: 8300 }, { name: 's2', port: 8310 }]);
  const first = servers.servers()[0]!;
  const other = servers.servers()[1]!;
  let hanging = 0;
  let writeSignal: AbortSignal | undefined;
  const fn = (address: string, call: { signal?: AbortSignal }) => new Promise<string>((resolve, reject) => {
    if (address !== first) { resolve(address); return; }
    hanging++;
    call.signal!.addEventListener('abort', () => reject(call.signal!.reason), { once: true });
  });
  const read = servers.call('read', { idempotent: true, callMs: 60_000 }, fn);
  const write = servers.call('apply', { idempotent: false, callMs: 60_000 }, (address, call) => { writeSignal = call.signal; return fn(address, call); });
  for (let i = 0; i < 500 && hanging < 2; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(hanging, 2, 'both calls reached the unanswering server');
  // Suspicion raises no membership event: the views change silently, as the gossip core's do.
  const name = first.endsWith(':8300') ? 's1' : 's2';
  pool.views = pool.views.map((v) => (v.name === name ? { ...v, state: 'suspect' } : v));
  const t0 = Date.now();
  assert.equal(await read, other);
  assert.ok(Date.now() - t0 < 2000, `the read moved after ${Date.now() - t0} ms`);
  assert.equal(servers.servers()[0], other, 'the suspected server went to the back of the line');
  assert.equal(writeSignal?.aborted, false, 'a write that may have arrived is not ended by a suspicion');
  // The suspected server stays usable (suspicion is not failure); the write still ends with it.
  pool.set([{ name, port: Number(first.split(':')[1]), state: 'dead' }, { name: name === 's1' ? 's2' : 's1', port: Number(other.split(':')[1]) }]);
  const err = await write.then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof RpcCallError && err.mayHaveArrived, String(err));
  servers.close();
});
