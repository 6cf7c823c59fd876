// The bundle build (build.ts): its source maps, trimmed to our own sources, still name the right
// .ts line; and the bundle it wrote maps a known statement back to its line in src.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { SourceMap, type SourceMapPayload } from 'node:module';
import * as esbuild from 'esbuild';
import { trimSourceMap, isStale } from '../build.ts';

type RawMap = SourceMapPayload;

/** Bundles two in-memory modules, one standing for our code and one for a dependency. */
async function twoSourceBundle(): Promise<{ code: string; map: RawMap }> {
  const files: Record<string, string> = {
    '/src/ours.ts': [
      "import { dep } from '/node_modules/dep/index.js';",
      'export function ours(x: number): number {',
      '  const doubled = x * 2;',
      '  return dep(doubled) + 1;',
      '}',
      'export function thrower(): never {',
      "  throw new Error('from ours');",
      '}',
    ].join('\n'),
    '/node_modules/dep/index.js': [
      'export function dep(y) {',
      '  const z = y + 3;',
      '  return z * z;',
      '}',
    ].join('\n'),
  };
  const r = await esbuild.build({
    entryPoints: ['/src/ours.ts'], bundle: true, format: 'esm', write: false, outfile: '/out/x.mjs',
    sourcemap: 'external', sourcesContent: false, minifyWhitespace: true, logLevel: 'silent',
    plugins: [{
      name: 'memory',
      setup(b) {
        b.onResolve({ filter: /.*/ }, (a) => ({ path: a.path, namespace: 'mem' }));
        b.onLoad({ filter: /.*/, namespace: 'mem' }, (a) => ({ contents: files[a.path]!, loader: a.path.endsWith('.ts') ? 'ts' : 'js' }));
      },
    }],
  });
  const code = r.outputFiles.find((f) => f.path.endsWith('.mjs'))!.text;
  const map = JSON.parse(r.outputFiles.find((f) => f.path.endsWith('.map'))!.text) as RawMap;
  return { code, map };
}

/** Generated [line, column] (0-based) of the first occurrence of `needle` in `code`. */
function positionOf(code: string, needle: string): [number, number] {
  const at = code.indexOf(needle);
  assert.ok(at >= 0, `${needle} not in the bundle`);
  const before = code.slice(0, at).split('\n');
  return [before.length - 1, before.at(-1)!.length];
}

describe('source maps trimmed to our own sources', () => {
  test('keeping every source changes no position that names a line', async () => {
    const { code, map } = await twoSourceBundle();
    const full = new SourceMap(map);
    const kept = new SourceMap(trimSourceMap(map, () => true));
    for (const needle of ['x*2', 'return dep', 'y+3', 'z*z', 'from ours']) {
      const [line, col] = positionOf(code, needle);
      const a = full.findEntry(line, col) as { originalSource?: string; originalLine?: number };
      const b = kept.findEntry(line, col) as { originalSource?: string; originalLine?: number };
      assert.deepEqual([b.originalSource, b.originalLine], [a.originalSource, a.originalLine], needle);
    }
  });

  test('our lines map to their .ts line; a dependency\'s code maps to nothing, not to our code', async () => {
    const { code, map } = await twoSourceBundle();
    const trimmed = trimSourceMap(map, (source) => !source.includes('node_modules/'));
    assert.ok(trimmed.mappings.length < map.mappings.length);
    const sm = new SourceMap(trimmed);
    const entry = (needle: string) => sm.findEntry(...positionOf(code, needle)) as { originalSource?: string; originalLine?: number };
    // 0-based lines of /src/ours.ts.
    assert.deepEqual([entry('x*2').originalSource?.endsWith('src/ours.ts'), entry('x*2').originalLine], [true, 2]);
    assert.equal(entry('return dep').originalLine, 3);
    assert.equal(entry('from ours').originalLine, 6);
    for (const needle of ['y+3', 'z*z']) assert.equal(entry(needle).originalSource, undefined, `${needle} is the dependency's`);
  });
});

describe('the bundle in packages/agent/dist', () => {
  const dist = path.join(import.meta.dirname, '..', 'dist');
  test('maps a statement of src/agent.ts back to its line', { skip: isStale() && 'dist is missing or older than a source (npm test rebuilds it first)' }, () => {
    const needle = "'Trellis agent running!'";
    const chunk = fs.readdirSync(dist).filter((f) => f.endsWith('.mjs'))
      .map((f) => path.join(dist, f))
      // Current build only: chunks of earlier builds stay for a while beside it.
      .filter((f) => fs.statSync(f).mtimeMs === fs.statSync(path.join(dist, 'trellis.mjs')).mtimeMs)
      .find((f) => fs.readFileSync(f, 'utf8').includes('"Trellis agent running!"'));
    assert.ok(chunk, 'a chunk of the current build holds the agent');
    const code = fs.readFileSync(chunk, 'utf8');
    assert.match(code, /\n\/\/# sourceMappingURL=\S+\.mjs\.map\n?$/);
    assert.doesNotMatch(code, /[^\x00-\x7f]/, 'ASCII only (else V8 keeps the source as a two-byte string)');
    const sm = new SourceMap(JSON.parse(fs.readFileSync(`${chunk}.map`, 'utf8')));
    const e = sm.findEntry(...positionOf(code, '"Trellis agent running!"')) as { originalSource?: string; originalLine?: number };
    const agentTs = path.join(import.meta.dirname, '..', 'src', 'agent.ts');
    const line = fs.readFileSync(agentTs, 'utf8').split('\n').findIndex((l) => l.includes(needle));
    assert.ok(line >= 0);
    assert.deepEqual([e.originalSource && path.resolve(dist, e.originalSource), e.originalLine], [agentTs, line]);
  });
});
