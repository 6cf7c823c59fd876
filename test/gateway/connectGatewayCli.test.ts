// `trellis connect gateway` refuses bad flags before starting anything, with a message naming what
// was wrong and exit code 1; an unreachable agent is an initialization failure, not a hang.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, runTrellis } from '../support/index.ts';

const cases: Array<[string, string[], RegExp]> = [
  ['a gateway kind other than mesh', ['-gateway', 'ingress'], /Invalid gateway kind "ingress": only "mesh" is supported/],
  ['a bad -hello-timeout', ['-hello-timeout', 'soon'], /Invalid -hello-timeout "soon"/],
  ['a bad log level', ['-log-level', 'loud'], /Invalid log level: "loud"/],
  ['a non-flag argument', ['extra'], /Should have no non-flag arguments/],
  ['an -address without a port', ['-address', '10.0.0.5'], /-address "10\.0\.0\.5": want host:port/],
  ['a -wan-address with port 0', ['-address', '127.0.0.1:8443', '-wan-address', '1.2.3.4:0'], /-wan-address "1\.2\.3\.4:0": want host:port/],
];

for (const [name, args, message] of cases) {
  test(`refused: ${name}`, async () => {
    const r = await runTrellis(['connect', 'gateway', ...args, '-http-addr', '127.0.0.1:1']);
    assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, message);
  });
}

test('an agent that does not answer: "Failed initializing gateway", exit 1', async () => {
  const r = await runTrellis(['connect', 'gateway', '-address', `127.0.0.1:${await freePort()}`, '-http-addr', `127.0.0.1:${await freePort()}`]);
  assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /Failed initializing gateway: agent API \/v1\/agent\/self/);
});

test('listed under `trellis connect`', async () => {
  const r = await runTrellis(['connect']);
  assert.match(r.stdout + r.stderr, /gateway\s+Runs a Trellis Connect mesh gateway/);
});
