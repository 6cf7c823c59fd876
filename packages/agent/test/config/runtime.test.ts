// Building the RuntimeConfig: sources merged in Consul's order, files checked key by key, and every
// validation rule with the message a user would read.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildRuntimeConfig, defaults, validateConfig, type ConfigEnv } from '../../src/config/runtime.ts';
import { ConfigError } from '../../src/config/errors.ts';

let dir: string;
let dataDir: string;
const env: ConfigEnv = {
  hostname: () => 'test-host',
  networkInterfaces: () => ({ eth0: [{ address: '10.1.2.3', family: 'IPv4', internal: false, netmask: '255.0.0.0', mac: '00:00:00:00:00:00', cidr: '10.1.2.3/8' }] }),
};

function write(name: string, content: unknown): string {
  const p = path.join(dir, name);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

/** Asserts that building throws ConfigError with this code and a message matching `message`. */
function rejects(argv: string[], code: string, message: string | RegExp, field?: string) {
  assert.throws(() => buildRuntimeConfig(argv, env), (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    assert.equal(err.code, code);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
    if (field !== undefined) assert.equal(err.field, field);
    return true;
  });
}

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-config-'));
  dataDir = path.join(dir, 'data');
  fs.mkdirSync(dataDir);
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('-dev', () => {
  test('implies a bootstrapped single server in memory on 127.0.0.1 with Consul defaults', () => {
    const { config: c } = buildRuntimeConfig(['-dev'], env);
    assert.equal(c.devMode, true);
    assert.equal(c.serverMode, true);
    assert.equal(c.bootstrap, true);
    assert.equal(c.dataDir, '');
    assert.equal(c.bindAddr, '127.0.0.1');
    assert.deepEqual(c.clientAddrs, ['127.0.0.1']);
    assert.equal(c.advertiseAddrLan, '127.0.0.1');
    assert.equal(c.nodeName, 'test-host');
    assert.equal(c.datacenter, 'dc1');
    assert.equal(c.primaryDatacenter, 'dc1');
    assert.equal(c.domain, 'consul.');
    assert.equal(c.logLevel, 'DEBUG');
    assert.equal(c.ui.enabled, true);
    assert.equal(c.connect.enabled, true);
    assert.deepEqual([c.ports.http, c.ports.dns, c.ports.server, c.ports.serfLan, c.ports.serfWan, c.ports.grpc, c.ports.https], [8500, 8600, 8300, 8301, 8302, 8502, -1]);
    assert.deepEqual(c.httpAddrs, ['127.0.0.1']);
    assert.deepEqual(c.httpsAddrs, []);
    assert.equal(c.raftElectionTimeoutMs, 52);
    assert.equal(c.skipLeaveOnInterrupt, true);
    assert.equal(c.leaveOnTerminate, false);
  });
  test('flags still override dev defaults', () => {
    const { config: c } = buildRuntimeConfig(['-dev', '-http-port=18500', '-node=n1', '-log-level=warn', '-client=0.0.0.0'], env);
    assert.equal(c.ports.http, 18500);
    assert.equal(c.nodeName, 'n1');
    assert.equal(c.logLevel, 'WARN');
    assert.deepEqual(c.httpAddrs, ['0.0.0.0']);
  });
  test('bootstrap_expect is not allowed in dev mode', () => {
    rejects(['-dev', '-bootstrap-expect=3'], 'ERR_CONFIG_INVALID', /'bootstrap_expect > 0' not allowed in dev mode/, 'bootstrap_expect');
  });
});

describe('data_dir', () => {
  test('is required without -dev, with what to do', () => {
    rejects([], 'ERR_CONFIG_INVALID', /^data_dir cannot be empty: give -data-dir <path>.* or run with -dev/, 'data_dir');
  });
  test('must be a directory when it exists', () => {
    const f = write('not-a-dir', 'x');
    rejects(['-data-dir', f], 'ERR_CONFIG_INVALID', `data_dir "${f}" is not a directory`, 'data_dir');
  });
  test('a server with a data dir, advertising the private address detected for 0.0.0.0', () => {
    const { config: c, warnings } = buildRuntimeConfig(['-server', '-bootstrap', '-data-dir', dataDir], env);
    assert.equal(c.dataDir, dataDir);
    assert.equal(c.bindAddr, '0.0.0.0');
    assert.equal(c.advertiseAddrLan, '10.1.2.3');
    assert.deepEqual(c.taggedAddresses, { lan: '10.1.2.3', lan_ipv4: '10.1.2.3', wan: '10.1.2.3', wan_ipv4: '10.1.2.3' });
    assert.equal(c.raftElectionTimeoutMs, 5000, 'raft_multiplier 5 scales the 1 s election timeout');
    assert.deepEqual(warnings, []);
  });
});

describe('advertise address detection (bind 0.0.0.0)', () => {
  const iface = (address: string) => ({ address, family: 'IPv4' as const, internal: false, netmask: '255.255.255.0', mac: '00:00:00:00:00:00', cidr: `${address}/24` });
  test('more than one private address is ambiguous', () => {
    assert.throws(() => buildRuntimeConfig(['-data-dir', dataDir], { ...env, networkInterfaces: () => ({ eth0: [iface('10.0.0.1')], docker0: [iface('172.17.0.1')] }) }),
      /Multiple private IPv4 addresses found \(10\.0\.0\.1, 172\.17\.0\.1\)\. Please configure one with 'bind' and\/or 'advertise'\./);
  });
  test('no private address says which flags to set', () => {
    assert.throws(() => buildRuntimeConfig(['-data-dir', dataDir], { ...env, networkInterfaces: () => ({ eth0: [iface('8.8.8.8')] }) }),
      /No private IPv4 address found: .*set -bind or -advertise/);
  });
  test('-advertise skips detection', () => {
    const { config } = buildRuntimeConfig(['-data-dir', dataDir, '-advertise', '192.168.9.9'], { ...env, networkInterfaces: () => ({}) });
    assert.equal(config.advertiseAddrLan, '192.168.9.9');
  });
});

describe('config files', () => {
  test('merge order: defaults < files in order < flags; lists concatenate with flag lists first; maps overlay', () => {
    const f1 = write('merge/1.json', { datacenter: 'dc2', node_name: 'from-file', retry_join: ['f1'], node_meta: { a: '1', b: '1' }, ports: { http: 9000, dns: 9600 } });
    const f2 = write('merge/2.json', { datacenter: 'dc3', retry_join: ['f2'], node_meta: { b: '2' }, ports: { http: 9001 } });
    const { config: c } = buildRuntimeConfig(['-dev', '-config-file', f1, '-config-file', f2, '-retry-join=flag', '-node=from-flag'], env);
    assert.equal(c.datacenter, 'dc3');
    assert.equal(c.nodeName, 'from-flag');
    assert.deepEqual(c.retryJoinLan, ['flag', 'f1', 'f2']);
    assert.deepEqual(c.nodeMeta, { a: '1', b: '2' });
    assert.equal(c.ports.http, 9001);
    assert.equal(c.ports.dns, 9600);
    assert.deepEqual(c.configFiles, [f1, f2]);
  });
  test('-config-dir reads *.json in lexical order, skips sub-directories and other extensions (with a warning)', () => {
    write('d/b.json', { datacenter: 'from-b' });
    write('d/a.json', { datacenter: 'from-a', node_name: 'from-a' });
    write('d/10.json', { datacenter: 'from-10', domain: 'ten' });
    write('d/sub/z.json', { datacenter: 'from-sub' });
    write('d/notes.txt', 'not config');
    const { config: c, warnings } = buildRuntimeConfig(['-dev', '-config-dir', path.join(dir, 'd')], env);
    assert.equal(c.datacenter, 'from-b');
    assert.equal(c.nodeName, 'from-a');
    assert.equal(c.domain, 'ten.');
    assert.ok(warnings.some((w) => w.includes('notes.txt') && w.includes('.json')), warnings.join('\n'));
  });
  test('a config dir reads .json and .hcl files in lexical order', () => {
    const d = path.join(dir, 'hcl');
    write('hcl/a.json', { datacenter: 'from-json', node_name: 'n-json' });
    write('hcl/b.hcl', 'datacenter = "from-hcl"\n');
    const { config } = buildRuntimeConfig(['-dev', '-config-dir', d], env);
    assert.equal(config.datacenter, 'from-hcl');
    assert.equal(config.nodeName, 'n-json');
  });
  test('an HCL syntax error names the file, line and column', () => {
    const f = write('bad.hcl', 'datacenter = "x"\nports {\n  http = \n}\n');
    rejects(['-dev', '-config-file', f], 'ERR_CONFIG_PARSE', new RegExp(`^config: ${f}: invalid HCL at line 4, column 1: expected a value, got "}"`));
  });
  test('-config-format=hcl reads a file of any extension as HCL', () => {
    const f = write('agent.conf', 'datacenter = "from-conf"\n');
    assert.equal(buildRuntimeConfig(['-dev', '-config-format', 'hcl', '-config-file', f], env).config.datacenter, 'from-conf');
  });
  test('an .hcl file holding JSON is read as JSON, as HCL 1 does', () => {
    const f = write('json-in.hcl', '{"datacenter": "from-json-in-hcl"}');
    assert.equal(buildRuntimeConfig(['-dev', '-config-file', f], env).config.datacenter, 'from-json-in-hcl');
  });
  test('an HCL file of only comments contributes nothing', () => {
    const f = write('comments.hcl', '# nothing here yet\n// nor here\n');
    const { config, warnings } = buildRuntimeConfig(['-dev', '-config-file', f], env);
    assert.equal(config.datacenter, 'dc1');
    assert.deepEqual(warnings.filter((w) => w.includes('comments.hcl')), []);
  });
  test('-hcl fragments apply after the config files', () => {
    const f = write('hclfrag.json', { datacenter: 'from-file' });
    const { config } = buildRuntimeConfig(['-dev', '-config-file', f, '-hcl', 'datacenter = "from-fragment"'], env);
    assert.equal(config.datacenter, 'from-fragment');
  });
  test('unknown keys name the key path and the file, with a suggestion', () => {
    const f = write('unknown1.json', { ports: { htp: 1 } });
    rejects(['-dev', '-config-file', f], 'ERR_CONFIG_UNKNOWN_KEY', `config: ${f}: unknown field "ports.htp" (did you mean "ports.http"?)`, 'ports.htp');
    const g = write('unknown2.json', { foo: { bar: 1 } });
    rejects(['-dev', '-config-file', g], 'ERR_CONFIG_UNKNOWN_KEY', `config: ${g}: unknown field "foo"`, 'foo');
    const h = write('unknown3.json', { services: [{ name: 'web', check: { ttl: '10s', bogus: true } }] });
    rejects(['-dev', '-config-file', h], 'ERR_CONFIG_UNKNOWN_KEY', `config: ${h}: unknown field "services[0].check.bogus"`);
  });
  describe('wrong types name the field and the expected type', () => {
    const cases: Array<[string, unknown, string]> = [
      ['port as string', { ports: { http: '8500' } }, 'field "ports.http" must be an integer, got string "8500"'],
      ['bool as string', { server: 'true' }, 'field "server" must be a boolean (true or false), got string "true"'],
      ['list as string', { retry_join: 'a' }, 'field "retry_join" must be a list of strings, got string "a"'],
      ['object as list', { ports: [] }, 'field "ports" must be an object, got a list'],
      ['fractional int', { bootstrap_expect: 1.5 }, 'field "bootstrap_expect" must be an integer, got number 1.5'],
      ['duration as number', { retry_interval: 30 }, 'field "retry_interval" must be a Go duration string such as "10s" or "1m30s", got number 30'],
      ['bad duration', { retry_interval: '30 seconds' }, 'field "retry_interval" is not a valid duration (time: unknown unit " seconds" in duration "30 seconds"); use a Go duration such as "10s" or "1m30s"'],
      ['map value', { node_meta: { rack: 1 } }, 'field "node_meta.rack" must be a string, got number 1'],
      ['top level not an object', [1], 'field "(top level)" must be an object, got a list'],
    ];
    for (const [name, doc, message] of cases) {
      test(name, () => {
        const f = write(`type-${name.replace(/\W+/g, '-')}.json`, doc);
        rejects(['-dev', '-config-file', f], 'ERR_CONFIG_TYPE', `config: ${f}: ${message}`);
      });
    }
  });
  test('invalid JSON gives line and column', () => {
    const f = write('broken.json', '{\n  "datacenter": "dc1",\n  "server" true\n}');
    rejects(['-dev', '-config-file', f], 'ERR_CONFIG_PARSE', new RegExp(`^config: ${f}: invalid JSON at line 3, column \\d+: `));
  });
  test('a missing file is named', () => {
    rejects(['-dev', '-config-file', path.join(dir, 'nope.json')], 'ERR_CONFIG_READ', `config: cannot read ${path.join(dir, 'nope.json')}: no such file or directory`);
  });
  test('an empty file contributes nothing', () => {
    const f = write('empty.json', '  \n');
    assert.equal(buildRuntimeConfig(['-dev', '-config-file', f], env).config.datacenter, 'dc1');
  });
  test('CamelCase keys (as in API payloads) are accepted', () => {
    const f = write('camel.json', { NodeName: 'camel', Ports: { HTTP: 8555 } });
    const { config: c } = buildRuntimeConfig(['-dev', '-config-file', f], env);
    assert.equal(c.nodeName, 'camel');
    assert.equal(c.ports.http, 8555);
  });
  test('deprecated top-level TLS keys land in tls.defaults, inherited by each protocol, with warnings', () => {
    const f = write('tls.json', { ca_file: '/ca.pem', verify_incoming: true, tls: { https: { verify_incoming: false } }, acl: { tokens: { master: 'm' } } });
    const { config: c, warnings } = buildRuntimeConfig(['-dev', '-config-file', f], env);
    assert.equal(c.tls.defaults.caFile, '/ca.pem');
    assert.equal(c.tls.internalRpc.caFile, '/ca.pem');
    assert.equal(c.tls.internalRpc.verifyIncoming, true);
    assert.equal(c.tls.https.verifyIncoming, false);
    assert.equal(c.acl.tokens.initialManagement, 'm');
    assert.ok(warnings.some((w) => w.includes('"ca_file" is deprecated; use "tls.defaults.ca_file"')), warnings.join('\n'));
    assert.ok(warnings.some((w) => w.includes('"acl.tokens.master" is deprecated; use "acl.tokens.initial_management"')), warnings.join('\n'));
  });
  test('Consul keys with no effect yet are accepted with a warning', () => {
    const f = write('ignored.json', { disable_update_check: true, log_file: '/var/log/x' });
    const { warnings } = buildRuntimeConfig(['-dev', '-config-file', f], env);
    assert.ok(warnings.some((w) => w.includes('"disable_update_check" is a Consul setting that Trellis does not use yet')));
    assert.ok(warnings.some((w) => w.includes('"log_file"')));
  });
  test('services and checks become API-shaped registrations; "service" and "services" accumulate across files', () => {
    const f1 = write('svc1.json', {
      service: {
        name: 'web', port: 8080, tags: ['v1'], meta: { team: 'a' },
        check: { http: 'http://localhost:8080/health', interval: '10s', timeout: '1s' },
        connect: { sidecar_service: { proxy: { upstreams: [{ destination_name: 'db', local_bind_port: 9191, config: { connect_timeout_ms: 5000 } }] } } },
      },
    });
    const f2 = write('svc2.json', { services: [{ Name: 'db', Port: 5432, Checks: [{ Name: 'alive', TTL: '30s' }] }], check: { name: 'mem', args: ['/bin/true'], interval: '30s' } });
    const { config: c, warnings } = buildRuntimeConfig(['-dev', '-config-file', f1, '-config-file', f2], env);
    assert.deepEqual(c.services, [
      {
        Name: 'web', Port: 8080, Tags: ['v1'], Meta: { team: 'a' },
        Checks: [{ HTTP: 'http://localhost:8080/health', Interval: '10s', Timeout: '1s' }],
        Connect: { SidecarService: { Proxy: { Upstreams: [{ DestinationName: 'db', LocalBindPort: 9191, Config: { connect_timeout_ms: 5000 } }] } } },
      },
      { Name: 'db', Port: 5432, Checks: [{ Name: 'alive', TTL: '30s' }] },
    ]);
    assert.deepEqual(c.checks, [{ Name: 'mem', ScriptArgs: ['/bin/true'], Interval: '30s' }]);
    assert.deepEqual(warnings, []);
  });
  describe('service and check definitions are validated where they are read', () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['service without name', { service: { port: 80 } }, /services\[0\]: name is required/],
      ['http check without interval', { service: { name: 'w', check: { http: 'http://x' } } }, /services\[0\]\.check: interval must be > 0/],
      ['check with interval and ttl', { check: { name: 'c', ttl: '10s', interval: '10s', tcp: 'x:1' } }, /checks\[0\]: interval and ttl cannot both be specified/],
      ['check with nothing to do', { check: { name: 'c' } }, /checks\[0\]: ttl must be > 0 for TTL checks/],
      ['bad status', { check: { name: 'c', ttl: '1s', status: 'ok' } }, /checks\[0\]\.status: "ok" is not a check status/],
      ['weights', { service: { name: 'w', weights: { passing: 0 } } }, /services\[0\]\.weights\.passing: 0 is not allowed: must be 1 or more/],
      ['meta key', { service: { name: 'w', meta: { 'bad key': 'x' } } }, /services\[0\]\.meta: key "bad key" may only contain letters, digits, - and _/],
    ];
    for (const [name, doc, re] of cases) {
      test(name, () => {
        const f = write(`svcbad-${name.replace(/\W+/g, '-')}.json`, doc);
        rejects(['-dev', '-config-file', f], 'ERR_CONFIG_INVALID', re);
      });
    }
  });
});

describe('validation names the field, the value and what is allowed', () => {
  // -dev implies server + bootstrap, so the bootstrap rules are checked on a non-dev agent.
  const server = () => ['-data-dir', dataDir, '-bind=127.0.0.1'];
  const dev = () => ['-dev'];
  const cases: Array<[string, () => string[], string[], string, RegExp]> = [
    ['bootstrap needs server', server, ['-bootstrap'], 'bootstrap', /^'bootstrap = true' requires 'server = true'/],
    ['bootstrap and bootstrap_expect are exclusive', server, ['-server', '-bootstrap', '-bootstrap-expect=3'], 'bootstrap_expect', /^'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive/],
    ['bootstrap_expect needs server', server, ['-bootstrap-expect=3'], 'bootstrap_expect', /^'bootstrap_expect > 0' requires 'server = true'/],
    ['negative bootstrap_expect', server, ['-server', '-bootstrap-expect=-1'], 'bootstrap_expect', /^bootstrap_expect cannot be -1\. Must be greater than or equal to zero/],
    ['port above range', dev, ['-http-port=70000'], 'ports.http', /^ports\.http cannot be 70000: must be a port between 1 and 65535, or -1 to disable it$/],
    ['negative port other than -1', dev, ['-dns-port=-5'], 'ports.dns', /^ports\.dns cannot be -5/],
    ['two listeners on one port', dev, ['-http-port=8600'], 'ports.http', /^http address 127\.0\.0\.1:8600 already configured for dns/],
    ['datacenter characters', dev, ['-datacenter=dc.1'], 'datacenter', /^datacenter can only contain lowercase alphanumeric, - or _ characters\. received: "dc\.1"$/],
    ['node id', dev, ['-node-id=xyz'], 'node_id', /^node_id "xyz" is not a valid UUID/],
    ['log level', dev, ['-log-level=loud'], 'log_level', /^log_level cannot be "loud": use trace, debug, info, warn or error$/],
    ['encrypt key', dev, ['-encrypt=short'], 'encrypt', /^encrypt has invalid key: must be 16, 24 or 32 bytes/],
    ['bind not an ip', dev, ['-bind=localhost'], 'bind_addr', /^bind_addr: invalid ip address: localhost$/],
    ['sockaddr template', dev, ['-bind={{ GetPrivateIP }}'], 'bind_addr', /go-sockaddr template, which Trellis does not support yet/],
    ['advertise any', dev, ['-advertise=0.0.0.0'], 'advertise_addr', /Advertise address cannot be 0\.0\.0\.0/],
    ['node meta key', dev, ['-node-meta=bad key:x'], 'node_meta', /^node_meta: key "bad key" may only contain/],
    ['retry interval', dev, ['-retry-interval=0s'], 'retry_interval', /^retry_interval cannot be 0ms: must be a positive duration/],
    ['domain', dev, ['-domain=bad_domain'], 'domain', /^domain "bad_domain\." is not a valid DNS name/],
  ];
  for (const [name, base, argv, field, re] of cases) {
    test(name, () => rejects([...base(), ...argv], 'ERR_CONFIG_INVALID', re, field));
  }
  test('ae_interval: decoded from a file, and it must be positive', () => {
    assert.equal(buildRuntimeConfig(['-dev'], env).config.aeIntervalMs, 60_000);
    assert.equal(buildRuntimeConfig(['-dev', '-config-file', write('ae.json', { ae_interval: '2s' })], env).config.aeIntervalMs, 2000);
    rejects(['-dev', '-config-file', write('ae0.json', { ae_interval: '0s' })], 'ERR_CONFIG_INVALID', /^ae_interval cannot be 0ms: must be a positive duration/, 'ae_interval');
  });
  test('raft_multiplier range', () => {
    const f = write('raftmult.json', { performance: { raft_multiplier: 11 } });
    rejects(['-dev', '-config-file', f], 'ERR_CONFIG_INVALID', /^performance\.raft_multiplier cannot be 11\. Must be between 1 and 10$/, 'performance.raft_multiplier');
  });
  test('bootstrap_expect = 1 is bootstrap mode, with a warning', () => {
    const { config, warnings } = buildRuntimeConfig(['-server', '-bootstrap-expect=1', '-data-dir', dataDir, '-bind=127.0.0.1'], env);
    assert.equal(config.bootstrap, true);
    assert.equal(config.bootstrapExpect, 0);
    assert.ok(warnings.some((w) => w.startsWith('bootstrap_expect = 1')));
  });
  test('a node name DNS cannot serve is a warning, as in Consul', () => {
    const { warnings } = buildRuntimeConfig(['-dev', '-node=web_1'], env);
    assert.ok(warnings.some((w) => w.startsWith('Node name "web_1" will not be discoverable via DNS')));
  });
  test('port 0 disables a listener (Consul) and -1 too', () => {
    const { config } = buildRuntimeConfig(['-dev', '-dns-port=0', '-grpc-port=-1'], env);
    assert.equal(config.ports.dns, -1);
    assert.deepEqual(config.dnsAddrs, []);
    assert.equal(config.ports.grpc, -1);
  });
  test('domain and datacenter are normalized', () => {
    const { config } = buildRuntimeConfig(['-dev', '-domain=Example', '-datacenter=DC2'], env);
    assert.equal(config.domain, 'example.');
    assert.equal(config.datacenter, 'dc2');
  });
});

test('defaults() are Consul\'s and validateConfig is callable on a built config', () => {
  const d = defaults(env);
  assert.equal(d.serverMode, false);
  assert.equal(d.ports.http, 8500);
  assert.equal(d.retryIntervalLanMs, 30_000);
  assert.equal(d.sessionTtlMinMs, 10_000);
  assert.equal(d.limits.kvMaxValueSizeBytes, 512 * 1024);
  assert.equal(d.dns.udpAnswerLimit, 3);
  assert.equal(d.acl.defaultPolicy, 'allow');
  // One source of defaults: values that used to have a second, disagreeing inline fallback.
  assert.deepEqual(d.clientAddrs, ['127.0.0.1']);
  assert.equal(d.gossipWan.probeIntervalMs, 5000);
  assert.equal(d.tls.internalRpc.tlsMinVersion, 'TLSv1_2');
  assert.equal(d.leaveOnTerminate, true, 'a client leaves on terminate (derived from the role)');
  const { config } = buildRuntimeConfig(['-dev'], env);
  assert.deepEqual(validateConfig(config), []);
  assert.throws(() => validateConfig({ ...config, devMode: false, dataDir: '' }), /data_dir cannot be empty/);
});
