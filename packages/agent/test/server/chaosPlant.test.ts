// The planted bugs of the chaos harness are switched on by TRELLIS_CHAOS_PLANT only: the variable
// is read from the environment, unknown values are refused, and no configuration key names them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chaosPlant } from '../../src/server/chaosPlant.ts';

test('TRELLIS_CHAOS_PLANT: unset or empty is no plant; the two bugs by name; anything else refused', () => {
  assert.equal(chaosPlant({}), undefined);
  assert.equal(chaosPlant({ TRELLIS_CHAOS_PLANT: '' }), undefined);
  assert.equal(chaosPlant({ TRELLIS_CHAOS_PLANT: 'stale-reads' }), 'stale-reads');
  assert.equal(chaosPlant({ TRELLIS_CHAOS_PLANT: 'early-ack' }), 'early-ack');
  assert.throws(() => chaosPlant({ TRELLIS_CHAOS_PLANT: 'lose-everything' }), /"lose-everything" is not a planted bug; known: stale-reads, early-ack/);
});

test('no configuration key, flag or schema entry mentions a planted bug', () => {
  const dir = path.join(import.meta.dirname, '..', '..', 'src', 'config');
  for (const f of fs.readdirSync(dir)) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    assert.doesNotMatch(text, /plant|stale-reads|early-ack/i, `src/config/${f}`);
  }
});
