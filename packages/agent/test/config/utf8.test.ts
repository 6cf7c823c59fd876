// Config files must be UTF-8: a broken byte in a service or check name is refused with the file,
// line and column, not read as U+FFFD (which would register a name the operator never wrote).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfigPaths } from '../../src/config/file.ts';
import { readConfigEntryFile } from '../../src/config/configEntry.ts';
import { ConfigError } from '../../src/config/errors.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-config-utf8-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, ...parts: Array<string | number[]>): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p)))));
  return file;
}

const refused = (file: string, line: number, column: number) => (e: unknown) =>
  e instanceof ConfigError && e.code === 'ERR_CONFIG_PARSE' && e.message === `config: ${file}: invalid UTF-8 at line ${line}, column ${column}: the file must be UTF-8`;

describe('config files that are not UTF-8', () => {
  test('a JSON service definition with a broken byte in its name', () => {
    const file = write('svc.json', '{\n  "service": {\n    "name": "we', [0xff], 'b"\n  }\n}\n');
    assert.throws(() => loadConfigPaths([file], '', []), refused(file, 3, 16));
  });

  test('an HCL check name', () => {
    const file = write('check.hcl', 'check {\n  name = "disk', [0xc3, 0x28], '"\n  ttl = "10s"\n}\n');
    assert.throws(() => loadConfigPaths([file], '', []), refused(file, 2, 15));
  });

  test('a config entry file', () => {
    const file = write('entry.hcl', 'Kind = "service-defaults"\nName = "a', [0x80], '"\n');
    assert.throws(() => readConfigEntryFile(file), refused(file, 2, 10));
  });

  test('valid UTF-8 (é, 😀) still loads', () => {
    const file = write('ok.json', '{"node_meta": {"owner": "José 😀"}}');
    const [src] = loadConfigPaths([file], '', []);
    assert.ok(src, 'the file was read');
  });
});
