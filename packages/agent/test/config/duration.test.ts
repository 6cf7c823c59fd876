// Go's time.ParseDuration / Duration.String, checked against the cases of Go's own time_test.go.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseGoDurationNs, parseGoDuration, formatGoDurationNs, formatGoDuration, DurationError } from '../../src/config/duration.ts';

const S = 1_000_000_000n;
const MS = 1_000_000n;
const US = 1000n;
const MIN = 60n * S;
const H = 60n * MIN;

describe('parseGoDurationNs accepts what Go accepts, with Go\'s value', () => {
  const cases: Array<[string, bigint]> = [
    ['0', 0n], ['5s', 5n * S], ['30s', 30n * S], ['1478s', 1478n * S],
    ['-5s', -5n * S], ['+5s', 5n * S], ['-0', 0n], ['+0', 0n],
    ['5.0s', 5n * S], ['5.6s', 5n * S + 600n * MS], ['5.s', 5n * S], ['.5s', 500n * MS],
    ['1.0s', S], ['1.00s', S], ['1.004s', S + 4n * MS], ['1.0040s', S + 4n * MS], ['100.00100s', 100n * S + MS],
    ['10ns', 10n], ['11us', 11n * US], ['12\u00b5s', 12n * US], ['12\u03bcs', 12n * US], ['13ms', 13n * MS],
    ['14s', 14n * S], ['15m', 15n * MIN], ['16h', 16n * H],
    ['3h30m', 3n * H + 30n * MIN], ['10.5s4m', 4n * MIN + 10n * S + 500n * MS], ['-2m3.4s', -(2n * MIN + 3n * S + 400n * MS)],
    ['1h2m3s4ms5us6ns', H + 2n * MIN + 3n * S + 4n * MS + 5n * US + 6n],
    ['39h9m14.425s', 39n * H + 9n * MIN + 14n * S + 425n * MS],
    ['52763797000ns', 52763797000n],
    ['0.3333333333333333333h', 20n * MIN],
    ['9007199254740993ns', (1n << 53n) + 1n],
    ['9223372036854775807ns', (1n << 63n) - 1n],
    ['9223372036854775.807us', (1n << 63n) - 1n],
    ['9223372036s854ms775us807ns', (1n << 63n) - 1n],
    ['-9223372036854775808ns', -(1n << 63n)],
    ['-9223372036854775.808us', -(1n << 63n)],
    ['-9223372036s854ms775us808ns', -(1n << 63n)],
    ['-2562047h47m16.854775808s', -(1n << 63n)],
    ['0.100000000000000000000h', 6n * MIN],
    ['0.830103483285477580700h', 49n * MIN + 48n * S + 372539827n],
    // The brief's cases, as Consul users write them.
    ['10s', 10n * S], ['10.0s', 10n * S], ['0.001s', MS], ['4.99s', 4n * S + 990n * MS], ['1m30s', 90n * S],
    ['72h', 72n * H], ['-1.5h', -(H + 30n * MIN)], ['1h2m3.5s', H + 2n * MIN + 3n * S + 500n * MS],
  ];
  for (const [input, want] of cases) {
    test(JSON.stringify(input), () => assert.equal(parseGoDurationNs(input), want));
  }
});

describe('parseGoDurationNs rejects what Go rejects, with Go\'s message', () => {
  const cases: Array<[string, string]> = [
    ['', 'time: invalid duration ""'],
    ['3', 'time: missing unit in duration "3"'],
    ['-', 'time: invalid duration "-"'],
    ['s', 'time: invalid duration "s"'],
    ['.', 'time: invalid duration "."'],
    ['-.', 'time: invalid duration "-."'],
    ['.s', 'time: invalid duration ".s"'],
    ['+.s', 'time: invalid duration "+.s"'],
    ['1d', 'time: unknown unit "d" in duration "1d"'],
    ['1.5', 'time: missing unit in duration "1.5"'],
    ['10 s', 'time: unknown unit " s" in duration "10 s"'],
    ['\u0085\u0085', 'time: invalid duration "\u0085\u0085"'],
    ['9223372036854775810ns', 'time: invalid duration "9223372036854775810ns"'],
    ['9223372036854775808ns', 'time: invalid duration "9223372036854775808ns"'],
    ['-9223372036854775809ns', 'time: invalid duration "-9223372036854775809ns"'],
    ['9223372036854776us', 'time: invalid duration "9223372036854776us"'],
    ['3000000h', 'time: invalid duration "3000000h"'],
    ['9223372036854775.808us', 'time: invalid duration "9223372036854775.808us"'],
    ['9223372036854ms775us808ns', 'time: invalid duration "9223372036854ms775us808ns"'],
  ];
  for (const [input, message] of cases) {
    test(JSON.stringify(input), () => {
      assert.throws(() => parseGoDurationNs(input), (err: unknown) => {
        assert.ok(err instanceof DurationError);
        assert.equal(err.code, 'ERR_INVALID_DURATION');
        assert.equal(err.message, message);
        return true;
      });
    });
  }
});

test('parseGoDuration gives milliseconds, fractional below one', () => {
  assert.equal(parseGoDuration('1m30s'), 90_000);
  assert.equal(parseGoDuration('0.001s'), 1);
  assert.equal(parseGoDuration('1500us'), 1.5);
  assert.equal(parseGoDuration('-1.5h'), -5_400_000);
  assert.equal(parseGoDuration('87600h'), 87600 * 3_600_000);
});

describe('formatGoDurationNs prints as Duration.String()', () => {
  const cases: Array<[bigint, string]> = [
    [0n, '0s'], [1n, '1ns'], [1100n, '1.1\u00b5s'], [2200n * US, '2.2ms'], [3300n * MS, '3.3s'],
    [4n * MIN + 5n * S, '4m5s'], [4n * MIN + 5001n * MS, '4m5.001s'], [5n * H + 6n * MIN + 7001n * MS, '5h6m7.001s'],
    [8n * MIN + 1n, '8m0.000000001s'], [(1n << 63n) - 1n, '2562047h47m16.854775807s'], [-(1n << 63n), '-2562047h47m16.854775808s'],
    [72n * H, '72h0m0s'], [15n * S, '15s'],
  ];
  for (const [ns, want] of cases) test(want, () => assert.equal(formatGoDurationNs(ns), want));
  test('round trip through the parser', () => {
    for (const [ns, text] of cases) assert.equal(parseGoDurationNs(text), ns);
  });
  test('formatGoDuration takes milliseconds', () => {
    assert.equal(formatGoDuration(15_000), '15s');
    assert.equal(formatGoDuration(1.5), '1.5ms');
    assert.equal(formatGoDuration(0), '0s');
  });
});
