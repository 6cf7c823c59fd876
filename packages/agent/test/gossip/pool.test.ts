// Real libp2p agents in one process on 127.0.0.1, with timings scaled down (probe interval 200 ms)
// so the file runs in well under a minute. The machine may be shared and loaded: assertions wait
// for outcomes with generous deadlines rather than asserting exact timings.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSocket } from 'node:dgram';
import { freePort } from '../../../../test/support/ports.ts';
import { GossipError, GossipPool, parseJoinAddress, pskFromEncryptKey } from '../../src/gossip/index.ts';
import type { AgentMemberRow, PoolUserEvent } from '../../src/gossip/index.ts';
import { decodeMessage, encodeMessage } from '../../src/gossip/core/index.ts';
import type { Message } from '../../src/gossip/core/types.ts';
import { datagramKey, open, seal } from '../../src/gossip/libp2p/datagram.ts';

const FAST = { probeIntervalMs: 200, probeTimeoutMs: 100, gossipIntervalMs: 50, suspicionMult: 4, pushPullIntervalMs: 3000 };
const KEY_A = Buffer.alloc(32, 7).toString('base64');
const KEY_B = Buffer.alloc(32, 9).toString('base64');

async function pool(name: string, extra: Partial<Parameters<typeof GossipPool.create>[0]> = {}): Promise<GossipPool> {
  const p = await GossipPool.create({ nodeName: name, datacenter: 'dc1', bindAddr: '127.0.0.1', port: 0, config: FAST, joinTimeoutMs: 3000, ...extra });
  await p.start();
  return p;
}

async function until(what: string, cond: () => boolean, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > timeoutMs) assert.fail(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return performance.now() - t0;
}

const statusOf = (p: GossipPool, name: string): number | undefined => p.members().find((m) => m.Name === name)?.Status;

/** Sends raw UDP packets to a pool's gossip port from a socket of our own (a stranger's address and port). */
async function sendPackets(to: GossipPool, packets: Uint8Array[]): Promise<void> {
  const [host, port] = to.joinAddress.split(':');
  const sock = createSocket('udp4');
  try {
    for (const p of packets) await new Promise<void>((res, rej) => sock.send(p, Number(port), host, (e) => (e ? rej(e) : res())));
  } finally {
    sock.close();
  }
}

describe('GossipPool on libp2p (6 agents on loopback)', () => {
  const pools: GossipPool[] = [];
  const names = ['n0', 'n1', 'n2', 'n3', 'n4', 'n5'];
  let dataDir = '';
  const memberEvents: { at: string; type: string; member: string }[] = [];

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'trellis-gossip-'));
    for (const n of names) pools.push(await pool(n, n === 'n5' ? { dataDir } : {}));
    for (const [i, p] of pools.entries()) {
      for (const type of ['member-join', 'member-failed', 'member-leave', 'member-update'] as const) {
        p.on(type, (row: AgentMemberRow) => memberEvents.push({ at: names[i]!, type, member: row.Name }));
      }
    }
    const seed = pools[0]!.joinAddress;
    const joined = await Promise.all(pools.slice(1).map((p) => p.join([seed])));
    assert.deepEqual(joined, [1, 1, 1, 1, 1]);
  });

  after(async () => {
    await Promise.all(pools.map((p) => p.stop()));
    await rm(dataDir, { recursive: true, force: true });
  });

  test('all agents converge to the full member list, with Consul member rows', async () => {
    await until('every agent sees 6 alive members', () => pools.every((p) => p.members().filter((m) => m.Status === 1).length === 6), 30_000);
    const row = pools[3]!.members().find((m) => m.Name === 'n1')!;
    assert.equal(row.Addr, '127.0.0.1');
    assert.equal(row.Tags.dc, 'dc1');
    assert.equal(row.Status, 1);
    assert.deepEqual([row.ProtocolMin, row.ProtocolMax, row.ProtocolCur, row.DelegateMin, row.DelegateMax, row.DelegateCur], [1, 5, 2, 2, 5, 4]);
    assert.equal(row.Port, Number(pools[1]!.joinAddress.split(':')[1]));
  });

  test('a user event reaches every agent exactly once', async () => {
    const got: { at: number; ev: PoolUserEvent }[] = [];
    const listeners = pools.map((p, i) => {
      const fn = (ev: PoolUserEvent): void => { got.push({ at: i, ev }); };
      p.on('event', fn);
      return fn;
    });
    const ltime = pools[2]!.fireEvent('deploy', new TextEncoder().encode('v2'));
    await until('6 deliveries', () => got.length >= 6, 10_000);
    // Proves a negative (no duplicate delivery): a few more gossip rounds (200 ms) pass first.
    await new Promise((r) => setTimeout(r, 1000));
    pools.forEach((p, i) => p.off('event', listeners[i]!));
    assert.equal(got.length, 6, 'no duplicates');
    assert.deepEqual(got.map((g) => g.at).sort(), [0, 1, 2, 3, 4, 5]);
    for (const g of got) {
      assert.equal(g.ev.name, 'deploy');
      assert.equal(new TextDecoder().decode(g.ev.payload), 'v2');
      assert.equal(g.ev.ltime, ltime);
    }
    assert.throws(() => pools[0]!.fireEvent('big', new Uint8Array(600)), (e: unknown) => e instanceof GossipError && e.code === 'ERR_EVENT_TOO_LARGE');
  });

  test('malformed packets are refused; pings are answered at their source, never at the address they name; all counted; the agent keeps working', async () => {
    const target = pools[1]!;
    const before = target.stats();
    const n3 = pools[3]!.joinAddress.split(':');
    const [host, port] = target.joinAddress.split(':');
    const stranger = createSocket('udp4');
    const answers: Message[] = [];
    stranger.on('message', (m) => answers.push(decodeMessage(m)));
    await new Promise<void>((r) => stranger.bind(0, '127.0.0.1', () => r()));
    try {
      const packets = [
        new Uint8Array([1, 99, 0, 0]),                                  // unknown message type
        new Uint8Array([7, 7, 7]),                                      // unknown version
        // A ping that asks for the ack to go to someone else (a reflection attempt).
        encodeMessage({ type: 'ping', seq: 101, from: 'n2', replyTo: { name: 'n2', addr: '127.0.0.1', port: 1, peerId: target.peerId }, target: 'n1', updates: [] }),
        // A ping that names n3's real address but comes from ours.
        encodeMessage({ type: 'ping', seq: 102, from: 'n3', replyTo: { name: 'n3', addr: n3[0]!, port: Number(n3[1]), peerId: pools[3]!.peerId }, target: 'n1', updates: [] }),
        // Gossip claiming to be from n3, a live member, sent from an address that is not n3's.
        encodeMessage({ type: 'gossip', from: 'n3', updates: [] }),
      ];
      for (const p of packets) await new Promise<void>((res, rej) => stranger.send(p, Number(port), host, (e) => (e ? rej(e) : res())));
      await until('the packets are processed', () => {
        const s = target.stats();
        return s.malformed >= before.malformed + 2 && s.spoofed >= before.spoofed + 3;
      }, 5000);
      // Both pings were answered, at the address they came from (ours), not at the one they named.
      await until('two acks reach the sender', () => answers.filter((a) => a.type === 'ack').length >= 2, 5000);
      assert.deepEqual(answers.filter((a) => a.type === 'ack').map((a) => (a as { seq: number }).seq).sort(), [101, 102]);
    } finally {
      stranger.close();
    }
    // Still a healthy member: everyone still sees it alive, and it still sees everyone. Proves a
    // negative (the garbage did not get it suspected): several probe rounds pass first.
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(target.members().filter((m) => m.Status === 1).length, 6);
    for (const p of pools) assert.equal(statusOf(p, 'n1'), 1);
  });

  test('an empty datagram (another member\'s port check) is ignored: not malformed, not refused, not answered', async () => {
    const target = pools[2]!;
    const before = target.stats();
    await sendPackets(target, [new Uint8Array(0), new Uint8Array(0)]);
    // Then a malformed packet: once it is counted, the empty ones before it were processed too.
    await sendPackets(target, [new Uint8Array([7, 7, 7])]);
    await until('the malformed packet is counted', () => target.stats().malformed >= before.malformed + 1, 5000);
    const after = target.stats();
    assert.equal(after.malformed, before.malformed + 1, 'only the 3-byte packet is malformed');
    assert.equal(after.framesRefused, before.framesRefused);
  });

  test('graceful leave: the others see left (3), with member-leave and never member-failed', async () => {
    const t = performance.now();
    await pools[4]!.leave();
    assert.ok(performance.now() - t < 5000, 'leave returns once disseminated');
    assert.equal(pools[4]!.localMember().Status, 3);
    await pools[4]!.stop();
    const others = [0, 1, 2, 3, 5].map((i) => pools[i]!);
    await until('everyone sees n4 left', () => others.every((p) => statusOf(p, 'n4') === 3), 5000);
    // Proves a negative (a member that left is never probed into failed): probe rounds pass first.
    await new Promise((r) => setTimeout(r, 1500));
    for (const p of others) assert.equal(statusOf(p, 'n4'), 3, 'a member that left is not probed into failed');
    assert.equal(memberEvents.filter((e) => e.member === 'n4' && e.type === 'member-failed').length, 0);
    assert.equal(memberEvents.filter((e) => e.member === 'n4' && e.at !== 'n4' && e.type === 'member-leave').length, 5);
  });

  test('a stopped agent is detected as failed (4) by every other agent, once each', async () => {
    const n5peer = pools[5]!.peerId;
    // Count from the stop: under load these fast settings may have suspected n5 earlier, and a
    // refuted false death is not what this test is about.
    const eventsBefore = memberEvents.length;
    await pools[5]!.stop();
    const others = [0, 1, 2, 3].map((i) => pools[i]!);
    // Detection bound at these settings: a probe round (≤ 5 × 200 ms), the probe (200 ms), and a
    // suspicion of at most 6 × 4 × 200 ms = 4.8 s; doubled for a loaded machine.
    // The bound is the wait's deadline: until() fails the test when it passes.
    const refusedBefore = others.map((p) => p.stats().probesRefused);
    await until('everyone sees n5 failed', () => others.every((p) => statusOf(p, 'n5') === 4), 15_000);
    assert.equal(memberEvents.slice(eventsBefore).filter((e) => e.member === 'n5' && e.type === 'member-failed').length, 4);
    // n5's port is closed while its host (loopback) is up: the port checks that ride the pings
    // heard "port unreachable", and the probes failed at once rather than at their timeout.
    const refused = others.reduce((a, p, i) => a + p.stats().probesRefused - refusedBefore[i]!, 0);
    assert.ok(refused >= 1, `probes refused by n5's host: ${refused}`);

    // Restarted with the same data dir it has the same identity, refutes its death and is alive again.
    const again = await pool('n5', { dataDir });
    pools[5] = again;
    assert.equal(again.peerId, n5peer, 'peer key kept in <data-dir>/gossip/peer-key');
    const st = await stat(join(dataDir, 'gossip', 'peer-key'));
    assert.equal(st.mode & 0o777, 0o600);
    await again.join([pools[0]!.joinAddress]);
    await until('everyone sees n5 alive again', () => others.every((p) => statusOf(p, 'n5') === 1), 15_000);
  });

  test('an agent of another datacenter is refused by the LAN pool and learns nothing', async () => {
    // A long join timeout: on a loaded machine the handshake alone can take seconds, and this test
    // is about the refusal that follows it.
    const foreign = await pool('x1', { datacenter: 'dc2', joinTimeoutMs: 15_000 });
    try {
      await assert.rejects(foreign.join([pools[0]!.joinAddress]), (e: unknown) => e instanceof GossipError && /datacenter "dc2"/.test(e.message));
      assert.equal(statusOf(pools[0]!, 'x1'), undefined);
      assert.deepEqual(foreign.members().map((m) => m.Name), ['x1']);
    } finally {
      await foreign.stop();
    }
  });
});

describe('SWIM packets from the -bind address', () => {
  test('agents bound to their own loopback addresses probe each other over UDP from those addresses (no packet refused as spoofed)', async () => {
    // Linux routes all of 127/8 to lo; an unbound socket would send from 127.0.0.1, which the
    // receiver would refuse: a live member's packets must come from its own address and port.
    const a = await pool('b2', { bindAddr: '127.0.0.2' });
    const b = await pool('b3', { bindAddr: '127.0.0.3' });
    try {
      assert.equal(a.joinAddress.split(':')[0], '127.0.0.2');
      assert.equal(await b.join([a.joinAddress]), 1);
      await until('five answered probes each way', () => [a, b].every((p) => p.stats().probes - p.stats().probesFailed >= 5), 10_000);
      assert.equal(statusOf(a, 'b3'), 1);
      assert.equal(statusOf(b, 'b2'), 1);
      assert.equal(a.stats().spoofed + b.stats().spoofed, 0);
    } finally {
      await Promise.all([a, b].map((p) => p.stop()));
    }
  });

  test('a serf port whose UDP side is taken fails the start naming it, and frees the TCP side', async () => {
    const port = await freePort({ udp: true });
    const holder = createSocket('udp4');
    await new Promise<void>((r) => holder.bind(port, '127.0.0.1', () => r()));
    try {
      const p = await GossipPool.create({ nodeName: 'busy', datacenter: 'dc1', bindAddr: '127.0.0.1', port });
      await assert.rejects(p.start(), (e: unknown) => e instanceof GossipError && e.message.includes(`cannot listen for gossip packets on udp 127.0.0.1:${port}`) && /EADDRINUSE/.test(e.message));
    } finally {
      holder.close();
    }
    // Nothing of the failed start holds the port: a pool starts on it now.
    const again = await pool('free', { port });
    try {
      assert.equal(again.joinAddress, `127.0.0.1:${port}`);
    } finally {
      await again.stop();
    }
  });
});

describe('gossip encryption (-encrypt → libp2p private network)', () => {
  test('agents with a wrong key or no key cannot join (the handshake stalls: "gossip key mismatch?") and learn nothing', async () => {
    const a = await pool('k0', { encryptKey: KEY_A });
    const wrong = await pool('k1', { encryptKey: KEY_B, joinTimeoutMs: 1500 });
    const none = await pool('k2', { joinTimeoutMs: 1500 });
    const right = await pool('k3', { encryptKey: KEY_A });
    try {
      const [w, n] = await Promise.allSettled([wrong.join([a.joinAddress]), none.join([a.joinAddress])]);
      for (const r of [w, n]) {
        assert.equal(r.status, 'rejected');
        const err = (r as PromiseRejectedResult).reason as GossipError;
        assert.equal(err.code, 'ERR_KEY_MISMATCH', err.message);
        // Depending on timing the handshake stalls until the timeout or the other side cuts it off.
        assert.match(err.message, /(no answer within 1500 ms — the connection handshake stalled|the connection handshake failed: .*) \(gossip key mismatch\?\)/);
      }
      assert.deepEqual(wrong.members().map((m) => m.Name), ['k1']);
      assert.deepEqual(none.members().map((m) => m.Name), ['k2']);
      assert.equal(await right.join([a.joinAddress]), 1);
      await until('k0 and k3 see each other', () => statusOf(a, 'k3') === 1 && statusOf(right, 'k0') === 1, 10_000);
      assert.equal(statusOf(a, 'k1'), undefined);
      assert.equal(statusOf(a, 'k2'), undefined);
    } finally {
      await Promise.all([a, wrong, none, right].map((p) => p.stop()));
    }
  });

  test('with -encrypt, SWIM packets are sealed (AES-GCM under the key): plaintext or another key\'s packets are refused and counted', async () => {
    const a = await pool('e0', { encryptKey: KEY_A });
    const b = await pool('e1', { encryptKey: KEY_A });
    try {
      assert.equal(await b.join([a.joinAddress]), 1);
      // The two probe each other over sealed packets: both stay alive through several probe rounds.
      await until('e0 and e1 see each other', () => statusOf(a, 'e1') === 1 && statusOf(b, 'e0') === 1, 10_000);
      // A probe that did not fail was answered by a sealed ack.
      await until('five answered probes each way', () => [a, b].every((p) => p.stats().probes - p.stats().probesFailed >= 5), 10_000);
      assert.equal(statusOf(a, 'e1'), 1);
      const before = a.stats();
      const ping = encodeMessage({ type: 'gossip', from: 'stranger', updates: [] });
      await sendPackets(a, [ping, seal(datagramKey(KEY_B), ping), seal(datagramKey(KEY_A), ping).subarray(0, 20)]);
      await until('the three packets are refused', () => a.stats().framesRefused >= before.framesRefused + 3, 5000);
      assert.equal(a.stats().malformed, before.malformed, 'nothing undecryptable reached the decoder');
    } finally {
      await Promise.all([a, b].map((p) => p.stop()));
    }
  });

  test('sealed packets open with the same key only', () => {
    const k = datagramKey(KEY_A);
    const msg = new TextEncoder().encode('hello');
    const sealed = seal(k, msg);
    assert.equal(sealed.byteLength, 1 + 12 + msg.byteLength + 16);
    assert.notDeepEqual(sealed.subarray(13, 18), msg, 'not in the clear');
    assert.deepEqual(new Uint8Array(open(k, sealed)), msg);
    assert.notDeepEqual(seal(k, msg), sealed, 'a fresh nonce each time');
    const tampered = Uint8Array.from(sealed);
    tampered[14]! ^= 1;
    for (const bad of [tampered, sealed.subarray(0, 28), Uint8Array.of(2, ...sealed.subarray(1))]) {
      assert.throws(() => open(k, bad), (e: unknown) => e instanceof GossipError && e.code === 'ERR_MALFORMED_MESSAGE');
    }
    assert.throws(() => open(datagramKey(KEY_B), sealed), (e: unknown) => e instanceof GossipError && /gossip key mismatch/.test(e.message));
    // Consul's 16- and 24-byte keys are AES-128 and AES-192 keys.
    for (const n of [16, 24]) {
      const kn = datagramKey(Buffer.alloc(n, 3).toString('base64'));
      assert.deepEqual(new Uint8Array(open(kn, seal(kn, msg))), msg);
    }
  });

  test('joining an address where nobody listens is an ordinary join failure, not a key mismatch', async () => {
    const p = await pool('lonely');
    try {
      await assert.rejects(p.join(['127.0.0.1:1']), (e: unknown) => e instanceof GossipError && e.code === 'ERR_JOIN_FAILED' && /ECONNREFUSED/.test(e.message));
      await assert.rejects(p.join([]), (e: unknown) => e instanceof GossipError && e.code === 'ERR_JOIN_FAILED');
    } finally {
      await p.stop();
    }
  });

  test('the -encrypt key must be base64 of 16, 24 or 32 bytes', () => {
    assert.equal(new TextDecoder().decode(pskFromEncryptKey(KEY_A)), `/key/swarm/psk/1.0.0/\n/base16/\n${'07'.repeat(32)}`);
    // Consul's older 16- and 24-byte keys are stretched to 32 bytes, the same way on every agent.
    const k16 = new TextDecoder().decode(pskFromEncryptKey(Buffer.alloc(16, 1).toString('base64')));
    assert.match(k16, /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}$/);
    assert.equal(k16, new TextDecoder().decode(pskFromEncryptKey(Buffer.alloc(16, 1).toString('base64'))));
    assert.notEqual(k16, new TextDecoder().decode(pskFromEncryptKey(Buffer.alloc(16, 2).toString('base64'))));
    for (const bad of ['not base64!', Buffer.alloc(20).toString('base64'), 'YWJj', '']) {
      assert.throws(() => pskFromEncryptKey(bad), (e: unknown) => e instanceof GossipError && e.code === 'ERR_INVALID_KEY');
    }
  });
});

describe('join addresses', () => {
  const rows: [string, string][] = [
    ['10.0.0.1', '/ip4/10.0.0.1/tcp/8301'],
    ['10.0.0.1:9000', '/ip4/10.0.0.1/tcp/9000'],
    ['[::1]:9000', '/ip6/::1/tcp/9000'],
    ['::1', '/ip6/::1/tcp/8301'],
    ['localhost:7000', '/ip4/127.0.0.1/tcp/7000'],
    ['/ip4/1.2.3.4/tcp/5', '/ip4/1.2.3.4/tcp/5'],
  ];
  for (const [input, want] of rows) {
    test(`${input} → ${want}`, async () => {
      const got = (await parseJoinAddress(input, 8301)).toString();
      // localhost may resolve to ::1 first on some hosts.
      if (input.startsWith('localhost')) assert.match(got, /^\/ip[46]\/(127\.0\.0\.1|::1)\/tcp\/7000$/);
      else assert.equal(got, want);
    });
  }
  test('an invalid port is refused', async () => {
    await assert.rejects(parseJoinAddress('10.0.0.1:99999', 8301), /invalid port/);
  });
});
