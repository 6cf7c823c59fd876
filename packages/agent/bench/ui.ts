// The web UI's speed (issue 18): first render of the services page with 1,000 registered services
// (target <= 500 ms in headless Chromium) and the CPU an idle agent spends on a UI left open
// (target <= 1% of a core).
//
//   npm run bench:ui [-- --services 1000] [--runs 5] [--idle-seconds 30] [--json]
//
// A real `trellis agent -dev` (test/support/agentProcess.ts) gets N services registered through
// /v1/catalog/register (each with a passing check and two tags); headless Debian Chromium
// (puppeteer-core, test/support/browser.ts) then opens /ui/dc1/services `runs` times in a fresh
// page, after one uncounted warm-up load. First render: from the start of navigation to the moment
// the table shows a screenful of rows (20), measured in the page; also reported: until it holds
// every service (the page renders long lists in chunks, the first at once). Idle CPU: the agent's
// utime+stime (/proc/<pid>/stat) over `idle-seconds` with the services page open and nothing
// changing, minus the same span with no UI open, as a percentage of one core.
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
declare const document: { querySelectorAll(s: string): { length: number }; querySelector(s: string): { textContent: string | null } | null };
declare const window: unknown;
declare class MutationObserver { constructor(cb: () => void); observe(target: unknown, opts: { childList: boolean; subtree: boolean }): void }
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
  // What the page must list: the N services registered here (rows named svc-*; the agent's own
  // "consul" service may or may not be listed yet, so it is not counted).
  const want = N;
  const listed = (await agent.getJson<{ Name: string }[]>('/v1/internal/ui/services')).filter((s) => s.Name.startsWith('svc-')).length;
  if (listed !== N) throw new Error(`the API lists ${listed} of the ${N} services registered`);
  // A screenful of rows at 1280x800 (the first render a person sees), and the whole list.
  const screenful = Math.min(want, 20);

  const renders: number[] = [];
  const completes: number[] = [];
  // One warm-up load first (the browser's first page pays for its own start-up), not counted.
  for (let run = -1; run < RUNS; run++) {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    // Times (performance.now(), from the start of navigation) when the table first holds a
    // screenful of rows and all of them, recorded in the page by a MutationObserver.
    await page.evaluateOnNewDocument((few: number, all: number) => {
      const w = window as unknown as { uiBench: { first?: number; all?: number } };
      w.uiBench = {};
      new MutationObserver(() => {
        const n = document.querySelectorAll('tr[data-service^="svc-"]').length;
        if (w.uiBench.first === undefined && n >= few) w.uiBench.first = performance.now();
        if (w.uiBench.all === undefined && n >= all) w.uiBench.all = performance.now();
      }).observe(document, { childList: true, subtree: true });
    }, screenful, want);
    await page.goto(`${agent.url}/ui/dc1/services`);
    try {
      await page.waitForFunction(() => (window as unknown as { uiBench: { all?: number } }).uiBench.all !== undefined, { timeout: 60_000 });
    } catch (err) {
      const shown = await page.evaluate(() => [document.querySelectorAll('tr[data-service^="svc-"]').length, document.querySelector('main')?.textContent?.slice(0, 300)]);
      throw new Error(`the services page did not list ${want} services: ${JSON.stringify(shown)}`, { cause: err });
    }
    const t = await page.evaluate(() => (window as unknown as { uiBench: { first: number; all: number } }).uiBench);
    if (run >= 0) { renders.push(t.first); completes.push(t.all); }
    await page.close();
  }
  renders.sort((a, b) => a - b);
  completes.sort((a, b) => a - b);

  // Idle CPU: without the UI, then with the services page open.
  const pid = agent.pid!;
  await new Promise((r) => setTimeout(r, 2000));
  const withoutUi = await cpuPercentOver(pid, IDLE_S);
  const page = await browser.newPage();
  await page.goto(`${agent.url}/ui/dc1/services`);
  await page.waitForFunction((n: number) => document.querySelectorAll('tr[data-service^="svc-"]').length >= n, { timeout: 60_000 }, screenful);
  const withUi = await cpuPercentOver(pid, IDLE_S);
  await page.close();

  const result = {
    services: N, runs: RUNS,
    allRowsMs: { median: +completes[Math.floor(completes.length / 2)]!.toFixed(0), max: +completes[completes.length - 1]!.toFixed(0) },
    firstRenderMs: { median: +renders[Math.floor(renders.length / 2)]!.toFixed(0), min: +renders[0]!.toFixed(0), max: +renders[renders.length - 1]!.toFixed(0), target: 500 },
    idleCpuPercent: { withoutUi: +withoutUi.toFixed(2), withUi: +withUi.toFixed(2), added: +(withUi - withoutUi).toFixed(2), target: 1, seconds: IDLE_S },
    loadavg: os.loadavg().map((x) => +x.toFixed(2)), cpus: os.cpus().length,
  };
  if (values.json) console.log(JSON.stringify(result));
  else {
    console.log(`services page with ${want} services, first render (a screenful of rows): median ${result.firstRenderMs.median} ms (min ${result.firstRenderMs.min}, max ${result.firstRenderMs.max}; target <= 500 ms) over ${RUNS} runs`);
    console.log(`  all ${want} rows in the table: median ${result.allRowsMs.median} ms (max ${result.allRowsMs.max})`);
    console.log(`idle agent CPU over ${IDLE_S} s: ${result.idleCpuPercent.withoutUi}% without the UI, ${result.idleCpuPercent.withUi}% with the services page open: +${result.idleCpuPercent.added}% (target <= 1%)`);
    console.log(`load average ${result.loadavg.join(' ')} on ${result.cpus} CPUs`);
  }
} finally {
  await browser.close();
  await agent.dispose();
}
