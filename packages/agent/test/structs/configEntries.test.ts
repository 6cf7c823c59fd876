// Config entry validation, one rule of ../shared/design/CONFIG-ENTRIES.md per case: each rule has a
// valid row (accepted) and an invalid one (refused with Consul's text).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ConfigEntryDecodeError, ConfigEntryValidationError, decodeConfigEntry, intentionPrecedence, parseConfigEntry,
} from '../../src/structs/configEntries/index.ts';

interface Row {
  rule: string;
  entry: Record<string, unknown>;
  /** undefined: valid. */
  error?: string | RegExp;
}

const sd = (extra: Record<string, unknown>) => ({ Kind: 'service-defaults', Name: 'web', ...extra });
const router = (routes: unknown[]) => ({ Kind: 'service-router', Name: 'web', Routes: routes });
const http = (h: Record<string, unknown>, dest?: Record<string, unknown>) => ({ Match: { HTTP: h }, ...(dest ? { Destination: dest } : {}) });
const splitter = (splits: unknown[]) => ({ Kind: 'service-splitter', Name: 'web', Splits: splits });
const resolver = (extra: Record<string, unknown>) => ({ Kind: 'service-resolver', Name: 'web', ...extra });
const ixn = (sources: unknown[], name = 'web') => ({ Kind: 'service-intentions', Name: name, Sources: sources });
const exported = (services: unknown[], name = 'default') => ({ Kind: 'exported-services', Name: name, Services: services });
const multi = (msg: string) => `1 error occurred:\n\t* ${msg}\n\n`;

const ROWS: Row[] = [
  // proxy-defaults
  { rule: 'proxy-defaults: Name global', entry: { Kind: 'proxy-defaults', Name: 'global', Config: { protocol: 'http' } } },
  { rule: 'proxy-defaults: Name global', entry: { Kind: 'proxy-defaults', Name: 'web' }, error: 'invalid name ("web"), only "global" is supported' },
  // service-defaults
  { rule: 'service-defaults: Name not *', entry: sd({ Protocol: 'http' }) },
  { rule: 'service-defaults: Name not *', entry: { Kind: 'service-defaults', Name: '*' }, error: 'service-defaults name must be the name of a service, and not a wildcard' },
  { rule: 'service-defaults: Name required', entry: { Kind: 'service-defaults' }, error: 'Name is required' },
  { rule: 'service-defaults: UpstreamConfig xor Destination', entry: sd({ UpstreamConfig: { Defaults: { ConnectTimeoutMs: 5000 } } }) },
  { rule: 'service-defaults: UpstreamConfig xor Destination', entry: sd({ UpstreamConfig: {}, Destination: { Addresses: ['a.example'], Port: 443 } }), error: multi('UpstreamConfig and Destination are mutually exclusive for service defaults') },
  { rule: 'service-defaults: Destination needs an address', entry: sd({ Destination: { Addresses: ['api.example.com', '10.0.0.1'], Port: 443 } }) },
  { rule: 'service-defaults: Destination needs an address', entry: sd({ Destination: { Addresses: [], Port: 443 } }), error: multi('Destination must contain at least one valid address') },
  { rule: 'service-defaults: Destination port 1-65535', entry: sd({ Destination: { Addresses: ['x.example'], Port: 65535 } }) },
  { rule: 'service-defaults: Destination port 1-65535', entry: sd({ Destination: { Addresses: ['x.example'], Port: 70000 } }), error: multi('Invalid Port number 70000') },
  { rule: 'service-defaults: upstream override needs a Name', entry: sd({ UpstreamConfig: { Overrides: [{ Name: 'db', Protocol: 'TCP' }] } }) },
  { rule: 'service-defaults: upstream override needs a Name', entry: sd({ UpstreamConfig: { Overrides: [{ Protocol: 'tcp' }] } }), error: multi('error in upstream override for : Name is required') },
  // service-router
  { rule: 'router: at most one path matcher', entry: router([http({ PathPrefix: '/api' })]) },
  { rule: 'router: at most one path matcher', entry: router([http({ PathPrefix: '/api', PathExact: '/api' })]), error: 'Route[0] should only contain at most one of PathExact, PathPrefix, or PathRegex' },
  { rule: 'router: PathExact starts with /', entry: router([http({ PathExact: '/x' })]) },
  { rule: 'router: PathExact starts with /', entry: router([http({ PathExact: 'x' })]), error: 'Route[0] PathExact doesn\'t start with \'/\': "x"' },
  { rule: 'router: PathPrefix starts with /', entry: router([http({ PathPrefix: 'api' })]), error: 'Route[0] PathPrefix doesn\'t start with \'/\': "api"' },
  { rule: 'router: one header match type', entry: router([http({ Header: [{ Name: 'x-debug', Present: true }] })]) },
  { rule: 'router: one header match type', entry: router([http({ Header: [{ Name: 'x-debug', Exact: '1', Prefix: '1' }] })]), error: 'Route[0] Header[0] should only contain one of Present, Exact, Prefix, Suffix, or Regex' },
  { rule: 'router: one query match type', entry: router([http({ QueryParam: [{ Name: 'v', Exact: '2' }] })]) },
  { rule: 'router: one query match type', entry: router([http({ QueryParam: [{ Name: 'v' }] })]), error: 'Route[0] QueryParam[0] should only contain one of Present, Exact, or Regex' },
  { rule: 'router: methods valid (upper-cased)', entry: router([http({ Methods: ['get', 'POST'] })]) },
  { rule: 'router: methods valid (upper-cased)', entry: router([http({ Methods: ['FETCH'] })]), error: 'Route[0] Methods contains an invalid method "FETCH"' },
  { rule: 'router: methods not repeated', entry: router([http({ Methods: ['get', 'GET'] })]), error: 'Route[0] Methods contains "GET" more than once' },
  { rule: 'router: PrefixRewrite needs a path', entry: router([http({ PathPrefix: '/v1' }, { PrefixRewrite: '/' })]) },
  { rule: 'router: PrefixRewrite needs a path', entry: router([http({ Header: [{ Name: 'a', Present: true }] }, { PrefixRewrite: '/' })]), error: 'Route[0] cannot make use of PrefixRewrite without configuring either PathExact or PathPrefix' },
  { rule: 'router: RetryOn values', entry: router([http({ PathPrefix: '/' }, { RetryOn: ['5xx', 'reset'] })]) },
  { rule: 'router: RetryOn values', entry: router([http({ PathPrefix: '/' }, { RetryOn: ['sometimes'] })]), error: 'Route[0] contains an invalid retry condition: "sometimes"' },
  // service-splitter
  { rule: 'splitter: weights sum to 100 (rounded to 0.01)', entry: splitter([{ Weight: 50.004, ServiceSubset: 'a' }, { Weight: 49.996, ServiceSubset: 'b' }]) },
  { rule: 'splitter: weights sum to 100 (rounded to 0.01)', entry: splitter([{ Weight: 90, ServiceSubset: 'a' }]), error: 'the sum of all split weights must be 100, not 90.000000' },
  { rule: 'splitter: at least one split', entry: splitter([]), error: 'no splits configured' },
  { rule: 'splitter: no repeated destinations', entry: splitter([{ Weight: 50 }, { Weight: 50, Service: 'web' }]), error: 'split destination occurs more than once: service="web", subset="", namespace="", partition=""' },
  // service-resolver
  { rule: 'resolver: DefaultSubset names a subset', entry: resolver({ DefaultSubset: 'v1', Subsets: { v1: { Filter: 'Service.Meta.version == v1' } } }) },
  { rule: 'resolver: DefaultSubset names a subset', entry: resolver({ DefaultSubset: 'v3', Subsets: { v1: {} } }), error: 'DefaultSubset "v3" is not a valid subset' },
  { rule: 'resolver: subset filter is go-bexpr', entry: resolver({ Subsets: { v1: { Filter: 'Service.Meta.version ==' } } }), error: /^Filter for subset "v1" is not a valid expression: / },
  { rule: 'resolver: subset names are DNS labels', entry: resolver({ Subsets: { V_1: {} } }), error: /^Subset "V_1" is invalid: / },
  { rule: 'resolver: Redirect xor Failover', entry: resolver({ Redirect: { Service: 'api' } }) },
  { rule: 'resolver: Redirect xor Failover', entry: resolver({ Redirect: { Service: 'api' }, Failover: { '*': { Service: 'backup' } } }), error: 'Redirect and Failover cannot both be set' },
  { rule: 'resolver: Targets exclude Datacenters', entry: resolver({ Failover: { '*': { Targets: [{ Service: 'api' }] } } }) },
  { rule: 'resolver: Targets exclude Datacenters', entry: resolver({ Failover: { '*': { Targets: [{ Service: 'api' }], Datacenters: ['dc2'] } } }), error: 'Bad Failover["*"]: Targets cannot be set with Datacenters' },
  { rule: 'resolver: Targets exclude Service', entry: resolver({ Failover: { '*': { Targets: [{ Service: 'api' }], Service: 'x' } } }), error: 'Bad Failover["*"]: Targets cannot be set with Service' },
  { rule: 'resolver: Peer excludes Datacenter', entry: resolver({ Redirect: { Service: 'api', Peer: 'p1' } }) },
  { rule: 'resolver: Peer excludes Datacenter', entry: resolver({ Redirect: { Service: 'api', Peer: 'p1', Datacenter: 'dc2' } }), error: 'Redirect.Peer cannot be set with Redirect.Datacenter' },
  { rule: 'resolver: Failover Policy mode', entry: resolver({ Failover: { '*': { Datacenters: ['dc2'], Policy: { Mode: 'order-by-locality' } } } }) },
  { rule: 'resolver: Failover Policy mode', entry: resolver({ Failover: { '*': { Datacenters: ['dc2'], Policy: { Mode: 'random' } } } }), error: 'Bad Failover["*"]: Policy must be one of \'\', \'default\', or \'order-by-locality\'' },
  { rule: 'resolver: ConnectTimeout >= 0', entry: resolver({ ConnectTimeout: '5s', RequestTimeout: '15s' }) },
  { rule: 'resolver: ConnectTimeout >= 0', entry: resolver({ ConnectTimeout: '-1s' }), error: "Bad ConnectTimeout '-1s', must be >= 0" },
  { rule: 'resolver: RequestTimeout >= 0', entry: resolver({ RequestTimeout: '-2s' }), error: "Bad RequestTimeout '-2s', must be >= 0" },
  { rule: 'resolver: LoadBalancer policy', entry: resolver({ LoadBalancer: { Policy: 'least_request', LeastRequestConfig: { ChoiceCount: 3 } } }) },
  { rule: 'resolver: LoadBalancer policy', entry: resolver({ LoadBalancer: { Policy: 'fastest' } }), error: 'Bad LoadBalancer policy: "fastest" is not supported' },
  { rule: 'resolver: hash policies only with ring_hash/maglev', entry: resolver({ LoadBalancer: { Policy: 'maglev', HashPolicies: [{ Field: 'header', FieldValue: 'x-user' }] } }) },
  { rule: 'resolver: hash policies only with ring_hash/maglev', entry: resolver({ LoadBalancer: { Policy: 'random', HashPolicies: [{ Field: 'header', FieldValue: 'x-user' }] } }), error: 'Bad LoadBalancer configuration: HashPolicies specified for non-hash-based Policy: "random"' },
  // service-intentions
  { rule: 'intentions: at least one source', entry: ixn([{ Name: 'api', Action: 'allow' }]) },
  { rule: 'intentions: at least one source', entry: ixn([]), error: 'At least one source is required' },
  { rule: 'intentions: Action required without Permissions', entry: ixn([{ Name: 'api' }]), error: "Sources[0].Action must be set to 'allow' or 'deny'" },
  { rule: 'intentions: Action omitted with Permissions', entry: ixn([{ Name: 'api', Permissions: [{ Action: 'allow', HTTP: { PathPrefix: '/' } }] }]) },
  { rule: 'intentions: Action omitted with Permissions', entry: ixn([{ Name: 'api', Action: 'allow', Permissions: [{ Action: 'allow', HTTP: { PathPrefix: '/' } }] }]), error: 'Sources[0].Action must be omitted if Permissions are specified' },
  { rule: 'intentions: no Permissions on a wildcard destination', entry: ixn([{ Name: 'api', Action: 'deny' }], '*') },
  { rule: 'intentions: no Permissions on a wildcard destination', entry: ixn([{ Name: 'api', Permissions: [{ Action: 'allow', HTTP: { PathPrefix: '/' } }] }], '*'), error: 'Sources[0].Permissions cannot be specified on intentions with wildcarded destinations' },
  { rule: 'intentions: wildcards are whole values', entry: ixn([{ Name: '*', Action: 'deny' }]) },
  { rule: 'intentions: wildcards are whole values', entry: ixn([{ Name: 'api*', Action: 'deny' }]), error: "Sources[0].Name: wildcard character '*' cannot be used with partial values" },
  { rule: 'intentions: wildcards are whole values (destination)', entry: ixn([{ Name: 'api', Action: 'deny' }], 'we*b'), error: "Name: wildcard character '*' cannot be used with partial values" },
  { rule: 'intentions: Peer, Partition, SamenessGroup exclusive', entry: ixn([{ Name: 'api', Peer: 'p1', Action: 'allow' }]) },
  { rule: 'intentions: Peer, Partition, SamenessGroup exclusive', entry: ixn([{ Name: 'api', Peer: 'p1', SamenessGroup: 'g', Action: 'allow' }]), error: 'Sources[0].SamenessGroup: cannot set SamenessGroup and Peer at the same time' },
  { rule: 'intentions: no duplicate sources', entry: ixn([{ Name: 'api', Action: 'allow' }, { Name: 'api', Peer: 'p1', Action: 'deny' }]) },
  { rule: 'intentions: no duplicate sources', entry: ixn([{ Name: 'api', Action: 'allow' }, { Name: 'api', Action: 'deny' }]), error: 'Sources[1] defines "api" more than once' },
  { rule: 'intentions: permission HTTP required', entry: ixn([{ Name: 'api', Permissions: [{ Action: 'allow' }] }]), error: 'Sources[0].Permissions[0].HTTP is required' },
  // mesh
  { rule: 'mesh: singleton named mesh', entry: { Kind: 'mesh', TransparentProxy: { MeshDestinationsOnly: true }, Peering: { PeerThroughMeshGateways: true } } },
  { rule: 'mesh: singleton named mesh', entry: { Kind: 'mesh', Name: 'other' }, error: 'invalid name ("other"), only "mesh" is supported' },
  // exported-services
  { rule: 'exported: one of Partition/Peer/SamenessGroup per consumer', entry: exported([{ Name: 'web', Consumers: [{ Peer: 'east' }] }]) },
  { rule: 'exported: one of Partition/Peer/SamenessGroup per consumer', entry: exported([{ Name: 'web', Consumers: [{ Peer: 'east', Partition: 'default' }] }]), error: 'Services[0].Consumers[0]: must define at most one of Peer, Partition, or SamenessGroup' },
  { rule: 'exported: no wildcard consumers', entry: exported([{ Name: 'web', Consumers: [{ Peer: '*' }] }]), error: 'Services[0].Consumers[0]: exporting to all peers (wildcard) is not supported' },
  { rule: 'exported: wildcard namespace needs wildcard name', entry: exported([{ Name: '*', Namespace: '*', Consumers: [{ Peer: 'east' }] }]) },
  { rule: 'exported: wildcard namespace needs wildcard name', entry: exported([{ Name: 'web', Namespace: '*', Consumers: [{ Peer: 'east' }] }]), error: 'Services[0]: service name must be wildcard if namespace is wildcard' },
  { rule: 'exported: each service needs a consumer', entry: exported([{ Name: 'web', Consumers: [] }]), error: 'Services[0]: must have at least one consumer' },
  { rule: 'exported: CE has only the default partition', entry: exported([{ Name: 'web', Consumers: [{ Peer: 'east' }] }], 'team-a'), error: /^Partition: Partitions is an Enterprise-only feature/ },
  { rule: 'exported: CE has no sameness groups', entry: exported([{ Name: 'web', Consumers: [{ SamenessGroup: 'g' }] }]), error: 'Services[0].Consumers[0]: Sameness groups are an enterprise-only feature' },
];

describe('config entry validation (CONFIG-ENTRIES.md, one rule per row)', () => {
  for (const row of ROWS) {
    test(`${row.rule}: ${row.error === undefined ? 'valid' : 'invalid'}`, () => {
      if (row.error === undefined) {
        const e = parseConfigEntry(structuredClone(row.entry));
        assert.equal(e.Kind, row.entry.Kind);
        return;
      }
      assert.throws(() => parseConfigEntry(structuredClone(row.entry)), (err: Error) => {
        assert.ok(err instanceof ConfigEntryValidationError, `${err.name}: ${err.message}`);
        if (typeof row.error === 'string') assert.equal(err.message, row.error);
        else assert.match(err.message, row.error!);
        return true;
      });
    });
  }
  test('every rule has a valid and an invalid row, or is a refusal-only rule', () => {
    const rules = new Set(ROWS.map((r) => r.rule));
    assert.ok(rules.size >= 40, `${rules.size} rules`);
  });
});

describe('config entry decoding', () => {
  test('snake_case, CamelCase and any-case keys decode to the same entry', () => {
    const a = parseConfigEntry({ kind: 'service-router', name: 'web', routes: [{ match: { http: { path_prefix: '/a', query_param: [{ name: 'x', present: true }] } }, destination: { service_subset: 'v2', num_retries: '3', retry_on_connect_failure: 'true' } }] });
    const b = parseConfigEntry({ Kind: 'service-router', Name: 'web', Routes: [{ Match: { HTTP: { PathPrefix: '/a', QueryParam: [{ Name: 'x', Present: true }] } }, Destination: { ServiceSubset: 'v2', NumRetries: 3, RetryOnConnectFailure: true } }] });
    const c = parseConfigEntry({ KIND: 'service-router', NAME: 'web', ROUTES: [{ MATCH: { HTTP: { PATHPREFIX: '/a', QUERYPARAM: [{ NAME: 'x', PRESENT: true }] } }, DESTINATION: { SERVICESUBSET: 'v2', NUMRETRIES: 3, RETRYONCONNECTFAILURE: true } }] });
    assert.deepEqual(a, b);
    assert.deepEqual(c, b);
  });

  test('opaque maps keep their keys; durations in nanoseconds print as Go strings', () => {
    const e = parseConfigEntry({ Kind: 'proxy-defaults', Config: { Protocol: 'http', local_connect_timeout_ms: 1000 }, Meta: { Some_Key: 'v' } });
    assert.deepEqual(e.Config, { Protocol: 'http', local_connect_timeout_ms: 1000 });
    assert.deepEqual(e.Meta, { Some_Key: 'v' });
    assert.equal(parseConfigEntry({ Kind: 'service-resolver', Name: 'web', ConnectTimeout: 5_000_000_000 }).ConnectTimeout, '5s');
  });

  test('decode errors: no kind, non-string kind, unknown kind, unknown key, Enterprise keys, a key given twice', () => {
    const cases: Array<[unknown, string | RegExp]> = [
      [{ Name: 'x' }, 'Payload does not contain a kind/Kind key at the top level'],
      [{ Kind: 3 }, 'Kind value in payload is not a string'],
      [{ Kind: 'service-defalts', Name: 'x' }, 'invalid config entry kind: service-defalts'],
      [{ Kind: 'ingress-gateway', Name: 'x' }, /^config entry kind "ingress-gateway" is not supported by Trellis yet/],
      [{ Kind: 'service-defaults', Name: 'x', Bogus: 1 }, 'invalid config key "Bogus"'],
      [{ Kind: 'service-defaults', Name: 'x', Namespace: 'ns1' }, 'invalid config key "Namespace", namespaces are a consul enterprise feature'],
      [{ Kind: 'service-defaults', Name: 'x', Protocol: 'http', protocol: 'grpc' }, /'Protocol' is given twice/],
      [{ Kind: 'service-resolver', Name: 'x', ConnectTimeout: '5 seconds' }, /error decoding 'ConnectTimeout': time: /],
    ];
    for (const [raw, msg] of cases) {
      assert.throws(() => decodeConfigEntry(raw), (err: Error) => {
        assert.ok(err instanceof ConfigEntryDecodeError, err.message);
        if (typeof msg === 'string') assert.equal(err.message, msg);
        else assert.match(err.message, msg);
        return true;
      });
    }
  });

  test('intention precedence follows Consul\'s table', () => {
    assert.equal(intentionPrecedence('web', 'api'), 9);
    assert.equal(intentionPrecedence('web', '*'), 8);
    assert.equal(intentionPrecedence('*', 'api'), 6);
    assert.equal(intentionPrecedence('*', '*'), 5);
    const e = parseConfigEntry(ixn([{ Name: '*', Action: 'deny' }, { Name: 'b', Action: 'allow' }, { Name: 'a', Action: 'allow' }]));
    assert.deepEqual((e.Sources as Array<{ Name: string; Precedence: number }>).map((s) => `${s.Name}:${s.Precedence}`), ['b:9', 'a:9', '*:8']);
  });
});
