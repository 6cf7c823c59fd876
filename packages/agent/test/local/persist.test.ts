// FilePersistence: API registrations written under <data-dir>/services and /checks, read back after
// a restart; files that cannot be used are reported by name and skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FilePersistence } from '../../src/local/persist.ts';
import type { ServiceFields } from '../../src/state/types.ts';

const svc = (id: string): ServiceFields => ({
  Kind: '', ID: id, Service: 'web', Tags: ['a'], Address: '', TaggedAddresses: {}, Meta: { k: 'v' }, Port: 80,
  Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false,
});

test('services and checks round-trip; removal deletes them; files are private', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-persist-'));
  try {
    const p = new FilePersistence(dir);
    p.saveService(svc('web-1'));
    p.saveService(svc('web-2'));
    p.saveCheck({ CheckID: 'web-1-http', ServiceID: 'web-1', HTTP: 'http://127.0.0.1:1/', IntervalNs: 1e9, Header: { Authorization: ['Bearer x'] } });
    p.saveCheck({ CheckID: 'disk', TTLNs: 30e9 });
    const again = new FilePersistence(dir).load();
    assert.deepEqual(again.problems, []);
    assert.deepEqual(again.services.map((s) => s.ID).sort(), ['web-1', 'web-2']);
    assert.deepEqual(again.services.find((s) => s.ID === 'web-1'), svc('web-1'));
    assert.deepEqual(again.checks.map((c) => c.CheckID).sort(), ['disk', 'web-1-http']);
    assert.deepEqual(again.checks.find((c) => c.CheckID === 'web-1-http')?.Header, { Authorization: ['Bearer x'] });
    for (const f of fs.readdirSync(path.join(dir, 'checks'))) {
      assert.equal(fs.statSync(path.join(dir, 'checks', f)).mode & 0o777, 0o600);
    }
    p.removeService('web-2');
    p.removeCheck('disk');
    p.removeCheck('never-saved');
    const after = p.load();
    assert.deepEqual(after.services.map((s) => s.ID), ['web-1']);
    assert.deepEqual(after.checks.map((c) => c.CheckID), ['web-1-http']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a corrupt or foreign file is reported with its path and skipped; the others load', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-persist-'));
  try {
    const p = new FilePersistence(dir);
    p.saveService(svc('good'));
    const bad = path.join(dir, 'services', 'a'.repeat(64));
    fs.writeFileSync(bad, '{"Format":1,"Service":');
    const foreign = path.join(dir, 'services', 'b'.repeat(64));
    fs.writeFileSync(foreign, '{"Format":9,"Service":{"ID":"x"}}');
    fs.writeFileSync(path.join(dir, 'services', 'README'), 'not ours: ignored');
    const r = p.load();
    assert.deepEqual(r.services.map((s) => s.ID), ['good']);
    assert.equal(r.problems.length, 2);
    assert.ok(r.problems.some((m) => m.includes(bad) && /JSON/.test(m)), r.problems.join('\n'));
    assert.ok(r.problems.some((m) => m.includes(foreign) && /format 9/.test(m)), r.problems.join('\n'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a service registered with a token keeps it (ACLs on): saved beside the service, 0600, read back by ID', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-persist-'));
  try {
    const tokens = new Map([['web-1', 'secret-of-web-1']]);
    const p = new FilePersistence(dir, { serviceToken: (id) => tokens.get(id) });
    p.saveService(svc('web-1'));
    p.saveService(svc('web-2')); // registered without a token: none saved
    const r = new FilePersistence(dir).load();
    assert.deepEqual([...r.serviceTokens], [['web-1', 'secret-of-web-1']]);
    assert.deepEqual(r.services.find((s) => s.ID === 'web-1'), svc('web-1'), 'the token is not part of the service');
    for (const f of fs.readdirSync(path.join(dir, 'services'))) {
      assert.equal(fs.statSync(path.join(dir, 'services', f)).mode & 0o777, 0o600);
    }
    // Deregistered: the file, and with it the token, is gone.
    p.removeService('web-1');
    assert.deepEqual([...new FilePersistence(dir).load().serviceTokens], []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
