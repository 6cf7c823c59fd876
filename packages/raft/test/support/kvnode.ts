// One Raft node in its own OS process, for the real-process test and the benchmark: gRPC transport,
// level log store, file snapshots, and a small KV state machine. Controlled by its parent over the
// IPC channel (child_process.fork), so the test measures Raft, not an HTTP stack.
//   node kvnode.ts --id a --dir /tmp/x/a --listen 127.0.0.1:0 [--bootstrap a=addr,b=addr,c=addr]
import { parseArgs } from 'node:util';
import { RaftNode } from '../../src/node.ts';
import { GrpcTransport } from '../../src/transport/grpc.ts';
import { LevelLogStore } from '../../src/storage/level.ts';
import { FileSnapshotStore } from '../../src/storage/snapshots.ts';
import type { Entry } from '../../src/core/types.ts';
import { NotLeaderError } from '../../src/errors.ts';

const { values } = parseArgs({
  options: {
    id: { type: 'string' }, dir: { type: 'string' }, listen: { type: 'string' },
    'snapshot-threshold': { type: 'string', default: '16384' }, 'tick-ms': { type: 'string', default: '100' },
  },
});
const id = values.id!;
const dir = values.dir!;

class KvMachine {
  map = new Map<string, string>();
  apply(e: Entry): unknown {
    const op = JSON.parse(Buffer.from(e.data).toString('utf8')) as { k: string; v: string };
    this.map.set(op.k, op.v);
    return e.index;
  }
  snapshot(): Uint8Array { return Buffer.from(JSON.stringify([...this.map])); }
  restore(data: Uint8Array): void { this.map = new Map(JSON.parse(Buffer.from(data).toString('utf8'))); }
}

const fsm = new KvMachine();
const transport = new GrpcTransport({ id, listen: values.listen ?? '127.0.0.1:0' });
const node = new RaftNode({
  id, transport, stateMachine: fsm,
  logStore: new LevelLogStore(`${dir}/log`),
  snapshotStore: new FileSnapshotStore(`${dir}/snapshots`),
  snapshotThreshold: Number(values['snapshot-threshold']),
  tickMs: Number(values['tick-ms']),
});

type Req = { rid: number; op: string; [k: string]: unknown };
const send = (m: object) => process.send!(m);

async function handle(req: Req): Promise<object> {
  switch (req.op) {
    case 'bootstrap': await node.bootstrap(req.members as Record<string, string>); return {};
    case 'start': await node.start(); return { address: transport.localAddress() };
    case 'address': return { address: transport.localAddress() };
    case 'put': {
      const index = await node.propose(Buffer.from(JSON.stringify({ k: req.k, v: req.v })));
      return { index };
    }
    case 'read': await node.read(); return { value: fsm.map.get(req.k as string) ?? null };
    case 'dump': return { entries: [...fsm.map], applied: node.status().appliedIndex };
    case 'status': return { status: node.status(), rss: process.memoryUsage().rss };
    case 'load': return await load(Number(req.concurrency), Number(req.durationMs), Number(req.valueBytes ?? 64));
    case 'stop': await node.stop(); setImmediate(() => process.exit(0)); return {};
    default: throw new Error(`unknown op ${req.op}`);
  }
}

/** Closed-loop load: `concurrency` workers each propose, await apply, repeat, for durationMs. */
async function load(concurrency: number, durationMs: number, valueBytes: number) {
  const value = 'x'.repeat(valueBytes);
  const lat: number[] = [];
  let errors = 0;
  const end = performance.now() + durationMs;
  let seq = 0;
  await Promise.all(Array.from({ length: concurrency }, async (_, w) => {
    while (performance.now() < end) {
      const t0 = performance.now();
      try {
        await node.propose(Buffer.from(`{"k":"w${w}-${seq++ % 1000}","v":"${value}"}`));
        lat.push(performance.now() - t0);
      } catch { errors++; }
    }
  }));
  lat.sort((a, b) => a - b);
  const q = (p: number) => lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]! : NaN;
  return { commits: lat.length, errors, seconds: durationMs / 1000, p50: q(0.5), p99: q(0.99) };
}

process.on('message', (req: Req) => {
  handle(req).then(
    (res) => send({ rid: req.rid, ok: true, ...res }),
    (err: Error) => send({ rid: req.rid, ok: false, error: err.message, code: (err as { code?: string }).code,
      leader: err instanceof NotLeaderError ? err.leader : undefined }),
  );
});
send({ ready: true, pid: process.pid });
