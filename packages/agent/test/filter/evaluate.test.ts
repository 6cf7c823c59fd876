// Evaluation follows bexpr's semantics over the rows Consul's HTTP API returns. Each row of the
// tables is an expression and the names of the fixture rows it must select, once without a schema
// (types from the data) and once with Consul's CheckServiceNode schema.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CheckServiceNodeSchema,
  compileFilter,
  FilterError,
  HealthCheckSchema,
  NodeSchema,
  parseFilter,
  ServiceNodeSchema,
  type FilterSchema,
} from '../../src/filter/index.ts';

// GET /v1/health/service/web, as Consul renders it (note the nulls Go's nil maps and slices become).
const rows = [
  {
    Node: { ID: 'a1', Node: 'web-1', Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: { lan: '10.0.0.1' }, Meta: { env: 'prod', rack: 'r1' } },
    Service: { ID: 'web-1', Service: 'web', Tags: ['v1', 'primary'], Address: '', Meta: { version: '1.2.0' }, Port: 8080, Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false },
    Checks: [
      { Node: 'web-1', CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing', ServiceID: '', ServiceName: '', ServiceTags: [] },
      { Node: 'web-1', CheckID: 'service:web-1', Name: 'HTTP', Status: 'passing', ServiceID: 'web-1', ServiceName: 'web', ServiceTags: ['v1', 'primary'] },
    ],
  },
  {
    Node: { ID: 'b2', Node: 'web-2', Address: '10.0.0.2', Datacenter: 'dc1', TaggedAddresses: null, Meta: { env: 'staging' } },
    Service: { ID: 'web-2', Service: 'web', Tags: ['v2'], Address: '10.1.0.2', Meta: null, Port: 9090, Weights: { Passing: 3, Warning: 1 }, EnableTagOverride: true },
    Checks: [
      { Node: 'web-2', CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing', ServiceID: '', ServiceName: '', ServiceTags: [] },
      { Node: 'web-2', CheckID: 'service:web-2', Name: 'HTTP', Status: 'critical', ServiceID: 'web-2', ServiceName: 'web', ServiceTags: ['v2'] },
    ],
  },
  {
    // A sparse row: fields Go would print as zero values are missing altogether.
    Node: { ID: 'c3', Node: 'web-3', Address: '10.0.0.3', Datacenter: 'dc1' },
    Service: { ID: 'web-3', Service: 'web', Tags: null, Port: 8080 },
    Checks: null,
  },
];

function names(expr: string, schema?: FilterSchema): string[] {
  const f = schema ? compileFilter(expr, schema) : parseFilter(expr);
  return f.apply(rows).map((r) => r.Node.Node);
}

const table: Array<[name: string, expr: string, expected: string[]]> = [
  ['string equality', 'Service.ID == "web-2"', ['web-2']],
  ['string inequality', 'Service.ID != "web-2"', ['web-1', 'web-3']],
  ['bare identifier value', 'Node.Datacenter == dc1', ['web-1', 'web-2', 'web-3']],
  ['number equality from a number literal', 'Service.Port == 8080', ['web-1', 'web-3']],
  ['number equality from a quoted string (coerced)', 'Service.Port == "9090"', ['web-2']],
  ['number inequality', 'Service.Port != 8080', ['web-2']],
  ['boolean equality', 'Service.EnableTagOverride == true', ['web-2']],
  ['boolean in Go spelling', 'Service.EnableTagOverride == T', ['web-2']],
  ['nested struct number', 'Service.Weights.Passing == 3', ['web-2']],
  ['tag in list', '"primary" in Service.Tags', ['web-1']],
  ['contains on list', 'Service.Tags contains v2', ['web-2']],
  ['not in list (null list has nothing)', 'v2 not in Service.Tags', ['web-1', 'web-3']],
  ['list is empty (null counts as empty)', 'Service.Tags is empty', ['web-3']],
  ['list is not empty', 'Service.Tags is not empty', ['web-1', 'web-2']],
  ['substring with in', '"eb-" in Node.Node', ['web-1', 'web-2', 'web-3']],
  ['substring with contains', 'Node.Address contains ".2"', ['web-2']],
  ['map value by dot', 'Node.Meta.env == prod', ['web-1']],
  ['map value by index', 'Node.Meta["env"] == staging', ['web-2']],
  ['missing map key is not equal', 'Node.Meta.rack != r1', ['web-2', 'web-3']],
  ['missing map key is never equal', 'Node.Meta.rack == ""', []],
  ['missing map key is empty', 'Node.Meta.rack is empty', ['web-2', 'web-3']],
  ['key in map', 'rack in Node.Meta', ['web-1']],
  ['key not in map', 'env not in Node.Meta', ['web-3']],
  ['map is empty (null map)', 'Service.Meta is empty', ['web-2', 'web-3']],
  ['regex matches', 'Node.Node matches "^web-[12]$"', ['web-1', 'web-2']],
  ['regex not matches', 'Node.Node not matches "1$"', ['web-2', 'web-3']],
  ['regex with a Go inline flag', 'Checks.Name matches "(?i)^http$"', ['web-1', 'web-2']],
  ['any element of a list of objects', 'Checks.Status == critical', ['web-2']],
  ['negation applies per element (some check not passing)', 'Checks.Status != passing', ['web-2']],
  ['not over any (no check critical)', 'not Checks.Status == critical', ['web-1', 'web-3']],
  ['list index', 'Checks.1.Status == passing', ['web-1']],
  ['list index out of range', 'Checks.5.Status != passing', []],
  ['and', 'Service.Port == 8080 and Node.Meta.env == prod', ['web-1']],
  ['or', 'Node.Node == "web-1" or Node.Node == "web-3"', ['web-1', 'web-3']],
  ['precedence and over or', 'Node.Node == "web-3" or Service.Port == 8080 and Node.Meta.env == staging', ['web-3']],
  ['parentheses', '(Node.Node == "web-3" or Service.Port == 8080) and Node.Meta.env == prod', ['web-1']],
  ['not and parentheses', 'not (Service.Port == 8080 or Service.Port == 9090)', []],
  ['empty string equals a missing struct field (zero value)', 'Service.Address == ""', ['web-1', 'web-3']],
  ['a value that does not convert matches nothing, even negated', 'Service.Port != abc', []],
];

describe('filter evaluation without a schema', () => {
  // Without a schema, the data cannot say whether a null is a nil list (no elements: nothing
  // matches) or a nil map (no keys: negations match); it is taken for a map, so web-3's null
  // Checks satisfies `!=` there. And a missing struct field is unknown rather than a zero value.
  const differs = new Map<string, string[]>([
    ['negation applies per element (some check not passing)', ['web-2', 'web-3']],
    ['list index out of range', ['web-3']],
    ['empty string equals a missing struct field (zero value)', ['web-1']],
  ]);
  for (const [name, expr, expected] of table) {
    test(name, () => assert.deepEqual(names(expr), differs.get(name) ?? expected));
  }

  test('a hyphenated bare word is not a value (bexpr identifiers are [A-Za-z][A-Za-z0-9_/]*)', () => {
    assert.throws(() => parseFilter('Node.Node == web-1'), FilterError);
  });

  test('an unknown top-level field matches nothing, and its negation matches everything', () => {
    assert.deepEqual(names('Nope == 1'), []);
    assert.deepEqual(names('Nope != 1'), []);
    assert.deepEqual(names('not Nope == 1'), ['web-1', 'web-2', 'web-3']);
  });

  test('selecting into a scalar matches nothing', () => {
    assert.deepEqual(names('Node.Node.x == 1'), []);
  });

  test('a missing key under a nested object is "not present"', () => {
    assert.deepEqual(names('Service.Meta.version != "1.2.0"'), ['web-2', 'web-3']);
  });

  test('never throws on odd row shapes', () => {
    const f = parseFilter('A.B.C == 1 or "x" in A.B or A is empty or A matches x');
    for (const row of [null, undefined, 1, 'str', [], [1, [2]], { A: null }, { A: [{ B: null }] }, { A: { B: { C: [1] } } }, Object.create(null)]) {
      assert.equal(typeof f.matches(row), 'boolean');
    }
  });

  test('does not read inherited properties', () => {
    const f = parseFilter('toString is not empty or constructor in Meta');
    assert.equal(f.matches({ Meta: {} }), false);
  });
});

describe('filter evaluation with the CheckServiceNode schema', () => {
  for (const [name, expr, expected] of table) {
    if (name.startsWith('a value that does not convert')) continue; // a compile error with a schema
    test(name, () => assert.deepEqual(names(expr, CheckServiceNodeSchema), expected));
  }
});

describe('filter compilation against a schema', () => {
  const errors: Array<[name: string, schema: FilterSchema, expr: string, message: RegExp]> = [
    ['unknown top-level field', CheckServiceNodeSchema, 'Nope == 1', /^Selector "Nope" is not valid$/],
    ['unknown nested field', CheckServiceNodeSchema, 'Service.Nope == 1', /^Selector "Service.Nope" is not valid$/],
    ['names are case-sensitive like the JSON', CheckServiceNodeSchema, 'service.Service == web', /^Selector "service" is not valid$/],
    ['selecting into a scalar', CheckServiceNodeSchema, 'Service.Port.x == 1', /^Selector "Service.Port.x" is not valid$/],
    ['unknown field of list elements', CheckServiceNodeSchema, 'Checks.Nope == x', /^Selector "Checks.Nope" is not valid$/],
    ['matches on a number', CheckServiceNodeSchema, 'Service.Port matches "8"', /^Invalid match operator "matches" for selector "Service.Port"/],
    ['in on a boolean', CheckServiceNodeSchema, 'x in Service.EnableTagOverride', /^Invalid match operator "in"/],
    ['equality on a list', CheckServiceNodeSchema, 'Service.Tags == v1', /^Invalid match operator "==" for selector "Service.Tags": .*list of string/],
    ['equality on a map', CheckServiceNodeSchema, 'Node.Meta == x', /^Invalid match operator "=="/],
    ['any operator on an object', CheckServiceNodeSchema, 'Service is empty', /^Invalid match operator "is empty" for selector "Service"/],
    ['in on a list of objects', CheckServiceNodeSchema, 'x in Checks', /^Invalid match operator "in"/],
    ['value not an integer', CheckServiceNodeSchema, 'Service.Port == abc', /^Failed to coerce value "abc" for selector "Service.Port": not a valid integer$/],
    ['float for an integer', CheckServiceNodeSchema, 'Service.Port == 80.5', /not a valid integer/],
    ['value not a boolean', CheckServiceNodeSchema, 'Service.EnableTagOverride == yes', /not a valid boolean/],
    ['bad regex', CheckServiceNodeSchema, 'Node.Node matches "("', /^Failed to compile regular expression "\(":/],
    ['ungreedy flag', CheckServiceNodeSchema, 'Node.Node matches "(?U)a+"', /U \(ungreedy\) flag/],
  ];
  for (const [name, schema, expr, message] of errors) {
    test(name, () => {
      assert.throws(() => compileFilter(expr, schema), (e: unknown) => {
        assert.ok(e instanceof FilterError, String(e));
        assert.match(e.reason, message);
        assert.ok(e.position !== undefined);
        return true;
      });
    });
  }

  test('a bad regex is an error even without a schema', () => {
    assert.throws(() => parseFilter('Node matches "[a-"'), FilterError);
  });

  test('Go integer forms convert for integer fields', () => {
    const row = { ServicePort: 255 };
    for (const lit of ['255', '"0xff"', '"0o377"', '"0377"', '"0b1111_1111"', '"+255"']) {
      assert.equal(compileFilter(`ServicePort == ${lit}`, ServiceNodeSchema).matches(row), true, lit);
    }
    for (const lit of ['"1_"', '"0x"', '"08"', '"9223372036854775808"']) {
      assert.throws(() => compileFilter(`ServicePort == ${lit}`, ServiceNodeSchema), FilterError, lit);
    }
  });

  test('open blocks accept selectors the schema does not list', () => {
    const f = compileFilter('ServiceProxy.Unlisted.Thing == x or ServiceProxy.Upstreams.DestinationName == db', ServiceNodeSchema);
    assert.equal(f.matches({ ServiceProxy: { Upstreams: [{ DestinationName: 'cache' }, { DestinationName: 'db' }] } }), true);
    assert.equal(f.matches({ ServiceProxy: { Upstreams: [{ DestinationName: 'cache' }] } }), false);
    assert.equal(f.matches({ ServiceProxy: null }), false);
  });

  test('map values of objects: ServiceTaggedAddresses.<any>.Port', () => {
    const f = compileFilter('ServiceTaggedAddresses.lan.Port == 8080', ServiceNodeSchema);
    assert.equal(f.matches({ ServiceTaggedAddresses: { lan: { Address: '10.0.0.1', Port: 8080 } } }), true);
    assert.equal(f.matches({ ServiceTaggedAddresses: { wan: { Address: '1.2.3.4', Port: 8080 } } }), false);
    assert.equal(f.matches({ ServiceTaggedAddresses: null }), false);
  });

  test('the other Consul schemas accept their documented selectors', () => {
    compileFilter('Meta.env == prod and TaggedAddresses.lan != "" and Node matches "^web"', NodeSchema);
    compileFilter('Status == critical and ServiceName == web and "v1" in ServiceTags and Definition.HTTP != ""', HealthCheckSchema);
    compileFilter('ServiceMeta.version == v1 and NodeMeta.env == prod and ServiceWeights.Passing == 1 and ServiceConnect.Native == false', ServiceNodeSchema);
  });

  test('Consul field names are exact: a JSON-cased row is filtered, a lower-cased one is not', () => {
    const f = compileFilter('ServiceName == web', ServiceNodeSchema);
    assert.equal(f.matches({ ServiceName: 'web' }), true);
    assert.equal(f.matches({ servicename: 'web' }), false);
  });
});
