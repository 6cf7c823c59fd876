// The README's test command: type-check, then every test file under node's test runner, then one
// plain summary line ("N passed, N failed, N skipped") that CI reads.
//   npm test                 all suites
//   npm test -- raft         only test files whose path contains "raft"
import { spawnSync, spawn } from 'node:child_process';
import { globSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const skipTypecheck = process.argv.includes('--no-typecheck');

// The system packages the suites need (dig, ...): installed here, so `npm install && npm test`
// works on a fresh machine with nothing else done (the script is a no-op when all are present).
const deps = spawnSync('bash', [path.join(root, 'deploy', 'install-test-deps.sh')], { cwd: root, stdio: 'inherit' });
if (deps.status !== 0) {
  process.stdout.write('test deps: deploy/install-test-deps.sh failed; the suites that need those packages will fail. ' +
    'Run it as root (it uses apt-get), or install the packages it names.\n');
}

let typecheckFailed = 0;
if (!skipTypecheck) {
  process.stdout.write('typecheck: tsc --noEmit\n');
  const tsc = spawnSync('tsc', ['--noEmit', '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
  if (tsc.status !== 0) { typecheckFailed = 1; process.stdout.write('typecheck: FAILED\n'); }
  // The layer rules (.dependency-cruiser.cjs): no import cycles, state/ at the bottom, pure cores
  // without I/O, the gateway never importing the agent. Counted with the type check.
  process.stdout.write('layers: depcruise (.dependency-cruiser.cjs)\n');
  const sources = globSync('packages/*/src', { cwd: root });
  const layers = spawnSync('depcruise', ['--config', '.dependency-cruiser.cjs', '--output-type', 'err', ...sources], { cwd: root, stdio: 'inherit' });
  if (layers.status !== 0) { typecheckFailed += 1; process.stdout.write('layers: FAILED\n'); }
}

// The end-to-end suites run `trellis` as users do, from the bundle (packages/agent/dist, built by
// `npm install`); rebuild it first if a source changed since, or bin/trellis would run the sources.
// A bundle that does not build fails the run, as `npm install` would fail on a fresh clone.
let buildFailed = 0;
{
  const build = spawnSync(process.execPath, [path.join(root, 'packages', 'agent', 'build.ts'), '--if-stale'], { cwd: root, stdio: 'inherit' });
  if (build.status !== 0) { buildFailed = 1; process.stdout.write('build: FAILED (bin/trellis runs the TypeScript sources instead)\n'); }
}

const files = globSync(['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'], { cwd: root })
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  process.stdout.write(`no test files match ${filters.join(' ')}\n`);
  process.exit(1);
}

// Every test (and hook) without a timeout of its own fails after this long, with its name, instead
// of hanging the run until CI's deadline. Above the slowest test that declares none (cluster suites'
// before hooks forming a cluster take up to ~50 s on a loaded machine) and the longest declared
// timeout (120 s). Node's runner times tests and hooks, not whole suites or files.
const TEST_TIMEOUT_MS = Number(process.env.TEST_TIMEOUT_MS ?? 180_000);

const child = spawn(process.execPath, [
  '--test',
  `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 3}`,
  `--test-timeout=${TEST_TIMEOUT_MS}`,
  '--test-reporter=spec', '--test-reporter-destination=stdout',
  `--test-reporter=${path.join(root, 'scripts', 'summary-reporter.ts')}`, '--test-reporter-destination=stdout',
  ...files,
], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });

let tail = '';
child.stdout.on('data', (chunk: Buffer) => {
  const s = chunk.toString();
  tail = (tail + s).slice(-4096);
  // The summary reporter's own line is printed last by us, with the typecheck folded in.
  process.stdout.write(s.split('\n').filter((l) => !l.startsWith('TRELLIS-SUMMARY ')).join('\n'));
});
child.on('exit', (code) => {
  const m = /TRELLIS-SUMMARY (\d+) (\d+) (\d+)/.exec(tail);
  const passed = m ? Number(m[1]) : 0;
  const failed = (m ? Number(m[2]) : 1) + typecheckFailed + buildFailed;
  const skipped = m ? Number(m[3]) : 0;
  process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
  process.exit(code === 0 && failed === 0 ? 0 : 1);
});
