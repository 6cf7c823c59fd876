// default_intention_policy (Consul's agent config): "allow", "deny" or unset; anything else refused
// naming the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildRuntimeConfig, type ConfigEnv } from '../../src/config/runtime.ts';
import { ConfigError } from '../../src/config/errors.ts';

const env: ConfigEnv = {
  hostname: () => 'test-host',
  networkInterfaces: () => ({ eth0: [{ address: '10.1.2.3', family: 'IPv4', internal: false, netmask: '255.0.0.0', mac: '00:00:00:00:00:00', cidr: '10.1.2.3/8' }] }),
};

test('default_intention_policy: unset, allow, deny; another value is refused', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-dip-'));
  try {
    const build = (extra: Record<string, unknown>) => {
      const file = path.join(dir, `c${Math.random().toString(36).slice(2)}.json`);
      fs.writeFileSync(file, JSON.stringify({ data_dir: dir, ...extra }));
      return buildRuntimeConfig(['-config-file', file], env).config;
    };
    assert.equal(build({}).defaultIntentionPolicy, '');
    assert.equal(build({ default_intention_policy: 'deny' }).defaultIntentionPolicy, 'deny');
    assert.equal(build({ default_intention_policy: 'allow' }).defaultIntentionPolicy, 'allow');
    assert.throws(() => build({ default_intention_policy: 'maybe' }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.message, 'default_intention_policy cannot be "maybe": use "allow" or "deny"');
      return true;
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
