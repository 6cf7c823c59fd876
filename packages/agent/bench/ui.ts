// The web UI's speed (issue 18): first render of the services page with 1,000 registered services
// (target <= 500 ms in headless Chromium) and the CPU an idle agent spends on a UI left open
// (target <= 1% of a core).
//
//   npm run bench:ui [-- --services 1000] [--runs 5] [--idle-seconds 30] [--json]
//
// A real `trellis agent -dev` (test/support/agentProcess.ts) gets N services registered through
// /v1/catalog/register (each with a passing check and two tags); headless Debian Chromium
// (puppeteer-core, test/support/browser.ts) then opens /ui/dc1/services `runs` times in a fresh
// page, after one uncounted warm-up load. First render: from the start of navigation (performance.timeOrigin) to the moment the table
// holds every service, measured in the page. Idle CPU: the agent's utime+stime (/proc/<pid>/stat)
// over `idle-seconds` with the services page open and nothing changing, minus the same span with no
// UI open, as a percentage of one core.
import fs from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { AgentProcess } from '../../../test/support/index.ts';
import { launchBrowser } from '../../../test/support/browser.ts';

const { values } = parseArgs({ options: {
  services: { type: 'string', default: '1000' }, runs: { type: 'string', default: '5' },
  'idle-seconds': { type: 'string', default: '30' }, json: { type: 'boolean', default: false },
}, strict: true });
const N = Number(values.services);
const RUNS = Number(values.runs);
const IDLE_S = Number(values['idle-seconds']);
if (!(N >= 1 && RUNS >= 1 && IDLE_S >= 5)) throw new Error('--services >= 1, --runs >= 1, --idle-seconds >= 5');

// Browser names used in the page functions (the repo's type check has no DOM library).
declare const document: { querySelectorAll(s: string): { length: number } };
declare function requestAnimationFrame(cb: () => void): number;

const TICKS = 100; // USER_HZ on Linux
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICKS; // utime, stime (fields 14 and 15)
}
async function cpuPercentOver(pid: number, seconds: number): Promise<number> {
  const c0 = cpuSeconds(pid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return ((cpuSeconds(pid) - c0) / ((performance.now() - t0) / 1000)) * 100;
}

const agent = await AgentProcess.start({ name: 'bench-ui' });
const browser = await launchBrowser();
try {
  const t0 = Date.now();
  for (let i = 0; i < N; i++) {
    const name = `svc-${String(i).padStart(4, '0')}`;
    const r = await agent.request('PUT', '/v1/catalog/register', { body: {
      Node: `node-${i % 20}`, Address: `10.0.${i % 20}.1`,
      Service: { Service: name, ID: name, Port: 8000 + (i % 1000), Tags: ['bench', `t${i % 7}`] },
      Check: { CheckID: `chk-${name}`, Name: 'bench', Status: 'passing', ServiceID: name },
    } });
    if (r.status !== 200) throw new Error(`register ${name}: ${r.status} ${r.text}`);
  }
  process.stderr.write(`bench:ui: registered ${N} services in ${Date.now() - t0} ms\n`);
  const want = N + 1; // and the agent's own "consul"

  const renders: number[] = [];
  // One warm-up load first (the browser's first page pays for its own start-up), not counted.
  for (let run = -1; run < RUNS; run++) {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    await page.goto(`${agent.url}/ui/dc1/services`);
    await page.waitForFunction((n) => document.querySelectorAll('tr[data-service]').length >= n, { timeout: 60_000 }, want);
    // Rendered (DOM complete); the next frame is when it is on screen.
    const ms = await page.evaluate(() => new Promise<number>((r) => requestAnimationFrame(() => r(performance.now()))));
    if (run >= 0) renders.push(ms);
    await page.close();
  }
  renders.sort((a, b) => a - b);

  // Idle CPU: without the UI, then with the services page open.
  const pid = agent.pid!;
  await new Promise((r) => setTimeout(r, 2000));
  const withoutUi = await cpuPercentOver(pid, IDLE_S);
  const page = await browser.newPage();
  await page.goto(`${agent.url}/ui/dc1/services`);
  await page.waitForFunction((n) => document.querySelectorAll('tr[data-service]').length >= n, { timeout: 60_000 }, want);
  const withUi = await cpuPercentOver(pid, IDLE_S);
  await page.close();

  const result = {
    services: N, runs: RUNS,
    firstRenderMs: { median: +renders[Math.floor(renders.length / 2)]!.toFixed(0), min: +renders[0]!.toFixed(0), max: +renders[renders.length - 1]!.toFixed(0), target: 500 },
    idleCpuPercent: { withoutUi: +withoutUi.toFixed(2), withUi: +withUi.toFixed(2), added: +(withUi - withoutUi).toFixed(2), target: 1, seconds: IDLE_S },
    loadavg: os.loadavg().map((x) => +x.toFixed(2)), cpus: os.cpus().length,
  };
  if (values.json) console.log(JSON.stringify(result));
  else {
    console.log(`services page, first render with ${N} services: median ${result.firstRenderMs.median} ms (min ${result.firstRenderMs.min}, max ${result.firstRenderMs.max}; target <= 500 ms) over ${RUNS} runs`);
    console.log(`idle agent CPU over ${IDLE_S} s: ${result.idleCpuPercent.withoutUi}% without the UI, ${result.idleCpuPercent.withUi}% with the services page open: +${result.idleCpuPercent.added}% (target <= 1%)`);
    console.log(`load average ${result.loadavg.join(' ')} on ${result.cpus} CPUs`);
  }
} finally {
  await browser.close();
  await agent.dispose();
}
