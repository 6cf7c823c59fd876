import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isCheckStatus, isCheckStatusFilter, isUuid, parseGoDuration, validateKvKey, validateServiceName, validateSessionTtl } from '../../src/state/validate.ts';

describe('validateKvKey (Consul\'s validateKVKey)', () => {
  const cases: [key: string, expected: string | null, opts?: Parameters<typeof validateKvKey>[1]][] = [
    ['service/web/leader', null],
    ['a,b-c_d.e/f', null],
    ['', 'key cannot be empty'],
    ['/leading', "key must not begin with a '/'"],
    ['a/../b', 'key contains path traversal sequence'],
    ['..', 'key contains path traversal sequence'],
    ['a/..', 'key contains path traversal sequence'],
    ['a..b', null],
    ['space key', 'key contains invalid characters. Only alphanumeric characters and ,-_./ are allowed'],
    ['colon:key', 'key contains invalid characters. Only alphanumeric characters and ,-_./ are allowed'],
    ['colon:key', null, { allowAnyCharacters: true }],
    ['a/%2e%2e%2fb', 'key contains encoded path traversal sequence', { allowAnyCharacters: true }],
    ['config/app.json', 'key contains suspicious file extension that may be cached by proxies or exploited'],
    ['config/app.json', null, { allowFileExtensions: true }],
    ['config/app.jsonx', null],
  ];
  for (const [key, expected, opts] of cases) {
    test(`${JSON.stringify(key)}${opts ? ` ${JSON.stringify(opts)}` : ''} → ${expected ?? 'valid'}`, () => {
      assert.equal(validateKvKey(key, opts), expected);
    });
  }
});

describe('parseGoDuration', () => {
  const cases: [string, number | null][] = [
    ['10s', 10e9], ['10.0s', 10e9], ['0.001s', 1e6], ['4.99s', 4.99e9], ['1m30s', 90e9], ['72h', 72 * 3600e9],
    ['1h2m3s4ms5us6ns', 3723004005006], ['0', 0], ['-1.5h', -5400e9], ['+5ms', 5e6], ['.5s', 0.5e9],
    ['', null], ['10', null], ['s', null], ['1d', null], ['1.s', 1e9], ['10 s', null], ['1h-1m', null],
  ];
  for (const [input, ns] of cases) {
    test(`${JSON.stringify(input)} → ${ns}`, () => assert.equal(parseGoDuration(input), ns));
  }
});

describe('validateSessionTtl', () => {
  const cases: [string, string | null][] = [
    ['', null],
    ['0s', null],
    ['10s', null],
    ['24h', null],
    ['9s', "Invalid Session TTL '9000000000', must be between [10s=24h0m0s]"],
    ['25h', "Invalid Session TTL '90000000000000', must be between [10s=24h0m0s]"],
    ['soon', 'Invalid Session TTL \'soon\': time: invalid duration "soon"'],
  ];
  for (const [ttl, expected] of cases) {
    test(`${JSON.stringify(ttl)} → ${expected ?? 'valid'}`, () => {
      const got = validateSessionTtl(ttl);
      assert.equal(got, expected);
      if (got !== null) assert.ok(got.startsWith('Invalid Session TTL'), 'clients match on this prefix');
    });
  }
});

describe('service names, check statuses, UUIDs', () => {
  test('service names: empty refused, DNS-incompatible accepted with Consul\'s warning', () => {
    assert.deepEqual(validateServiceName('web'), { error: null, warning: null });
    assert.equal(validateServiceName('').error, 'Missing service name');
    assert.match(validateServiceName('a\u0000b').error!, /control characters/);
    assert.match(validateServiceName('my_service').warning!, /invalid characters/);
    assert.equal(validateServiceName('my_service').error, null);
    assert.match(validateServiceName('x'.repeat(64)).warning!, /too long/);
  });

  test('check statuses', () => {
    assert.deepEqual(['passing', 'warning', 'critical', 'any', 'maintenance', ''].map(isCheckStatus), [true, true, true, false, false, false]);
    assert.deepEqual(['passing', 'any', 'bogus'].map(isCheckStatusFilter), [true, true, false]);
  });

  test('UUIDs', () => {
    assert.equal(isUuid('6a9a2c8e-1f4b-4c1e-9d5b-0a1b2c3d4e5f'), true);
    assert.equal(isUuid('6A9A2C8E-1F4B-4C1E-9D5B-0A1B2C3D4E5F'), true);
    assert.equal(isUuid('6a9a2c8e1f4b4c1e9d5b0a1b2c3d4e5f'), false);
  });
});
