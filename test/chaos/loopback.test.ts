// Loopback mode (`npm run chaos -- --net loopback`): the relay on its own (stand-in agents: a UDP
// socket and a TCP echo server on each member's address), the option and its fallback, and a short
// chaos run of real agents behind the relay with leader isolation and kill -9, which must be
// linearizable and show that the isolation really cut the leader off (the others elected another).
// Needs no root and no namespaces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { LoopbackNet, type LoopbackMember } from './loopback.ts';
import { chooseNet, parseArgs, type ChaosOptions } from './options.ts';
import type { ChaosReport } from './report.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A stand-in agent: UDP on 8301 recording senders, a TCP echo server on 8300 recording peers. */
async function standIn(m: LoopbackMember) {
  const got: Array<{ text: string; from: string }> = [];
  const udp = dgram.createSocket('udp4');
  udp.on('message', (msg, r) => got.push({ text: msg.toString(), from: `${r.address}:${r.port}` }));
  await new Promise<void>((resolve) => udp.bind({ address: m.address, port: 8301 }, () => resolve()));
  const peers: string[] = [];
  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((s) => {
    peers.push(s.remoteAddress!);
    sockets.add(s);
    s.on('error', () => {});
    s.on('data', (d) => s.write(d));
  });
  await new Promise<void>((resolve) => tcp.listen({ host: m.address, port: 8300 }, () => resolve()));
  return {
    got, peers,
    send: (to: LoopbackMember, text: string) => udp.send(text, 8301, to.advertise),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => tcp.close(() => r()));
      await new Promise<void>((r) => udp.close(() => r()));
    },
  };
}

/** A TCP connection from `from` to `to`'s front; `echo(text)` resolves with what came back within ms. */
async function dial(from: LoopbackMember, to: LoopbackMember) {
  const s = net.connect({ host: to.advertise, port: 8300, localAddress: from.address });
  let buf = '';
  let closed: string | undefined;
  s.on('data', (d) => { buf += d.toString(); });
  s.on('error', (e: NodeJS.ErrnoException) => { closed = e.code ?? e.message; });
  s.on('close', () => { closed ??= 'closed'; });
  await new Promise<void>((resolve) => { s.once('connect', () => resolve()); s.once('error', () => resolve()); });
  return {
    socket: s,
    closed: () => closed,
    write: (text: string) => { if (!s.destroyed) s.write(text); },
    received: () => buf,
  };
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(20);
  }
  return cond();
}

test('loopback relay unit: agents see each other at their fronts; partitions, one-way drops, loss and down are real', { timeout: 30_000 }, async () => {
  const lnet = LoopbackNet.plan(['a', 'b', 'c'], 1);
  await lnet.build();
  const [a, b, c] = lnet.members as [LoopbackMember, LoopbackMember, LoopbackMember];
  const A = await standIn(a);
  const B = await standIn(b);
  const C = await standIn(c);
  try {
    // Through the relay, each sees the other at its advertised (front) address and port.
    A.send(b, 'ping1');
    assert.ok(await until(() => B.got.some((g) => g.text === 'ping1'), 2000), 'a->b datagram delivered');
    assert.equal(B.got.find((g) => g.text === 'ping1')!.from, `${a.advertise}:8301`);
    const ab = await dial(a, b);
    ab.write('hello');
    assert.ok(await until(() => ab.received() === 'hello', 2000), 'echo through the relay');
    assert.deepEqual(B.peers, [a.advertise]);

    // Symmetric partition {a} | {b, c}, drop style: datagrams a<->b lost, b<->c still flow; the open
    // connection stalls and a new one is held, then both carry on after the heal.
    lnet.styleOverride = 'drop';
    await lnet.partition([['a'], ['b', 'c']]);
    A.send(b, 'lost1');
    B.send(a, 'lost2');
    C.send(b, 'kept1');
    ab.write('stalled');
    const held = await dial(a, b);
    held.write('held');
    assert.ok(await until(() => B.got.some((g) => g.text === 'kept1'), 2000), 'c->b unaffected');
    await sleep(400);
    assert.equal(B.got.some((g) => g.text === 'lost1'), false, 'a->b datagram dropped');
    assert.equal(A.got.some((g) => g.text === 'lost2'), false, 'b->a datagram dropped');
    assert.equal(ab.received(), 'hello', 'nothing crossed the stalled connection');
    assert.equal(held.received(), '');
    assert.ok(lnet.stats.udpBlocked >= 2 && lnet.stats.tcpStalled >= 1 && lnet.stats.tcpHeld >= 1, JSON.stringify(lnet.stats));
    await lnet.heal();
    assert.ok(await until(() => ab.received() === 'hellostalled', 2000), `stalled connection resumed: ${ab.received()}`);
    assert.ok(await until(() => held.received() === 'held', 2000), 'held connection connected at the heal');
    assert.equal(ab.closed(), undefined);

    // Reject style: the open connection is reset (cut) and a new one refused.
    lnet.styleOverride = 'reject';
    await lnet.isolate('b');
    assert.ok(await until(() => ab.closed() !== undefined, 2000), 'existing connection cut');
    const refused = await dial(a, b);
    assert.ok(await until(() => refused.closed() !== undefined, 2000), 'new connection refused');
    const ca = await dial(c, a);
    ca.write('x');
    assert.ok(await until(() => ca.received() === 'x', 2000), 'c<->a unaffected');
    await lnet.heal();

    // One-way: b stops hearing a; a still hears b.
    await lnet.dropOneWay(['a'], ['b']);
    A.send(b, 'oneway-lost');
    B.send(a, 'oneway-kept');
    assert.ok(await until(() => A.got.some((g) => g.text === 'oneway-kept'), 2000), 'b->a still delivered');
    await sleep(300);
    assert.equal(B.got.some((g) => g.text === 'oneway-lost'), false, 'a->b dropped');
    await lnet.heal();

    // Loss: 100% drops every datagram; after the heal they flow again.
    await lnet.loss(100);
    for (let i = 0; i < 20; i++) A.send(c, `loss${i}`);
    await sleep(300);
    assert.equal(C.got.filter((g) => g.text.startsWith('loss')).length, 0);
    assert.ok(lnet.stats.udpLost >= 20);
    await lnet.heal();
    A.send(c, 'after-loss');
    assert.ok(await until(() => C.got.some((g) => g.text === 'after-loss'), 2000));

    // A down member's front refuses, as a dead host's ports do (TCP and UDP port checks).
    await lnet.down('b');
    const dead = await dial(a, b);
    assert.ok(await until(() => dead.closed() === 'ECONNREFUSED', 2000), `refused: ${dead.closed()}`);
    const probe = dgram.createSocket('udp4');
    const timers: NodeJS.Timeout[] = [];
    const udpRefused = await new Promise<boolean>((resolve) => {
      probe.on('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
      probe.bind({ address: a.address, port: 0 }, () => probe.connect(8301, b.advertise, () => {
        probe.send(Buffer.alloc(0));
        timers.push(setTimeout(() => probe.send(Buffer.alloc(0)), 100), setTimeout(() => resolve(false), 1500));
      }));
    });
    for (const t of timers) clearTimeout(t);
    probe.close();
    assert.equal(udpRefused, true, 'UDP port check refused');
    await lnet.up('b');
    const again = await dial(a, b);
    again.write('back');
    assert.ok(await until(() => again.received() === 'back', 2000));

    // Traffic from an address that is no member's is refused and counted.
    const stranger = await dial({ name: 'x', address: '127.0.0.1', advertise: '' }, b);
    assert.ok(await until(() => stranger.closed() !== undefined, 2000));
    assert.equal(lnet.stats.unknownSource, 1);
    for (const s of [held, ca, again]) s.socket.destroy();
  } finally {
    await lnet.destroy();
    await Promise.all([A.close(), B.close(), C.close()]);
  }
});

test('--net: parsed, refused with --prefix, and auto falls back to loopback saying why', () => {
  assert.equal((parseArgs([]) as ChaosOptions).net, 'auto');
  assert.equal((parseArgs(['--net', 'loopback', '--smoke']) as ChaosOptions).net, 'loopback');
  assert.throws(() => parseArgs(['--net', 'bridge']), /--net "bridge": use one of auto, netns, loopback/);
  assert.throws(() => parseArgs(['--net', 'loopback', '--prefix', 'ab']), /--prefix names network namespaces; --net loopback makes none/);
  assert.deepEqual(chooseNet('auto', ''), { mode: 'netns' });
  assert.deepEqual(chooseNet('loopback', ''), { mode: 'loopback' });
  const fb = chooseNet('auto', 'network namespaces need root');
  assert.equal(fb.mode, 'loopback');
  assert.match(fb.message!, /network namespaces cannot be made here \(network namespaces need root\): falling back to --net loopback/);
  assert.throws(() => chooseNet('netns', 'network namespaces need root'), /--net netns: cannot make network namespaces here: network namespaces need root \(use --net loopback/);
});

test('chaos in loopback mode: leader isolation and kill -9 through the relay, linearizable, the isolated leader replaced', { timeout: 150_000 }, async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-chaos-loopback-'));
  // Seed 1 schedules the leader's isolation first (about 4 s after the cluster formed, when every
  // server names the leader), then kill -9. (With kill first, the restarted server may not name the
  // leader yet when the isolation starts, and a random server is isolated instead.)
  const seed = process.env.TRELLIS_CHAOS_SEED ?? '1';
  // The run goes in its own process (the harness's CLI, `npm run chaos`, which exits through
  // process.exit once its report is written). Run in this one, the file passed and then its process
  // spun in Node's teardown for ten minutes (2 of 9 runs by hand, and once in a clean-clone run:
  // docs/CHAOS.md), which would hold the whole test run to CI's deadline.
  const args = ['--net', 'loopback', '--smoke', '--duration', '24s', '--recovery', '5s', '--faults', 'partition-leader,kill', '--seed', seed, '--out', out];
  parseArgs(args); // a bad option is refused here, with the parser's message, before anything is spawned
  const run = spawnSync(process.execPath, [path.join(import.meta.dirname, 'cli.ts'), ...args], { encoding: 'utf8', timeout: 140_000 });
  for (const l of `${run.stdout}${run.stderr}`.split('\n')) if (l !== '') process.stdout.write(`# ${l}\n`);
  assert.ok(fs.existsSync(path.join(out, 'report.json')), `the chaos run wrote no report (exit ${run.status}, signal ${run.signal})`);
  const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as ChaosReport;
  const md = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  assert.equal(report.verdict.ok, true, `seed ${seed}: ${report.verdict.summary}\n${md}`);
  assert.equal(report.register.linearizable, true);
  assert.ok(report.register.ok >= 100, `only ${report.register.ok} register operations answered`);
  assert.equal(report.options.net, 'loopback');
  const relay = report.options.relay as { unknownSource: number; tcpAccepted: number; udpForwarded: number };
  assert.equal(relay.unknownSource, 0, 'every connection and datagram came from a member (agents dial from -bind)');
  assert.ok(relay.tcpAccepted > 0 && relay.udpForwarded > 0, 'Raft/RPC and gossip went through the relay');
  const kinds = report.faults.map((f) => f.fault);
  assert.ok(kinds.includes('kill') && kinds.includes('partition-leader'), `faults: ${kinds.join(', ')}`);
  for (const f of report.faults) assert.ok(f.leaderAfterHealMs !== undefined, `no leader within 30 s after healing ${f.fault}`);
  // The isolation was real: the relay stopped traffic, and the servers cut off from the old leader
  // elected another while it lasted.
  const iso = report.faults.find((f) => f.fault === 'partition-leader')!;
  assert.match(iso.detail, /\(the leader\)/, iso.detail);
  assert.ok((iso.relayBlocked ?? 0) > 0, `the relay stopped nothing: ${iso.detail}`);
  assert.ok(iso.failoverMs !== undefined, `the majority elected no new leader during the isolation: ${iso.detail}\n${md}`);
  assert.ok(report.elections.terms >= 2, report.elections.detail);
  fs.rmSync(out, { recursive: true, force: true });
});
