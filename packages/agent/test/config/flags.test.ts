// The flag parser follows Go's flag package (which Consul's CLI is built on), case by case.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseFlags, FlagError, formatUsage, type FlagSpec, type FlagValue } from '../../src/config/flags.ts';
import { parseAgentFlags } from '../../src/config/agentFlags.ts';
import { ConfigError } from '../../src/config/errors.ts';

const SPECS: FlagSpec[] = [
  { name: 'dev', kind: 'bool', usage: 'dev mode' },
  { name: 'node', kind: 'string', usage: 'node name' },
  { name: 'http-port', kind: 'int', usage: 'port' },
  { name: 'flags', kind: 'uint64', usage: 'kv flags' },
  { name: 'retry-interval', kind: 'duration', usage: 'interval' },
  { name: 'retry-join', kind: 'list', usage: 'join' },
  { name: 'node-meta', kind: 'map', mapSeparator: ':', usage: 'meta' },
];

describe('parseFlags: accepted forms', () => {
  const cases: Array<{ name: string; argv: string[]; values: Record<string, FlagValue>; args?: string[] }> = [
    { name: 'bool alone is true', argv: ['-dev'], values: { dev: true } },
    { name: 'bool with =false', argv: ['-dev=false'], values: { dev: false } },
    { name: 'bool accepts Go spellings', argv: ['-dev=T'], values: { dev: true } },
    { name: 'bool does not take the next word', argv: ['-dev', 'false'], values: { dev: true }, args: ['false'] },
    { name: 'double dash', argv: ['--dev'], values: { dev: true } },
    { name: 'value as next arg', argv: ['-node', 'n1'], values: { node: 'n1' } },
    { name: 'value after =', argv: ['-node=n1'], values: { node: 'n1' } },
    { name: 'double dash with =', argv: ['--node=n1'], values: { node: 'n1' } },
    { name: 'empty value after =', argv: ['-node='], values: { node: '' } },
    { name: 'value may start with a dash', argv: ['-node', '-weird'], values: { node: '-weird' } },
    { name: 'value may contain =', argv: ['-node=a=b'], values: { node: 'a=b' } },
    { name: 'last scalar wins', argv: ['-node=a', '-node=b'], values: { node: 'b' } },
    { name: 'int', argv: ['-http-port', '8501'], values: { 'http-port': 8501 } },
    { name: 'negative int', argv: ['-http-port=-1'], values: { 'http-port': -1 } },
    { name: 'uint64 beyond 2^53 stays exact', argv: ['-flags=3304740253564472344'], values: { flags: 3304740253564472344n } },
    { name: 'duration in ms', argv: ['-retry-interval=1m30s'], values: { 'retry-interval': 90_000 } },
    { name: 'list repeats', argv: ['-retry-join', 'a', '-retry-join=b'], values: { 'retry-join': ['a', 'b'] } },
    { name: 'map repeats', argv: ['-node-meta', 'rack:r1', '-node-meta=zone:z:1'], values: { 'node-meta': { rack: 'r1', zone: 'z:1' } } },
    { name: 'first positional stops parsing', argv: ['-dev', 'key', '-node=x'], values: { dev: true }, args: ['key', '-node=x'] },
    { name: '-- stops parsing and is consumed', argv: ['-dev', '--', '-node=x'], values: { dev: true }, args: ['-node=x'] },
    { name: 'a lone - is a positional', argv: ['-', '-dev'], values: {}, args: ['-', '-dev'] },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const p = parseFlags(SPECS, c.argv);
      assert.deepEqual(Object.fromEntries(p.values), c.values);
      assert.deepEqual(p.args, c.args ?? []);
    });
  }
});

describe('parseFlags: errors carry Go\'s wording', () => {
  const cases: Array<{ name: string; argv: string[]; code: string; message: string }> = [
    { name: 'unknown flag', argv: ['-xyz'], code: 'ERR_FLAG_UNDEFINED', message: 'flag provided but not defined: -xyz' },
    { name: 'unknown flag with value', argv: ['--xyz=1'], code: 'ERR_FLAG_UNDEFINED', message: 'flag provided but not defined: -xyz' },
    { name: 'missing value', argv: ['-node'], code: 'ERR_FLAG_NEEDS_ARGUMENT', message: 'flag needs an argument: -node' },
    { name: 'three dashes', argv: ['---dev'], code: 'ERR_FLAG_SYNTAX', message: 'bad flag syntax: ---dev' },
    { name: 'no name', argv: ['-=x'], code: 'ERR_FLAG_SYNTAX', message: 'bad flag syntax: -=x' },
    { name: 'bad bool', argv: ['-dev=yes'], code: 'ERR_FLAG_VALUE', message: 'invalid boolean value "yes" for -dev: parse error' },
    { name: 'bad int', argv: ['-http-port', 'abc'], code: 'ERR_FLAG_VALUE', message: 'invalid value "abc" for flag -http-port: parse error' },
    { name: 'int overflow', argv: ['-http-port=99999999999999999999'], code: 'ERR_FLAG_VALUE', message: 'invalid value "99999999999999999999" for flag -http-port: value out of range' },
    { name: 'negative uint', argv: ['-flags=-1'], code: 'ERR_FLAG_VALUE', message: 'invalid value "-1" for flag -flags: parse error' },
    { name: 'uint64 overflow', argv: ['-flags=18446744073709551616'], code: 'ERR_FLAG_VALUE', message: 'invalid value "18446744073709551616" for flag -flags: value out of range' },
    { name: 'bad duration', argv: ['-retry-interval=5x'], code: 'ERR_FLAG_VALUE', message: 'invalid value "5x" for flag -retry-interval: time: unknown unit "x" in duration "5x"' },
    { name: 'map without separator', argv: ['-node-meta=rack'], code: 'ERR_FLAG_VALUE', message: 'invalid value "rack" for flag -node-meta: expected key:value' },
    { name: '-h asks for help', argv: ['-h'], code: 'ERR_HELP', message: 'help requested' },
    { name: '--help asks for help', argv: ['--help'], code: 'ERR_HELP', message: 'help requested' },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.throws(() => parseFlags(SPECS, c.argv), (err: unknown) => {
        assert.ok(err instanceof FlagError);
        assert.equal(err.code, c.code);
        assert.equal(err.message, c.message);
        return true;
      });
    });
  }
});

test('occurrences keep command-line order across flags', () => {
  const specs: FlagSpec[] = [{ name: 'a', kind: 'list', usage: '' }, { name: 'b', kind: 'list', usage: '' }];
  const p = parseFlags(specs, ['-a', '1', '-b', '2', '-a=3']);
  assert.deepEqual(p.occurrences.map((o) => `${o.name}=${o.raw}`), ['a=1', 'b=2', 'a=3']);
});

test('formatUsage lists flags per section, sorted, with placeholders', () => {
  const text = formatUsage('Usage: trellis x [options]\n\n  Does x.', [
    { name: 'zeta', kind: 'bool', usage: 'Z.' },
    { name: 'alpha', kind: 'string', usage: 'A.', placeholder: 'name' },
    { name: 'http-addr', kind: 'string', usage: 'H.', section: 'HTTP API Options' },
  ]);
  assert.equal(text, [
    'Usage: trellis x [options]', '', '  Does x.', '',
    'Command Options', '', '  -alpha=<name>', '     A.', '', '  -zeta', '     Z.', '',
    'HTTP API Options', '', '  -http-addr=<value>', '     H.', '',
  ].join('\n'));
});

describe('parseAgentFlags maps Consul flags onto config keys', () => {
  test('scalars go after files, lists before them', () => {
    const r = parseAgentFlags(['-server', '-http-port=8501', '-retry-join=a', '-retry-join', 'b', '-node-meta=rack:r1', '-ui', '-retry-interval=5s']);
    assert.deepEqual(r.values, { server: true, ports: { http: 8501 }, node_meta: { rack: 'r1' }, ui_config: { enabled: true }, retry_interval: 5000 });
    assert.deepEqual(r.slices, { retry_join: ['a', 'b'] });
    assert.equal(r.devMode, false);
  });
  test('-ui-content-path and -ui-dir set ui_config as Consul\'s flags do', () => {
    assert.deepEqual(parseAgentFlags(['-ui', '-ui-content-path=/console/', '-ui-dir', '/srv/ui']).values, { ui_config: { enabled: true, content_path: '/console/', dir: '/srv/ui' } });
  });
  test('-config-file and -config-dir share one ordered list', () => {
    const r = parseAgentFlags(['-config-dir=/d1', '-config-file', '/f1.json', '-config-dir', '/d2']);
    assert.deepEqual(r.configPaths, ['/d1', '/f1.json', '/d2']);
  });
  test('-hcl fragments are kept in order, as config sources', () => {
    assert.deepEqual(parseAgentFlags(['-hcl', 'datacenter = "x"', '-hcl=node_name = "n"']).hcl, ['datacenter = "x"', 'node_name = "n"']);
  });
  test('-config-format must be json or hcl', () => {
    assert.throws(() => parseAgentFlags(['-config-format=yaml']), /-config-format must be 'json'/);
  });
});
