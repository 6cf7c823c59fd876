// The package's entry point (package.json "exports") resolves and starts an agent in-process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRuntimeConfig, startAgent } from '@trellis/agent';
import { freePort } from '../../../test/support/ports.ts';

test('@trellis/agent: buildRuntimeConfig + startAgent run a -dev agent that answers HTTP', async () => {
  const { config } = buildRuntimeConfig(['-dev', '-node', 'lib', '-bind', '127.0.0.1', '-http-port', String(await freePort()),
    '-dns-port', '-1', '-server-port', String(await freePort()), '-serf-lan-port', String(await freePort()), '-serf-wan-port', '-1', '-log-level', 'error']);
  const agent = await startAgent(config);
  try {
    const res = await fetch(`http://127.0.0.1:${agent.httpPort}/v1/agent/self`);
    assert.equal(res.status, 200);
    const self = await res.json() as { Config: { NodeName: string } };
    assert.equal(self.Config.NodeName, 'lib');
  } finally {
    await agent.stop({ leave: false });
  }
});
