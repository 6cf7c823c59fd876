// Protocol tests for the pure SWIM + Lifeguard core, named after the papers' sections.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GossipError, SwimCore } from '../../src/gossip/core/index.ts';
import type { Message, Output, PingMessage, SwimConfig } from '../../src/gossip/core/index.ts';
import { TestNet, ident, seeded } from './harness.ts';

const names = (n: number): string[] => Array.from({ length: n }, (_, i) => String.fromCharCode(97 + i));

/** One core driven by hand: every ping it sends is acked at once, so only injected messages matter. */
function lonely(config: Partial<SwimConfig> = {}, n = 6): { core: SwimCore; advance: (to: number) => Output[]; now: () => number } {
  const known = names(n).map((name) => ({ node: ident(name), incarnation: 1, state: 'alive' as const }));
  const core = new SwimCore({ self: ident('b'), config, random: seeded(3), nowMs: 0, knownMembers: known });
  core.takeOutputs();
  let now = 0;
  const advance = (to: number): Output[] => {
    const all: Output[] = [];
    while (core.nextDeadlineMs() <= to) {
      now = core.nextDeadlineMs();
      core.tick(now);
      for (const o of core.takeOutputs()) {
        all.push(o);
        if (o.kind === 'send' && o.msg.type === 'ping') core.receive({ type: 'ack', seq: o.msg.seq, from: o.to.name, updates: [] }, now);
      }
    }
    now = to;
    return all;
  };
  return { core, advance, now: () => now };
}

describe('SWIM failure detection', () => {
  test('§4.3: every member probes one member per protocol period, and a healthy pool raises no suspicion', () => {
    const net = new TestNet(1);
    net.addConverged(names(5));
    net.run(20_000);
    for (const [name, c] of net.cores) {
      assert.ok(c.stats.probes >= 19 && c.stats.probes <= 21, `${name} probed ${c.stats.probes} times in 20 s`);
      assert.equal(c.stats.suspicionsRaised, 0, name);
      assert.equal(c.healthScore, 0);
    }
    // Randomized round-robin: within each round of 4 probes a member probes every other member once.
    const pings = net.sent.filter((s) => s.from === 'a' && s.msg.type === 'ping').map((s) => s.to);
    for (let i = 0; i + 4 <= pings.length; i += 4) assert.equal(new Set(pings.slice(i, i + 4)).size, 4, `round ${i / 4}: ${pings.slice(i, i + 4)}`);
  });

  test('§4.2: a silent member is probed through k others, suspected, then declared failed by everyone', () => {
    const net = new TestNet(2);
    net.addConverged(names(6));
    net.crashed.add('f');
    net.run(40_000);
    const firstSuspect = net.sent.find((s) => s.msg.type === 'pingReq');
    assert.ok(firstSuspect, 'an indirect probe was sent');
    const prober = firstSuspect.from;
    const relays = net.sent.filter((s) => s.msg.type === 'pingReq' && s.from === prober && s.at === firstSuspect.at).map((s) => s.to);
    assert.equal(new Set(relays).size, 3, 'indirectChecks = 3 distinct relays');
    assert.ok(!relays.includes('f') && !relays.includes(prober));
    for (const n of names(5)) assert.equal(net.stateOf(n, 'f'), 'dead', `${n} sees f dead`);
    const failed = net.eventsOf('member-failed', 'f');
    assert.equal(new Set(failed.map((e) => e.at_node)).size, 5, 'member-failed once at each survivor');
    assert.equal(failed.length, 5);
    // Relays that did not hear from f told the prober so (Lifeguard nacks), so the prober is not blamed.
    assert.ok(net.sent.some((s) => s.msg.type === 'nack'));
    for (const n of names(5)) assert.equal(net.core(n).healthScore, 0, `${n} health`);
  });

  test('Lifeguard §4.1: a member that cannot hear anyone raises its own health score and probes more slowly', () => {
    const net = new TestNet(3);
    net.addConverged(names(5));
    for (const n of ['b', 'c', 'd', 'e']) net.cut.add(`${n}>a`);
    net.run(30_000);
    const a = net.core('a');
    assert.equal(a.healthScore, 7, 'score railed at awarenessMaxMultiplier - 1');
    // Healthy members probe ~30 times in 30 s; a's probe period stretched up to 8×.
    assert.ok(a.stats.probes < 12, `a probed ${a.stats.probes} times`);
    assert.ok(net.core('b').stats.probes >= 29);
  });

  test('Lifeguard off: no nacks and no health score, so the deaf member accuses at full speed', () => {
    const suspicionsIn6s = (lifeguard: boolean): number => {
      const net = new TestNet(3);
      net.addConverged(names(5), { lifeguard });
      for (const n of ['b', 'c', 'd', 'e']) net.cut.add(`${n}>a`);
      net.run(6000);
      if (!lifeguard) {
        assert.equal(net.core('a').healthScore, 0);
        assert.equal(net.sent.filter((s) => s.msg.type === 'nack').length, 0);
      }
      return net.core('a').stats.suspicionsRaised;
    };
    const on = suspicionsIn6s(true);
    const off = suspicionsIn6s(false);
    assert.ok(on <= 2, `with Lifeguard a raised ${on} suspicions`);
    assert.ok(off >= 4, `without Lifeguard a raised ${off} suspicions`);
  });
});

describe('refused probes (a killed agent whose host is still up answers "port unreachable")', () => {
  /** Runs until the first ping to `target` has been sent; returns it. */
  const firstPing = (net: TestNet, target: string): { at: number; from: string } => {
    for (let i = 0; i < 400; i++) {
      const ping = net.sent.find((s) => s.to === target && s.msg.type === 'ping');
      if (ping) return ping;
      net.run(25);
    }
    return assert.fail(`no ping to ${target}`);
  };

  test('a refused ping sends the ping-reqs at once, and the probe fails as soon as the refused relays nack: no waiting out the probe timeout, our health untouched', () => {
    const net = new TestNet(4);
    net.addConverged(names(6));
    net.crashed.add('f');
    net.refusing.add('f');
    const ping = firstPing(net, 'f');
    // Refusal back, ping-req out, the relay's ping out, its refusal back, its nack back: 6 latencies.
    net.run(10 * net.latencyMs);
    const prober = net.core(ping.from);
    const f = prober.member('f')!;
    assert.equal(f.state, 'suspect');
    // The probe timeout is 500 ms.
    assert.ok(f.stateChangeMs - ping.at <= 6 * net.latencyMs, `suspected ${f.stateChangeMs - ping.at} ms after the ping`);
    const reqs = net.sent.filter((s) => s.from === ping.from && s.msg.type === 'pingReq' && s.at >= ping.at);
    assert.equal(reqs.length, 3, 'the indirect probes go out at once');
    assert.ok(reqs.every((r) => r.at - ping.at <= 2 * net.latencyMs));
    assert.equal(prober.stats.probesRefused, 1);
    assert.equal(prober.healthScore, 0, 'a refusal is the target\'s fault, not ours');
    // The relays were refused too: each nacked at once (before the relay's own 500 ms timeout)
    // and suspects f on its own evidence.
    for (const r of reqs) {
      const relay = net.core(r.to);
      assert.equal(relay.member('f')?.state, 'suspect', `${r.to} suspects f`);
      assert.ok(relay.stats.probesRefused >= 1);
      assert.ok(net.sent.some((s) => s.from === r.to && s.to === ping.from && s.msg.type === 'nack' && s.at - ping.at <= 6 * net.latencyMs), `${r.to} nacked at once`);
    }
  });

  test('relays\' refusals confirm the suspicion at once: everyone lists the member failed at the Lifeguard minimum (4 s) after the first probe; a silent host takes longer', () => {
    const detection = (refusing: boolean): number => {
      const net = new TestNet(5);
      net.addConverged(names(6));
      net.crashed.add('f');
      if (refusing) net.refusing.add('f');
      const ping = firstPing(net, 'f');
      net.run(30_000);
      const failed = net.eventsOf('member-failed', 'f');
      assert.equal(new Set(failed.map((e) => e.at_node)).size, 5, 'every survivor lists f failed');
      return Math.max(...failed.map((e) => e.at)) - ping.at;
    };
    // N = 6: minimum suspicion timeout 4 × max(1, log10 6) × 1 s = 4 s, k = 2 confirmations.
    const refused = detection(true);
    assert.ok(refused >= 4000 && refused <= 4000 + 500, `refused: everyone lists f failed ${refused} ms after the first probe`);
    // A host that stays silent (crashed machine, pulled cable): the probe waits out its interval,
    // and the confirmations wait for other members' probes.
    const silent = detection(false);
    assert.ok(silent >= 5000, `silent: ${silent} ms`);
  });

  test('a refused ping is no failure when a relay reaches the target (a firewall rejecting only our packets)', () => {
    const net = new TestNet(7);
    net.addConverged(names(6));
    net.refusing.add('a>f');
    let ping: { at: number } | undefined;
    for (let i = 0; i < 400 && !ping; i++) {
      net.run(25);
      ping = net.sent.find((s) => s.from === 'a' && s.to === 'f' && s.msg.type === 'ping');
    }
    assert.ok(ping, 'a probed f');
    net.run(3000);
    assert.equal(net.core('a').stats.probesRefused, 1);
    assert.equal(net.stateOf('a', 'f'), 'alive', 'the relays\' acks saved f');
    assert.equal(net.core('a').stats.suspicionsRaised, 0);
    for (const n of names(5)) assert.equal(net.stateOf(n, 'f'), 'alive');
  });

  test('a refusal for an unknown or finished probe changes nothing', () => {
    const net = new TestNet(6);
    net.addConverged(names(3));
    net.run(5000);
    net.core('a').probeRefused(999_999, net.now);
    net.flush('a');
    assert.equal(net.core('a').stats.probesRefused, 0);
    for (const n of ['b', 'c']) assert.equal(net.stateOf('a', n), 'alive');
  });
});

describe('SWIM suspicion, incarnations and refutation', () => {
  test('§4.2: a suspicion about oneself is refuted with a higher incarnation, never accepted', () => {
    const net = new TestNet(4);
    net.addConverged(names(4));
    net.deliver('a', { type: 'gossip', from: 'b', updates: [{ type: 'suspect', node: 'a', incarnation: 1, from: 'b' }] });
    assert.equal(net.core('a').incarnation, 2);
    assert.equal(net.stateOf('a', 'a'), 'alive');
    net.deliver('a', { type: 'gossip', from: 'b', updates: [{ type: 'dead', node: 'a', incarnation: 9, from: 'b' }] });
    assert.equal(net.core('a').incarnation, 10, 'refutes above the accusation');
    assert.equal(net.stateOf('a', 'a'), 'alive');
    net.run(3000);
    for (const n of ['b', 'c', 'd']) {
      assert.equal(net.core(n).member('a')?.incarnation, 10, `${n} learned the refutation`);
      assert.equal(net.stateOf(n, 'a'), 'alive');
    }
  });

  test('an alive claiming a different version of ourselves (an old run, a forgery) is overridden', () => {
    const net = new TestNet(5);
    net.addConverged(names(3));
    net.deliver('a', { type: 'gossip', from: 'b', updates: [{ type: 'alive', node: ident('a', { role: 'evil' }), incarnation: 5 }] });
    assert.equal(net.core('a').incarnation, 6);
    assert.deepEqual(net.core('a').member('a')?.tags, {});
  });

  test('a higher incarnation for another member is an ordinary update (tags change, member-update once)', () => {
    const net = new TestNet(6);
    net.addConverged(names(3));
    net.deliver('a', { type: 'gossip', from: 'c', updates: [{ type: 'alive', node: ident('b', { role: 'consul' }), incarnation: 5 }] });
    assert.equal(net.core('a').member('b')?.incarnation, 5);
    assert.deepEqual(net.core('a').member('b')?.tags, { role: 'consul' });
    assert.equal(net.eventsOf('member-update', 'b').filter((e) => e.at_node === 'a').length, 1);
    // The same news again changes nothing.
    net.deliver('a', { type: 'gossip', from: 'c', updates: [{ type: 'alive', node: ident('b', { role: 'consul' }), incarnation: 5 }] });
    assert.equal(net.eventsOf('member-update', 'b').filter((e) => e.at_node === 'a').length, 1);
    // A suspicion at a higher incarnation is accepted; b itself refutes above it when it hears.
    net.deliver('a', { type: 'gossip', from: 'c', updates: [{ type: 'suspect', node: 'b', incarnation: 7, from: 'c' }] });
    assert.equal(net.stateOf('a', 'b'), 'suspect');
    net.run(5000);
    assert.equal(net.stateOf('a', 'b'), 'alive');
    assert.ok(net.core('a').member('b')!.incarnation >= 8);
  });

  test('stale suspect and dead messages (older incarnation) are ignored', () => {
    const net = new TestNet(7);
    net.addConverged(names(3));
    net.deliver('a', { type: 'gossip', from: 'c', updates: [{ type: 'alive', node: ident('b'), incarnation: 4 }] });
    net.deliver('a', { type: 'gossip', from: 'c', updates: [{ type: 'suspect', node: 'b', incarnation: 3, from: 'c' }, { type: 'dead', node: 'b', incarnation: 2, from: 'c' }] });
    assert.equal(net.stateOf('a', 'b'), 'alive');
  });

  test('Lifeguard §4.3 buddy system: the probe of a suspect member carries the suspicion, and it refutes at once', () => {
    const net = new TestNet(8);
    net.addConverged(names(3));
    // b can only learn of the suspicion from a's probe: c says nothing to b, and a neither gossips
    // to b nor piggybacks on acks to it.
    net.cut.add('c>b');
    net.cut.add('a>b:gossip');
    net.cut.add('a>b:ack');
    net.deliver('a', { type: 'gossip', from: 'c', updates: [{ type: 'suspect', node: 'b', incarnation: 1, from: 'c' }] });
    net.run(3000);
    const ping = net.sent.find((s) => s.from === 'a' && s.to === 'b' && s.msg.type === 'ping');
    assert.ok(ping);
    const updates = (ping.msg as PingMessage).updates;
    assert.deepEqual(updates[0], { type: 'suspect', node: 'b', incarnation: 1, from: 'a' });
    assert.equal(net.core('b').stats.refutations >= 1, true);
    assert.equal(net.stateOf('a', 'b'), 'alive');
  });

  test('Lifeguard off: no buddy suspicion rides the probe', () => {
    const net = new TestNet(8);
    net.addConverged(names(3), { lifeguard: false });
    net.deliver('a', { type: 'gossip', from: 'c', updates: [{ type: 'suspect', node: 'b', incarnation: 1, from: 'c' }] });
    net.run(3000);
    const ping = net.sent.find((s) => s.from === 'a' && s.to === 'b' && s.msg.type === 'ping');
    assert.ok(ping);
    assert.ok(!(ping.msg as PingMessage).updates.some((u) => u.type === 'suspect' && u.from === 'a'));
  });

  test('Lifeguard §4.2: one accuser alone gives the suspect the maximum time; k confirmations bring it to the minimum', () => {
    // N = 6: min = 4 × max(1, log10 6) × 1 s = 4 s, max = 6 × min = 24 s, k = suspicionMult − 2 = 2.
    const suspect = (from: string): Message => ({ type: 'gossip', from, updates: [{ type: 'suspect', node: 'f', incarnation: 1, from }] });
    const alone = lonely();
    alone.core.receive(suspect('a'), 0);
    alone.advance(23_999);
    assert.equal(alone.core.member('f')?.state, 'suspect');
    alone.advance(24_000);
    assert.equal(alone.core.member('f')?.state, 'dead');

    const confirmed = lonely();
    confirmed.core.receive(suspect('a'), 0);
    confirmed.advance(1000);
    confirmed.core.receive(suspect('c'), 1000);
    confirmed.core.receive(suspect('d'), 1000);
    confirmed.advance(3999);
    assert.equal(confirmed.core.member('f')?.state, 'suspect');
    confirmed.advance(4000);
    assert.equal(confirmed.core.member('f')?.state, 'dead');

    const plain = lonely({ lifeguard: false });
    plain.core.receive(suspect('a'), 0);
    plain.advance(4000);
    assert.equal(plain.core.member('f')?.state, 'dead', 'plain SWIM: fixed minimum timeout');
  });

  test('a confirmation is re-gossiped only when it is new information', () => {
    const { core, advance } = lonely();
    const suspect = (from: string): Message => ({ type: 'gossip', from, updates: [{ type: 'suspect', node: 'f', incarnation: 1, from }] });
    core.receive(suspect('a'), 0);
    advance(2000);
    assert.equal(core.queueDepth, 0, 'fully transmitted');
    core.receive(suspect('a'), 2000);
    assert.equal(core.queueDepth, 0, 'the same accuser again is old news');
    core.receive(suspect('c'), 2000);
    assert.equal(core.queueDepth, 1, 'an independent confirmation is spread');
  });

  test('Lifeguard §4.3: the refutation of a suspicion carried by a probe rides on the ack, straight back to the accuser', () => {
    const net = new TestNet(12);
    net.addConverged(names(3));
    net.deliver('a', { type: 'ping', seq: 7, from: 'b', replyTo: ident('b'), target: 'a', updates: [{ type: 'suspect', node: 'a', incarnation: 1, from: 'b' }] });
    assert.equal(net.core('a').incarnation, 2, 'a refuted');
    const ack = net.sent.find((s) => s.from === 'a' && s.msg.type === 'ack');
    assert.ok(ack, 'the ping was acked');
    const updates = (ack.msg as { updates: { type: string; incarnation?: number }[] }).updates;
    assert.ok(updates.some((u) => u.type === 'alive' && u.incarnation === 2), `the ack carries alive a@2: ${JSON.stringify(updates)}`);
  });

  test('a stale suspicion or death of us still going round (our refutation was lost) spreads our current alive again, without a new incarnation', () => {
    const net = new TestNet(13);
    net.addConverged(names(3));
    net.deliver('a', { type: 'gossip', from: 'b', updates: [{ type: 'suspect', node: 'a', incarnation: 1, from: 'b' }] });
    assert.equal(net.core('a').incarnation, 2);
    net.run(10_000);
    assert.equal(net.core('a').queueDepth, 0, 'the refutation was fully transmitted');
    for (const stale of [
      { type: 'suspect' as const, node: 'a', incarnation: 1, from: 'c' },
      { type: 'dead' as const, node: 'a', incarnation: 1, from: 'c' },
    ]) {
      const mark = net.sent.length;
      net.cut.add('a>b'); // only c, who spreads the stale news, is to hear the alive again
      net.deliver('a', { type: 'gossip', from: 'c', updates: [stale] });
      assert.equal(net.core('a').incarnation, 2, `${stale.type}: same news, no new incarnation`);
      net.run(1000);
      net.cut.delete('a>b');
      const resent = net.sent.slice(mark).filter((s) => s.from === 'a' && s.to === 'c' &&
        (s.msg as { updates?: { type: string; incarnation?: number }[] }).updates?.some((u) => u.type === 'alive' && u.incarnation === 2));
      assert.ok(resent.length > 0, `${stale.type}: a spread alive a@2 again`);
    }
    assert.equal(net.core('a').stats.refutations, 1);
    assert.equal(net.core('a').stats.reannounced, 2);
  });

  test('a stale suspicion or death of another member (the sender missed its refutation) is answered with the newer alive, straight to the sender', () => {
    const net = new TestNet(14);
    net.addConverged(names(3));
    net.deliver('b', { type: 'gossip', from: 'c', updates: [{ type: 'alive', node: ident('c'), incarnation: 2 }] });
    assert.equal(net.core('b').member('c')?.incarnation, 2);
    for (const stale of [
      { type: 'suspect' as const, node: 'c', incarnation: 1, from: 'a' },
      { type: 'dead' as const, node: 'c', incarnation: 1, from: 'a' },
    ]) {
      const mark = net.sent.length;
      net.deliver('b', { type: 'gossip', from: 'a', updates: [stale] });
      assert.equal(net.stateOf('b', 'c'), 'alive', `${stale.type}: stale news changes nothing at b`);
      const reply = net.sent.slice(mark).find((x) => x.from === 'b' && x.to === 'a' && x.msg.type === 'gossip');
      assert.ok(reply, `${stale.type}: b answered a at once`);
      assert.deepEqual((reply.msg as { updates: unknown[] }).updates, [{ type: 'alive', node: ident('c'), incarnation: 2 }]);
    }
    assert.equal(net.core('b').stats.staleAnswered, 2);
    // Current news is not answered: a suspicion at c's current incarnation is a new suspicion.
    const mark = net.sent.length;
    net.deliver('b', { type: 'gossip', from: 'a', updates: [{ type: 'suspect', node: 'c', incarnation: 2, from: 'a' }] });
    assert.equal(net.stateOf('b', 'c'), 'suspect');
    assert.ok(!net.sent.slice(mark).some((x) => x.from === 'b' && x.to === 'a' && x.msg.type === 'gossip'));
  });

  test('a ping meant for another member is dropped, not acked', () => {
    const net = new TestNet(9);
    net.addConverged(names(2));
    net.deliver('a', { type: 'ping', seq: 1, from: 'b', replyTo: ident('b'), target: 'zz', updates: [] });
    assert.equal(net.core('a').stats.misdirectedPings, 1);
    assert.ok(!net.sent.some((s) => s.from === 'a' && s.msg.type === 'ack'));
    assert.equal(net.warnings[0]?.code, 'misdirected-ping');
  });
});

describe('membership changes', () => {
  test('join by push-pull: the joiner learns the pool and the pool learns the joiner', () => {
    const net = new TestNet(10);
    net.addConverged(names(4));
    net.add('z');
    net.join('z', 'a');
    assert.equal(net.core('z').members().length, 5, 'the join reply carries the whole pool');
    net.run(3000);
    for (const n of names(4)) assert.equal(net.stateOf(n, 'z'), 'alive', `${n} knows z`);
    assert.equal(net.eventsOf('member-join', 'z').filter((e) => e.at_node !== 'z').length, 4);
  });

  test('with an external broadcast medium, only local news is published — and a join by the member that answered it', () => {
    const net = new TestNet(23);
    net.add('a', {}, { publish: true });
    net.add('z', {}, { publish: true });
    net.published.length = 0;
    net.join('z', 'a');
    const byA = net.published.filter((p) => p.from === 'a').map((p) => p.output.kind === 'publish' && p.output.update);
    assert.deepEqual(byA.map((u) => u && u.type === 'alive' && u.node.name), ['z'], 'a publishes the joiner it admitted');
    net.published.length = 0;
    net.run(3000);
    net.deliver('a', { type: 'gossip', from: 'z', updates: [{ type: 'suspect', node: 'z', incarnation: 1, from: 'q' }] });
    // a relays the suspicion by gossip but does not publish it: it did not originate it.
    assert.equal(net.published.filter((p) => p.from === 'a').length, 0);
    net.core('a').fireUserEvent('e', new Uint8Array(0), net.now);
    net.flush('a');
    assert.equal(net.published.filter((p) => p.from === 'a' && p.output.kind === 'publish' && p.output.update.type === 'userEvent').length, 1);
  });

  test('a join reply teaches suspect members as members, not dead ones; a second push-pull follows soon', () => {
    const net = new TestNet(24);
    net.add('z');
    const reply = {
      type: 'pushPull' as const, from: 'a', join: true, reply: true, eventLTime: 1, events: [],
      members: [
        { node: ident('a'), incarnation: 1, state: 'alive' as const },
        { node: ident('s'), incarnation: 3, state: 'suspect' as const },
        { node: ident('d'), incarnation: 2, state: 'dead' as const },
      ],
    };
    net.core('z').mergePushPull(reply, net.now);
    net.flush('z');
    assert.equal(net.stateOf('z', 's'), 'alive');
    assert.equal(net.core('z').member('s')?.incarnation, 3);
    assert.equal(net.core('z').member('d'), undefined, 'a failure from before the join is not news');
    net.run(6000);
    assert.ok(net.sent.some((x) => x.from === 'z' && x.msg.type === 'pushPull' && !x.msg.join), 'a periodic push-pull within 5 probe intervals of the join');
  });

  test('graceful leave: others see left (member-leave), never failed; the leave is fully disseminated', () => {
    const net = new TestNet(11);
    net.addConverged(names(4));
    net.core('a').leave(net.now);
    net.flush('a');
    net.run(3000);
    assert.ok(net.core('a').leaveDone());
    for (const n of ['b', 'c', 'd']) assert.equal(net.stateOf(n, 'a'), 'left');
    assert.equal(net.eventsOf('member-leave', 'a').filter((e) => e.at_node !== 'a').length, 3);
    assert.equal(net.eventsOf('member-failed', 'a').length, 0);
    // Afterwards a is simply gone: it sends no probes.
    const before = net.core('a').stats.probes;
    net.crashed.add('a');
    net.run(10_000);
    assert.equal(net.core('a').stats.probes, before);
    for (const n of ['b', 'c', 'd']) assert.equal(net.stateOf(n, 'a'), 'left', 'a departed member is not probed into failed');
  });

  test('force-leave turns a failed member into left everywhere; prune forgets it; unknown names are refused', () => {
    const net = new TestNet(12);
    net.addConverged(names(4));
    net.crashed.add('d');
    net.run(30_000);
    assert.equal(net.stateOf('a', 'd'), 'dead');
    net.core('a').forceLeave('d', false, net.now);
    net.flush('a');
    net.run(2000);
    for (const n of ['a', 'b', 'c']) assert.equal(net.stateOf(n, 'd'), 'left');
    net.core('a').forceLeave('d', true, net.now);
    net.flush('a');
    net.run(2000);
    for (const n of ['a', 'b', 'c']) assert.equal(net.core(n).member('d'), undefined, `${n} forgot d`);
    assert.equal(net.eventsOf('member-reap', 'd').length, 3);
    assert.throws(() => net.core('a').forceLeave('nobody', false, net.now),
      (e: unknown) => e instanceof GossipError && e.code === 'ERR_UNKNOWN_MEMBER' && /No node found with name 'nobody'/.test(e.message));
  });

  test('a refutation goes to the member whose message prompted it, in the first gossip round', () => {
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const net = new TestNet(seed);
      net.addConverged(names(4));
      const mark = net.sent.length;
      // b passes on a leave intent for a: a refutes, by gossip (serf), to b as to the others.
      net.deliver('a', { type: 'gossip', from: 'b', updates: [{ type: 'forceLeave', node: 'a', incarnation: 1, prune: false, from: 'b' }] });
      net.run(250); // one gossip round (200 ms) and its deliveries
      const toB = net.sent.slice(mark).filter((m) => m.from === 'a' && m.to === 'b')
        .flatMap((m) => ('updates' in m.msg ? m.msg.updates : []));
      assert.ok(toB.some((u) => u.type === 'alive' && u.node.name === 'a' && u.incarnation > 1),
        `seed ${seed}: a's refutation reached b in the first round: ${JSON.stringify(toB)}`);
    }
  });

  test('news a member passes on is not sent back to the member it came from while others lack it', () => {
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const net = new TestNet(seed);
      net.addConverged(names(8));
      const mark = net.sent.length;
      net.deliver('a', { type: 'gossip', from: 'b', updates: [{ type: 'alive', node: ident('c'), incarnation: 5 }] });
      net.run(250); // one round: 3 of the 7 others hear it from a
      const fromA = net.sent.slice(mark).filter((m) => m.from === 'a')
        .filter((m) => 'updates' in m.msg && m.msg.updates.some((u) => u.type === 'alive' && u.node.name === 'c'));
      assert.ok(fromA.length > 0, `seed ${seed}: a passed the news on`);
      assert.ok(!fromA.some((m) => m.to === 'b'), `seed ${seed}: the news about c went back to b, which sent it`);
    }
  });

  test('force-leave of a live member is serf\'s leave intent: leaving until it refutes; one that fails meanwhile has left', () => {
    const net = new TestNet(14);
    net.addConverged(names(4));
    const before = net.core('a').member('b')!.incarnation;
    net.core('a').forceLeave('b', false, net.now);
    assert.equal(net.core('a').member('b')?.leaveIntent, true, 'leaving at once on the member that was asked');
    net.flush('a');
    net.run(3000);
    for (const n of ['a', 'c', 'd']) {
      const b = net.core(n).member('b')!;
      assert.equal(b.state, 'alive', `${n} sees b alive`);
      assert.equal(b.leaveIntent, undefined, `${n}: b refuted the intent`);
      assert.ok(b.incarnation > before, `${n}: b refuted with a newer incarnation`);
    }
    assert.ok(net.core('b').stats.refutations >= 1);
    // A member that cannot refute (crashed) and is then found failed has left, not failed.
    net.crashed.add('d');
    net.core('a').forceLeave('d', false, net.now);
    net.flush('a');
    net.run(30_000);
    for (const n of ['a', 'b', 'c']) assert.equal(net.stateOf(n, 'd'), 'left', `${n} sees d left`);
    assert.equal(net.eventsOf('member-failed', 'd').length, 0);
  });

  test('failed members are reaped after the reconnect timeout, left ones after the tombstone timeout', () => {
    const net = new TestNet(13);
    net.addConverged(names(4), { reconnectTimeoutMs: 20_000, tombstoneTimeoutMs: 5000, reapIntervalMs: 1000 });
    net.crashed.add('d');
    net.core('c').leave(net.now);
    net.flush('c');
    net.run(10_000);
    assert.equal(net.core('a').member('c'), undefined, 'left member reaped after 5 s');
    assert.equal(net.stateOf('a', 'd'), 'dead');
    net.run(30_000);
    assert.equal(net.core('a').member('d'), undefined, 'failed member reaped after 20 s');
    assert.ok(net.eventsOf('member-reap', 'd').some((e) => e.at_node === 'a'));
  });

  test('a restarted member (incarnation 1 again) refutes its old death and becomes alive', () => {
    const net = new TestNet(14);
    net.addConverged(names(4));
    net.crashed.add('d');
    net.run(30_000);
    assert.equal(net.stateOf('a', 'd'), 'dead');
    net.crashed.delete('d');
    net.add('d');
    net.join('d', 'a');
    net.run(3000);
    for (const n of ['a', 'b', 'c']) assert.equal(net.stateOf(n, 'd'), 'alive', `${n} sees d again`);
    assert.ok(net.core('d').incarnation > 1, 'd had to refute');
    assert.ok(net.eventsOf('member-join', 'd').some((e) => e.at_node === 'b' && e.at > 30_000));
  });

  test('a different peer claiming a live member\'s name is a conflict; once dead the name can be reclaimed', () => {
    const net = new TestNet(15);
    net.addConverged(names(3));
    const impostor = { ...ident('c'), peerId: 'someone-else', addr: '10.9.9.9' };
    net.deliver('a', { type: 'gossip', from: 'b', updates: [{ type: 'alive', node: impostor, incarnation: 50 }] });
    assert.equal(net.core('a').member('c')?.peerId, 'peer-c');
    assert.equal(net.core('a').stats.conflicts, 1);
    assert.equal(net.warnings.at(-1)?.code, 'address-conflict');
    net.crashed.add('c');
    net.run(30_000);
    assert.equal(net.stateOf('a', 'c'), 'dead');
    net.deliver('a', { type: 'gossip', from: 'b', updates: [{ type: 'alive', node: impostor, incarnation: 1 }] });
    assert.equal(net.core('a').member('c')?.peerId, 'someone-else');
    assert.equal(net.stateOf('a', 'c'), 'alive');
  });

  test('members refused by validateMember (another datacenter) are not learned from gossip or push-pull', () => {
    const net = new TestNet(16);
    const validate = (n: { tags: Readonly<Record<string, string>> }) => (n.tags.dc && n.tags.dc !== 'dc1' ? `is in datacenter ${n.tags.dc}, this pool is dc1` : undefined);
    net.add('a', {}, { tags: { dc: 'dc1' }, validate });
    net.add('x', {}, { tags: { dc: 'dc2' } });
    assert.throws(() => net.join('x', 'a'), (e: unknown) => e instanceof GossipError && e.code === 'ERR_MEMBER_REFUSED' && /member x is in datacenter dc2/.test(e.message));
    assert.equal(net.core('a').member('x'), undefined);
    net.deliver('a', { type: 'gossip', from: 'q', updates: [{ type: 'alive', node: ident('x', { dc: 'dc2' }), incarnation: 3 }] });
    assert.equal(net.core('a').member('x'), undefined);
    assert.equal(net.core('a').stats.refused, 2);
  });

  test('tags over 512 encoded bytes are refused with a clear error', () => {
    const net = new TestNet(17);
    net.add('a');
    assert.throws(() => net.core('a').setTags({ big: 'x'.repeat(600) }, 0),
      (e: unknown) => e instanceof GossipError && e.code === 'ERR_TAGS_TOO_LARGE' && /exceeds the limit of 512 bytes/.test(e.message));
  });

  test('setTags announces a new incarnation and others see member-update', () => {
    const net = new TestNet(18);
    net.addConverged(names(3));
    net.core('a').setTags({ role: 'consul' }, net.now);
    net.flush('a');
    net.run(2000);
    assert.deepEqual(net.core('c').member('a')?.tags, { role: 'consul' });
    assert.ok(net.eventsOf('member-update', 'a').some((e) => e.at_node === 'c'));
  });
});

describe('user events (serf)', () => {
  test('an event reaches every member exactly once', () => {
    const net = new TestNet(19);
    net.addConverged(names(8));
    const ltime = net.core('c').fireUserEvent('deploy', new TextEncoder().encode('v2'), net.now);
    net.flush('c');
    net.run(5000);
    const got = net.events.filter((e) => e.event.type === 'user');
    assert.equal(got.length, 8);
    assert.equal(new Set(got.map((e) => e.at_node)).size, 8);
    for (const g of got) assert.ok(g.event.type === 'user' && g.event.ltime === ltime && new TextDecoder().decode(g.event.payload) === 'v2');
    assert.ok(net.core('a').stats.eventsDuplicate > 0, 'copies arrived and were recognised');
  });

  test('name + payload over 512 bytes is refused before anything is sent', () => {
    const net = new TestNet(20);
    net.addConverged(names(2));
    assert.throws(() => net.core('a').fireUserEvent('deploy', new Uint8Array(507), 0),
      (e: unknown) => e instanceof GossipError && e.code === 'ERR_EVENT_TOO_LARGE' && /is 513 bytes \(name \+ payload\); the limit is 512 bytes/.test(e.message));
    assert.doesNotThrow(() => net.core('a').fireUserEvent('deploy', new Uint8Array(506), 0));
    assert.throws(() => net.core('a').fireUserEvent('', new Uint8Array(0), 0), (e: unknown) => e instanceof GossipError && e.code === 'ERR_INVALID_EVENT');
  });

  test('a member that joins later does not replay old events, but receives new ones', () => {
    const net = new TestNet(21);
    net.addConverged(names(3));
    net.core('a').fireUserEvent('old', new Uint8Array(0), net.now);
    net.flush('a');
    net.run(3000);
    net.add('z');
    net.join('z', 'b');
    net.run(3000);
    assert.equal(net.events.filter((e) => e.at_node === 'z' && e.event.type === 'user').length, 0);
    net.core('a').fireUserEvent('new', new Uint8Array(0), net.now);
    net.flush('a');
    net.run(3000);
    const atZ = net.events.filter((e) => e.at_node === 'z' && e.event.type === 'user');
    assert.deepEqual(atZ.map((e) => e.event.type === 'user' && e.event.name), ['new']);
  });

  test('a member that missed an event gets it from a periodic push-pull', () => {
    const net = new TestNet(22);
    net.addConverged(names(3), { pushPullIntervalMs: 2000 });
    for (const n of ['a', 'b']) net.cut.add(`${n}>c`);
    net.core('a').fireUserEvent('missed', new Uint8Array(0), net.now);
    net.flush('a');
    net.run(1500);
    assert.equal(net.events.filter((e) => e.at_node === 'c' && e.event.type === 'user').length, 0);
    net.cut.clear();
    net.run(10_000);
    assert.equal(net.events.filter((e) => e.at_node === 'c' && e.event.type === 'user').length, 1);
  });
});

describe('determinism', () => {
  test('the same seed and inputs give the same run', () => {
    const run = (): string => {
      const net = new TestNet(99);
      net.addConverged(names(6));
      net.crashed.add('e');
      net.run(30_000);
      return JSON.stringify(net.sent.map((s) => [s.at, s.from, s.to, s.msg.type]));
    };
    assert.equal(run(), run());
  });
});
