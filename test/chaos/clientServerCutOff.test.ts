// Issue 16's majority-side throughput, through a client agent: when the server a client agent sends
// its requests to is cut off by a minority partition (the client on the majority side), the client
// agent stops waiting on it once gossip suspects it, and its reads run on another server, instead of
// hanging until keepalive drops the connection or the caller's timeout. Three real servers and a
// client agent in network namespaces.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { netnsUnavailable } from '../support/netns.ts';
import { request } from '../support/http.ts';
import { ChaosCluster } from './cluster.ts';

const why = netnsUnavailable();
let cluster: ChaosCluster | undefined;
let failed = true;
const savedLevel = process.env.TRELLIS_CHAOS_LOG_LEVEL;

after(async () => {
  await cluster?.dispose({ keep: failed && process.env.TRELLIS_E2E_KEEP === '1' });
  if (savedLevel === undefined) delete process.env.TRELLIS_CHAOS_LOG_LEVEL; else process.env.TRELLIS_CHAOS_LOG_LEVEL = savedLevel;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Read { start: number; end: number; status: number | string }

test('a client agent moves its reads off a server that is cut off once gossip suspects it', { skip: why || false, timeout: 90_000 }, async (t) => {
  // Debug level: the client agent's log names the server it prefers ("servers changed").
  process.env.TRELLIS_CHAOS_LOG_LEVEL = 'debug';
  const net = ChaosCluster.plan(3, 1);
  cluster = await ChaosCluster.create(net, 3, 1, '', 3);
  cluster.startAll();
  await cluster.waitFormed(45_000);
  const c1 = cluster.clients[0]!;
  const put = await request(c1.url, 'PUT', '/v1/kv/cut/k', { body: 'v1', timeoutMs: 5000 });
  assert.equal(put.status, 200, put.text);

  const reads: Read[] = [];
  let stop = false;
  const loop = async () => {
    while (!stop) {
      const start = Date.now();
      let status: number | string;
      try {
        status = (await request(c1.url, 'GET', '/v1/kv/cut/k?consistent', { timeoutMs: 8000 })).status;
      } catch (err) {
        status = (err as Error).message;
      }
      reads.push({ start, end: Date.now(), status });
      await sleep(5);
    }
  };
  const loops = [loop(), loop(), loop(), loop()];
  await sleep(1500);
  assert.ok(reads.filter((r) => r.status === 200).length > 20, 'reads through the client agent before the fault');

  // The server the client agent prefers: the first of its latest "servers changed" line.
  const changes = [...c1.log().matchAll(/servers changed: servers=(\[[^\]]*\])/g)];
  assert.ok(changes.length > 0, 'the client agent logged no server list');
  const preferred = (JSON.parse(changes.at(-1)![1]!) as string[])[0]!;
  const cut = cluster.servers.find((s) => s.rpcAddr === preferred);
  assert.ok(cut, `the client agent prefers ${preferred}, which is no server of the cluster`);
  const others = cluster.agents.filter((a) => a !== cut).map((a) => a.name);

  const cutAt = Date.now();
  await net.partition([[cut.name], others]);
  await sleep(6000);
  stop = true;
  await Promise.all(loops);

  // When the client agent started to suspect the cut-off server (its debug log, which has ms times).
  const suspected = [...c1.log().matchAll(/^(\S+Z) \[DEBUG\]\s+agent\.client\.servers: gossip suspects a server; preferring another: server="?([^"\s]+)"?/gm)]
    .map((m) => ({ at: Date.parse(m[1]!), server: m[2]! }))
    .find((x) => x.server === cut.rpcAddr && x.at >= cutAt - 50);
  const lines: string[] = [];
  let worst = 0;
  for (const r of reads.filter((x) => x.end > cutAt && x.start < cutAt + 3000)) {
    worst = Math.max(worst, r.end - Math.max(r.start, cutAt));
    lines.push(`sent +${r.start - cutAt} ms, answered ${r.status} at +${r.end - cutAt} ms`);
  }
  const summary = lines.join('\n');
  t.diagnostic(`client agent's server ${cut.name} cut off; suspected after ${suspected ? `${suspected.at - cutAt} ms` : '(never)'}; ` +
    `${lines.length} reads in the first 3 s, the slowest answered ${worst} ms after the cut or its sending`);
  if (process.env.TRELLIS_TEST_VERBOSE) t.diagnostic(summary);
  assert.ok(lines.length > 0, 'no read was sent during the fault');
  for (const l of lines) if (!/ answered 200 /.test(l)) assert.fail(`a read through the client agent failed (server ${cut.name} cut off):\n${summary}`);
  // Gossip suspects a server 1-2 s after it stops answering (SWIM probes); before the client agent
  // followed suspicion, its reads waited until keepalive dropped the connection (2-4 s after the cut).
  assert.ok(suspected, `the client agent never logged that gossip suspects ${cut.name} (${cut.rpcAddr})`);
  // Reads waiting on the cut-off server move to another one at the suspicion: each is answered within
  // 1.5 s of it (time for a new leader, when the cut-off server led).
  const late = reads.filter((r) => r.start < suspected.at && r.end > suspected.at + 1500);
  assert.equal(late.length, 0, `reads still waiting 1.5 s after the client agent suspected ${cut.name} (+${suspected.at - cutAt} ms):\n${summary}`);
  failed = false;
});
