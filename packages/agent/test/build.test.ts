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

  /** The current build's .mjs files by name (earlier builds' chunks stay for a while beside it). */
  function currentChunks(): Map<string, string> {
    const stamp = fs.statSync(path.join(dist, 'trellis.mjs')).mtimeMs;
    const out = new Map<string, string>();
    for (const f of fs.readdirSync(dist)) {
      if (f.endsWith('.mjs') && fs.statSync(path.join(dist, f)).mtimeMs === stamp) out.set(f, fs.readFileSync(path.join(dist, f), 'utf8'));
    }
    return out;
  }
  /** Chunks a chunk loads when it is loaded (static imports, transitively), itself included. */
  function staticClosure(chunks: Map<string, string>, name: string, seen = new Set<string>()): Set<string> {
    if (seen.has(name)) return seen;
    seen.add(name);
    const code = chunks.get(name);
    assert.ok(code !== undefined, `${name} is a chunk of the current build`);
    for (const m of code.matchAll(/\bimport\s*(?:[\w$*{}\s,]+from\s*)?"\.\/([^"]+\.mjs)"/g)) staticClosure(chunks, m[1]!, seen);
    return seen;
  }
  const dynamicImports = (code: string) => [...code.matchAll(/\bimport\("\.\/([^"]+\.mjs)"\)/g)].map((m) => m[1]!);
  const holding = (chunks: Map<string, string>, names: Set<string>, marker: RegExp) => [...names].filter((n) => marker.test(chunks.get(n)!));
  /** esbuild writes `class X {` as `X=class{` in some places: either form. */
  const classDef = (name: string) => new RegExp(`\\bclass ${name}\\b|\\b${name}=class\\b`);

  test('a client agent loads no Raft and no server role; a CLI command loads no agent runtime', { skip: isStale() && 'dist is missing or older than a source (npm test rebuilds it first)' }, () => {
    const chunks = currentChunks();
    const agentChunk = [...chunks].find(([, code]) => code.includes('"Trellis agent running!"'))?.[0];
    assert.ok(agentChunk, 'the agent runtime is a chunk of its own');
    const roles = dynamicImports(chunks.get(agentChunk)!);
    const clientRole = roles.find((r) => /function startClientRole\(/.test(chunks.get(r) ?? ''));
    const serverRole = roles.find((r) => /function startServerRole\(/.test(chunks.get(r) ?? ''));
    assert.ok(clientRole && serverRole, `the roles are loaded with import() from the agent chunk (found ${roles.join(', ')})`);
    // What a server loads holds Raft (so the markers are the right ones) ...
    const server = staticClosure(chunks, serverRole, staticClosure(chunks, agentChunk));
    assert.ok(holding(chunks, server, classDef('LevelLogStore')).length > 0, 'a server loads LevelLogStore');
    assert.ok(holding(chunks, server, classDef('RaftNode')).length > 0, 'a server loads RaftNode');
    // ... and what a client loads does not.
    const client = staticClosure(chunks, clientRole, staticClosure(chunks, agentChunk));
    for (const marker of [classDef('LevelLogStore'), classDef('RaftNode'), /\bfunction startServerRole\(/]) {
      assert.deepEqual(holding(chunks, client, marker), [], `a client agent loads ${marker}`);
    }
    // `trellis version`, `kv get`, ...: the entry and the CLI chunk, not libp2p or the agent.
    const cliChunk = dynamicImports(chunks.get('trellis.mjs')!).find((c) => chunks.get(c)?.includes('Available commands are:'));
    assert.ok(cliChunk, 'the CLI is a chunk of its own');
    const cli = staticClosure(chunks, cliChunk, staticClosure(chunks, 'trellis.mjs'));
    for (const marker of [classDef('GossipPool'), /"Trellis agent running!"/, classDef('RaftNode')]) {
      assert.deepEqual(holding(chunks, cli, marker), [], `a CLI command loads ${marker}`);
    }
  });
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
