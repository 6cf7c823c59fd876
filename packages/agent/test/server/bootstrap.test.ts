// -bootstrap-expect's decision (server/bootstrap.ts): a table of situations, and a property over
// random interleavings of discovery, stale answers and rounds: two servers never bootstrap with
// different sets that share a member, and with exactly N servers that all see each other, all of
// them bootstrap with the same set.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decideBootstrap, type BootstrapVote, type PeerBootstrapState } from '../../src/server/bootstrap.ts';
import type { DiscoveredServer } from '../../src/server/discovery.ts';

const server = (id: string, o: Partial<DiscoveredServer> = {}): DiscoveredServer => ({
  id, name: id, raftAddr: `${id}:8300`, dc: 'dc1', expect: 3, bootstrap: false, version: '0.1.0', status: 'alive', ...o,
});
const unlocked = (...candidates: string[]): PeerBootstrapState => ({ hasState: false, vote: { candidates, locked: false } });
const locked = (...candidates: string[]): PeerBootstrapState => ({ hasState: false, vote: { candidates, locked: true } });
const none: BootstrapVote = { candidates: [], locked: false };
const self = { id: 'b', dc: 'dc1', expect: 3 };

describe('decideBootstrap', () => {
  const cases: Array<{ name: string; servers: DiscoveredServer[]; answers: Record<string, PeerBootstrapState>; vote?: BootstrapVote; kind: string; match?: RegExp; candidates?: string[] }> = [
    { name: 'too few servers: wait', servers: [server('a')], answers: { a: unlocked() }, kind: 'wait', match: /2 known/ },
    { name: 'servers of another datacenter do not count', servers: [server('a'), server('c', { dc: 'dc2' })], answers: {}, kind: 'wait', match: /2 known/ },
    { name: 'failed and left servers do not count', servers: [server('a'), server('c', { status: 'failed' }), server('d', { status: 'left' })], answers: {}, kind: 'wait' },
    { name: 'N servers: propose the set, wait for agreement', servers: [server('a'), server('c')], answers: { a: unlocked(), c: unlocked() }, kind: 'wait', candidates: ['a', 'b', 'c'], match: /waiting for a, c to agree/ },
    { name: 'everyone proposes the same set: lock it', servers: [server('a'), server('c')], answers: { a: unlocked('a', 'b', 'c'), c: locked('a', 'b', 'c') }, kind: 'lock', candidates: ['a', 'b', 'c'] },
    { name: 'an unreachable member blocks the lock', servers: [server('a'), server('c')], answers: { a: unlocked('a', 'b', 'c') }, kind: 'wait' },
    { name: 'locked: bootstrap once every member is locked on the same set', servers: [server('a'), server('c')], answers: { a: locked('a', 'b', 'c'), c: locked('a', 'b', 'c') }, vote: { candidates: ['a', 'b', 'c'], locked: true }, kind: 'bootstrap' },
    { name: 'locked: a member still unlocked makes us wait', servers: [server('a'), server('c')], answers: { a: locked('a', 'b', 'c'), c: unlocked('a', 'b', 'c') }, vote: { candidates: ['a', 'b', 'c'], locked: true }, kind: 'wait', match: /waiting for c/ },
    { name: 'locked: a member locked on another set makes us wait (forever, safely)', servers: [server('a'), server('c'), server('d')], answers: { a: locked('a', 'b', 'c'), c: locked('a', 'c', 'd') }, vote: { candidates: ['a', 'b', 'c'], locked: true }, kind: 'wait' },
    { name: 'a peer locked on a set with us: adopt it', servers: [server('a'), server('c'), server('d')], answers: { d: locked('b', 'c', 'd') }, kind: 'lock', candidates: ['b', 'c', 'd'] },
    { name: 'a peer with Raft state: join it', servers: [server('a'), server('c')], answers: { a: { hasState: true, vote: none } }, kind: 'join' },
    { name: 'a conflicting expect blocks bootstrap', servers: [server('a'), server('c', { expect: 5 })], answers: {}, kind: 'blocked', match: /this server expects 3, c expects 5/ },
    { name: 'a server in bootstrap mode blocks bootstrap-expect', servers: [server('a'), server('c', { bootstrap: true, expect: 0 })], answers: {}, kind: 'blocked', match: /bootstrap mode/ },
    { name: 'servers without expect are not founders', servers: [server('a'), server('c', { expect: 0 })], answers: {}, kind: 'wait', match: /2 known/ },
    { name: 'more than N: the N smallest IDs found; a server outside waits to be added', servers: [server('a'), server('0'), server('1')].map((s) => s), answers: {}, kind: 'wait', candidates: ['0', '1', 'a'], match: /does not include this server/ },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const d = decideBootstrap({ self, servers: c.servers, answers: new Map(Object.entries(c.answers)), vote: c.vote ?? none });
      assert.equal(d.kind, c.kind, JSON.stringify(d));
      if (c.match) assert.match('reason' in d ? d.reason : '', c.match);
      if (c.candidates) assert.deepEqual('vote' in d ? d.vote.candidates : [], c.candidates);
    });
  }
});

// ---- property: random interleavings ---------------------------------------------------------------

interface Sim {
  id: string;
  known: Set<string>;
  vote: BootstrapVote;
  /** Answers gathered by the last ask (possibly stale when used). */
  answers: Map<string, PeerBootstrapState>;
  bootstrapped: string[] | undefined;
  joined: boolean;
}

type Step =
  | { kind: 'discover'; a: number; b: number }
  | { kind: 'ask'; a: number; drop: number }
  | { kind: 'decide'; a: number };

function runSim(ids: string[], steps: Step[], N: number): Sim[] {
  const sims: Sim[] = ids.map((id) => ({ id, known: new Set(), vote: { candidates: [], locked: false }, answers: new Map(), bootstrapped: undefined, joined: false }));
  const done = (s: Sim) => s.bootstrapped !== undefined || s.joined;
  for (const step of steps) {
    const s = sims[step.a % sims.length]!;
    if (step.kind === 'discover') {
      const o = sims[step.b % sims.length]!;
      if (o !== s) { s.known.add(o.id); o.known.add(s.id); }
      continue;
    }
    if (done(s)) continue;
    if (step.kind === 'ask') {
      s.answers = new Map();
      let bit = 0;
      for (const id of s.known) {
        if ((step.drop >> bit++) & 1) continue; // that peer did not answer this time
        const o = sims.find((x) => x.id === id)!;
        s.answers.set(id, { hasState: o.bootstrapped !== undefined || o.joined, vote: { candidates: [...o.vote.candidates], locked: o.vote.locked } });
      }
      continue;
    }
    // decide (a lock re-decides at once with the same answers, as the coordinator does)
    for (let i = 0; i < 2; i++) {
      const d = decideBootstrap({ self: { id: s.id, dc: 'dc1', expect: N }, servers: [...s.known].map((id) => server(id)), answers: s.answers, vote: s.vote });
      if (d.kind === 'bootstrap') s.bootstrapped = d.members;
      else if (d.kind === 'join') s.joined = true;
      else s.vote = d.vote;
      if (d.kind !== 'lock') break;
    }
  }
  return sims;
}

const stepArb = fc.oneof(
  fc.record({ kind: fc.constant('discover' as const), a: fc.nat(9), b: fc.nat(9) }),
  fc.record({ kind: fc.constant('ask' as const), a: fc.nat(9), drop: fc.oneof(fc.constant(0), fc.nat(31)) }),
  fc.record({ kind: fc.constant('decide' as const), a: fc.nat(9) }),
);

describe('bootstrap agreement (scenario)', () => {
  test('a view that grows mid-agreement (a fourth server appears) cannot produce two founding sets', () => {
    // b, c, d see each other and propose {b,c,d}; d gathers their answers. Then a appears to b and c,
    // who now propose {a,b,c} and (with a) agree on it. Without the lock phase, d would bootstrap
    // {b,c,d} from its (now stale) answers while a, b, c bootstrap {a,b,c}: b and c in both.
    const [a, b, c, d] = [0, 1, 2, 3];
    const steps: Step[] = [
      { kind: 'discover', a: b, b: c }, { kind: 'discover', a: b, b: d }, { kind: 'discover', a: c, b: d },
      { kind: 'decide', a: b }, { kind: 'decide', a: c }, { kind: 'decide', a: d }, // everyone proposes {b,c,d}
      { kind: 'ask', a: d, drop: 0 }, // d's answers: b and c propose {b,c,d}
      { kind: 'discover', a: a, b: b }, { kind: 'discover', a: a, b: c },
      { kind: 'decide', a: a }, { kind: 'decide', a: b }, { kind: 'decide', a: c }, // now {a,b,c}
      { kind: 'ask', a: a, drop: 0 }, { kind: 'ask', a: b, drop: 0 }, { kind: 'ask', a: c, drop: 0 },
      { kind: 'decide', a: d }, // acts on stale answers
      { kind: 'decide', a: a }, { kind: 'decide', a: b }, { kind: 'decide', a: c },
      { kind: 'ask', a: a, drop: 0 }, { kind: 'ask', a: b, drop: 0 }, { kind: 'ask', a: c, drop: 0 }, { kind: 'ask', a: d, drop: 0 },
      { kind: 'decide', a: a }, { kind: 'decide', a: b }, { kind: 'decide', a: c }, { kind: 'decide', a: d },
    ];
    const sims = runSim(['a', 'b', 'c', 'd'], steps, 3);
    const sets = new Set(sims.filter((s) => s.bootstrapped).map((s) => s.bootstrapped!.join()));
    assert.ok(sets.size <= 1, `founding sets: ${[...sets].join(' | ')}`);
  });
});

describe('bootstrap agreement (property)', () => {
  const coverage = { twoOrMore: 0, distinctSets: 0 };
  test('two different founding sets that share a server are never both bootstrapped (3 to 5 servers expecting 3)', () => {
    fc.assert(fc.property(fc.integer({ min: 3, max: 5 }), fc.array(stepArb, { minLength: 50, maxLength: 300, size: 'max' }), (k, steps) => {
      const ids = ['a', 'b', 'c', 'd', 'e'].slice(0, k);
      const sims = runSim(ids, steps, 3);
      const sets = sims.filter((s) => s.bootstrapped).map((s) => ({ by: s.id, set: s.bootstrapped! }));
      if (sets.length >= 2) coverage.twoOrMore++;
      if (new Set(sets.map((x) => x.set.join())).size > 1) coverage.distinctSets++;
      for (const x of sets) {
        assert.ok(x.set.includes(x.by), `${x.by} bootstrapped a set without itself`);
        assert.equal(x.set.length, 3);
        for (const y of sets) {
          const share = x.set.some((id) => y.set.includes(id));
          if (share) assert.deepEqual(x.set, y.set, `${x.by} bootstrapped [${x.set}] and ${y.by} [${y.set}]`);
        }
      }
    }), { numRuns: 500 });
    process.stderr.write(`bootstrap property coverage: ${JSON.stringify(coverage)}\n`);
    assert.ok(coverage.twoOrMore > 50, `the property rarely reaches bootstrap (${JSON.stringify(coverage)})`);
  });

  test('exactly N servers that see each other all bootstrap with the same set, whatever the order', () => {
    fc.assert(fc.property(fc.array(stepArb, { maxLength: 100 }), fc.array(fc.nat(2), { minLength: 3, maxLength: 3 }), (noise, order) => {
      const ids = ['a', 'b', 'c'];
      const full: Step[] = [{ kind: 'discover', a: 0, b: 1 }, { kind: 'discover', a: 1, b: 2 }, { kind: 'discover', a: 0, b: 2 }];
      // After arbitrary noise (restricted to the three), fair rounds in the given order until done.
      const rounds: Step[] = [];
      for (let r = 0; r < 6; r++) for (const a of order.concat([0, 1, 2])) rounds.push({ kind: 'ask', a, drop: 0 }, { kind: 'decide', a });
      const sims = runSim(ids, [...noise.map((s) => ({ ...s, a: s.a % 3, ...(s.kind === 'discover' ? { b: s.b % 3 } : {}) })), ...full, ...rounds], 3);
      for (const s of sims) assert.deepEqual(s.bootstrapped, ['a', 'b', 'c'], `${s.id}: ${JSON.stringify(s)}`);
    }), { numRuns: 300 });
  });
});
