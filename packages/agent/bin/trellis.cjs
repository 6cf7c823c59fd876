#!/usr/bin/env node
// Launcher for the `trellis` command. Users and tools run it from shells whose PATH holds only the
// system's Node (20 on our machines), but the agent needs Node 24 (libp2p 3, type stripping). So:
// if this Node is already >= 24, run the CLI in-process; otherwise find the Node 24 binary pinned
// by the `node@24` devDependency (node_modules/node/bin/node, searched upward from here) and re-run
// this same CLI under it, forwarding signals and the exit code. Plain CommonJS so any Node can read it.
//
// `trellis agent` (a long-running process) also gets memory settings that can only be given when a
// process starts: a smaller V8 young generation and at most two glibc malloc arenas. Measured on a
// server after 100,000 KV writes: RSS 520 → 374 MB at the same write rate (docs/BENCHMARKS.md).
// Under Node 24 the launcher replaces itself with the tuned process (process.execve: same PID, so
// pid files and signals are unaffected); every other subcommand runs in-process as it is.
'use strict';
const path = require('node:path');
const fs = require('node:fs');
const { spawn, execFileSync } = require('node:child_process');

const MIN_MAJOR = 24;
const entry = path.join(__dirname, '..', 'src', 'cli', 'main.ts');

/** Node flags for the agent process (see above). */
const AGENT_NODE_FLAGS = ['--max-semi-space-size=4'];
const AGENT_ENV = { MALLOC_ARENA_MAX: '2' };
const isAgent = process.argv[2] === 'agent';
const tuned = AGENT_NODE_FLAGS.every((f) => process.execArgv.includes(f));

function major(v) { return Number(String(v).replace(/^v/, '').split('.')[0]); }

function findPinnedNode() {
  if (process.env.TRELLIS_NODE) return process.env.TRELLIS_NODE;
  const candidates = [];
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    candidates.push(path.join(dir, 'node_modules', 'node', 'bin', 'node'));
    candidates.push(path.join(dir, 'node_modules', '.bin', 'node'));
    if (path.dirname(dir) === dir) break;
  }
  for (const c of candidates) {
    try {
      fs.accessSync(c, fs.constants.X_OK);
      // The npm `node` package records its version beside the binary: reading it is much cheaper
      // than running `node --version`, which matters for every CLI call.
      const real = fs.realpathSync(c);
      let v;
      try { v = JSON.parse(fs.readFileSync(path.join(path.dirname(real), '..', 'package.json'), 'utf8')).version; } catch { /* not the npm package */ }
      if (!v) v = execFileSync(real, ['--version'], { encoding: 'utf8' }).trim();
      if (major(v) >= MIN_MAJOR) return real;
    } catch { /* not there or not runnable: try the next candidate */ }
  }
  return null;
}

if (major(process.versions.node) >= MIN_MAJOR && isAgent && !tuned && typeof process.execve === 'function') {
  process.execve(process.execPath, [process.execPath, ...process.execArgv, ...AGENT_NODE_FLAGS, __filename, ...process.argv.slice(2)],
    { ...AGENT_ENV, ...process.env });
} else if (major(process.versions.node) >= MIN_MAJOR) {
  import(require('node:url').pathToFileURL(entry).href).catch((err) => {
    process.stderr.write(`trellis: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  });
} else {
  const node = findPinnedNode();
  if (!node) {
    process.stderr.write(`trellis: needs Node.js ${MIN_MAJOR} or newer (this is ${process.version}). ` +
      `Run 'npm install' in the Trellis checkout to fetch the pinned Node, or set TRELLIS_NODE to a Node ${MIN_MAJOR} binary.\n`);
    process.exit(1);
  }
  const child = isAgent
    ? spawn(node, [...AGENT_NODE_FLAGS, entry, ...process.argv.slice(2)], { stdio: 'inherit', env: { ...AGENT_ENV, ...process.env } })
    : spawn(node, [entry, ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']) {
    process.on(sig, () => { try { child.kill(sig); } catch { /* child already gone */ } });
  }
  child.on('exit', (code, signal) => {
    if (signal) { process.removeAllListeners(signal); process.kill(process.pid, signal); }
    else process.exit(code ?? 1);
  });
}
