// Leaf certificate signing rate of one server (issue 13's target: ≥ 200 leaves/s).
//
//   npx node packages/agent/bench/leaf.ts [--seconds 10] [--concurrency 8] [--json]
//   npm run bench:leaf
//
// Two figures:
//   in-process  ServerCA.sign on a store with a CA, one CSR after another: the CA's own cost
//               (CSR parse and signature check, the leaf built by node-forge, the RSA 2048
//               signature made by node:crypto).
//   over HTTP   a real server agent (its own process) answering PUT /v1/internal/connect/ca/sign,
//               the endpoint client agents forward their CSRs to, from `--concurrency` keep-alive
//               connections, with CSRMaxPerSecond 0 (no rate limit) so the server's capacity shows.
// CSRs (one per distinct service, RSA 2048 keys) are made before the clock starts: on the agents
// that make them, key generation is spread over time and is not the server's work.
import http from 'node:http';
import path from 'node:path';
import os from 'node:os';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { AgentProcess } from '../../../test/support/index.ts';
import { createCsr, generateKeyPair } from '../src/ca/certs.ts';
import { serviceId } from '../src/connect/spiffe.ts';
import { ServerCA } from '../src/server/connectCA.ts';
import { StateStore } from '../src/state/store.ts';
import type { Command, CommandResult } from '../src/state/types.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '8' },
    csrs: { type: 'string', default: '200' },
    json: { type: 'boolean', default: false },
  },
  strict: true,
});
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
const csrCount = Number(values.csrs);
if (!(seconds > 0) || !Number.isInteger(concurrency) || concurrency < 1 || !Number.isInteger(csrCount) || csrCount < 1) {
  process.stderr.write('usage: node packages/agent/bench/leaf.ts [--seconds N] [--concurrency N] [--csrs N] [--json]\n');
  process.exit(2);
}

function makeCsrs(trustDomain: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < csrCount; i++) out.push(createCsr(serviceId(trustDomain, 'dc1', `svc-${i}`), generateKeyPair().privateKeyPem));
  return out;
}

async function inProcess(): Promise<number> {
  const store = new StateStore();
  let index = 0;
  const apply = async (cmd: Command): Promise<CommandResult> => store.apply(++index, cmd);
  const ca = new ServerCA({ store, apply, datacenter: 'dc1', logger: pino({ level: 'silent' }) });
  await ca.initialize();
  const cfg = store.caConfig().value!;
  await ca.setConfig({ Provider: 'consul', Config: { ...cfg.Config, CSRMaxPerSecond: 0 } });
  const csrs = makeCsrs(`${cfg.ClusterID}.consul`);
  let n = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) ca.sign(csrs[n++ % csrs.length]!);
  return n / ((performance.now() - start) / 1000);
}

function put(agent: http.Agent, port: number, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'PUT', path: '/v1/internal/connect/ca/sign', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function overHttp(): Promise<{ rate: number; errors: number; rssMb: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-bench-leaf-'));
  const server = await AgentProcess.start({ name: 'bench-leaf', mode: 'server', dir, args: ['-log-level', 'warn'] });
  try {
    const roots = await (async () => {
      for (let i = 0; i < 300; i++) {
        const r = await server.request('GET', '/v1/connect/ca/roots');
        const j = r.status === 200 ? r.json<{ ActiveRootID: string; TrustDomain: string }>() : undefined;
        if (j && j.ActiveRootID !== '') return j;
        await new Promise((res) => setTimeout(res, 100));
      }
      throw new Error('the server made no CA within 30 s');
    })();
    const put0 = await server.request('PUT', '/v1/connect/ca/configuration', { body: { Provider: 'consul', Config: { CSRMaxPerSecond: 0 } } });
    if (put0.status !== 200) throw new Error(`could not lift the rate limit: ${put0.status} ${put0.text}`);
    const bodies = makeCsrs(roots.TrustDomain).map((CSR) => JSON.stringify({ CSR }));
    const port = Number(new URL(server.url).port);
    const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
    let done = 0;
    let errors = 0;
    let next = 0;
    const start = performance.now();
    const end = start + seconds * 1000;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const status = await put(agent, port, bodies[next++ % bodies.length]!);
        if (status === 200) done++;
        else errors++;
      }
    }));
    const rate = done / ((performance.now() - start) / 1000);
    agent.destroy();
    const status = fs.readFileSync(`/proc/${server.pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { rate, errors, rssMb: rssKb / 1024 };
  } finally {
    await server.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const local = await inProcess();
const remote = await overHttp();
const result = { seconds, concurrency, inProcessPerSecond: Math.round(local), httpPerSecond: Math.round(remote.rate), httpErrors: remote.errors, serverRssMb: Math.round(remote.rssMb) };
if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
else {
  process.stdout.write(`leaf signing, one server, RSA 2048 leaves, ${seconds} s each\n`);
  process.stdout.write(`  in-process ServerCA.sign:            ${result.inProcessPerSecond} leaves/s\n`);
  process.stdout.write(`  PUT /v1/internal/connect/ca/sign (c=${concurrency}): ${result.httpPerSecond} leaves/s (${result.httpErrors} errors), server RSS ${result.serverRssMb} MB\n`);
  process.stdout.write(`  target: >= 200 leaves/s\n`);
}
