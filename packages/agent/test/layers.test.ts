// The layer rules (.dependency-cruiser.cjs) catch what they are meant to: each test plants one
// violation in a scratch tree laid out like the repository and expects dependency-cruiser to name
// the rule; a clean scratch tree passes. (npm test also runs the rules on the real tree.)
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', '..', '..');
const depcruise = path.join(root, 'node_modules', '.bin', 'depcruise');
const scratch: string[] = [];
after(() => { for (const d of scratch) fs.rmSync(d, { recursive: true, force: true }); });

/** Writes the files into a fresh scratch tree and runs the project's rules on its packages/. */
function cruise(files: Record<string, string>): { code: number | null; out: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-layers-'));
  scratch.push(dir);
  fs.copyFileSync(path.join(root, '.dependency-cruiser.cjs'), path.join(dir, '.dependency-cruiser.cjs'));
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', allowImportingTsExtensions: true, noEmit: true },
    include: ['packages/**/*.ts'],
  }));
  for (const [file, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), text);
  }
  const r = spawnSync(depcruise, ['--config', '.dependency-cruiser.cjs', '--output-type', 'err', 'packages'], { cwd: dir, encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('layer rules catch planted violations', () => {
  test('a clean tree passes', () => {
    const r = cruise({
      'packages/agent/src/state/store.ts': "import { x } from './rows.ts';\nexport const y = x;\n",
      'packages/agent/src/state/rows.ts': 'export const x = 1;\n',
      'packages/agent/src/http/server.ts': "import { y } from '../state/store.ts';\nexport const z = y;\n",
    });
    assert.equal(r.code, 0, r.out);
  });

  test('an import cycle, even through a type-only import', () => {
    const r = cruise({
      'packages/agent/src/http/server.ts': "import type { Deps } from './routes.ts';\nexport interface Server { d?: Deps }\n",
      'packages/agent/src/http/routes.ts': "import type { Server } from './server.ts';\nexport interface Deps { s?: Server }\n",
    });
    assert.notEqual(r.code, 0);
    assert.match(r.out, /no-circular/);
  });

  test('state/ importing a layer above it', () => {
    const r = cruise({
      'packages/agent/src/state/store.ts': "import { handler } from '../http/server.ts';\nexport const h = handler;\n",
      'packages/agent/src/http/server.ts': 'export const handler = 1;\n',
    });
    assert.notEqual(r.code, 0);
    assert.match(r.out, /state-is-the-bottom/);
  });

  test('state/ may import the pure chain compiler, and nothing else of connect/', () => {
    const ok = cruise({
      'packages/agent/src/state/configEntries.ts': "import { compile } from '../connect/discoveryChain.ts';\nexport const c = compile;\n",
      'packages/agent/src/connect/discoveryChain.ts': 'export const compile = 1;\n',
    });
    assert.equal(ok.code, 0, ok.out);
    const r = cruise({
      'packages/agent/src/state/configEntries.ts': "import { sni } from '../connect/sni.ts';\nexport const c = sni;\n",
      'packages/agent/src/connect/sni.ts': 'export const sni = 1;\n',
    });
    assert.notEqual(r.code, 0);
    assert.match(r.out, /state-is-the-bottom/);
  });

  test('a pure core importing a node builtin, an npm package or a module outside its folder', () => {
    for (const [file, text] of [
      ['packages/raft/src/core/raft.ts', "import fs from 'node:fs';\nexport const f = fs;\n"],
      ['packages/agent/src/gossip/core/swim.ts', "import { net } from '../libp2p/pool.ts';\nexport const n = net;\n"],
      ['packages/agent/src/connect/sni.ts', "import { pool } from '../gossip/libp2p/pool.ts';\nexport const p = pool;\n"],
    ] as const) {
      const r = cruise({
        [file]: text,
        'packages/agent/src/gossip/libp2p/pool.ts': 'export const net = 1;\nexport const pool = 2;\n',
      });
      assert.notEqual(r.code, 0, `${file}: ${r.out}`);
      assert.match(r.out, /pure-cores-do-no-io/, file);
    }
  });

  test('acl/ may import the HCL parser, and nothing else outside its folder', () => {
    const ok = cruise({
      'packages/agent/src/acl/rules.ts': "import { parseHcl } from '../config/hcl.ts';\nexport const p = parseHcl;\n",
      'packages/agent/src/config/hcl.ts': 'export const parseHcl = 1;\n',
    });
    assert.equal(ok.code, 0, ok.out);
    for (const text of ["import fs from 'node:fs';\nexport const f = fs;\n", "import { x } from '../config/runtime.ts';\nexport const y = x;\n"]) {
      const r = cruise({
        'packages/agent/src/acl/rules.ts': text,
        'packages/agent/src/config/runtime.ts': 'export const x = 1;\n',
      });
      assert.notEqual(r.code, 0, r.out);
      assert.match(r.out, /acl-core-is-pure/);
    }
  });

  test('the gateway importing the agent', () => {
    const r = cruise({
      'packages/gateway/src/proxy.ts': "import { startAgent } from '../../agent/src/agent.ts';\nexport const s = startAgent;\n",
      'packages/agent/src/agent.ts': 'export const startAgent = 1;\n',
    });
    assert.notEqual(r.code, 0);
    assert.match(r.out, /gateway-never-imports-agent/);
  });
});
