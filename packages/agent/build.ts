// Builds the bundled agent that `trellis` runs: src/cli/main.ts and everything it imports (this
// package, @trellis/raft, libp2p, fastify, grpc-js, pino, ...) into dist/trellis.mjs and the chunks
// it loads on demand (the CLI, the agent runtime, each role, the sidecar proxy of @trellis/gateway
// that `trellis connect proxy` imports), with source maps so stack traces name
// the .ts lines (bin/trellis starts Node with --enable-source-maps). Loading a few pre-compiled
// files instead of ~1,500 modules, a third of them TypeScript stripped at run time, makes an agent
// process smaller and a CLI call faster (docs/BENCHMARKS.md has the figures).
//
//   node packages/agent/build.ts --prepare   build (root package.json's `prepare`: npm install/ci);
//                                            a failure is reported but does not fail the install
//   node packages/agent/build.ts --if-stale  build only when a source is newer than dist (npm test)
//   npm run build                            build
//
// bin/trellis runs dist only while no file under src/ (this package's and @trellis/raft's) is newer
// than dist/trellis.mjs, and src through type stripping otherwise, so an edit is never silently
// ignored. The build stamps dist with the time it started reading sources, so an edit made while it
// ran still counts as newer.
//
// What stays outside the bundle: classic-level (a native addon that finds its .node file from its
// own directory). Files read at run time by path (the .proto files for @grpc/proto-loader) are
// found as before: in every bundled module, import.meta.url is rewritten to the URL of its own
// source file, computed relative to the bundle, so `new URL('../../proto/x.proto', import.meta.url)`
// still names the file beside the sources.
import * as esbuild from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { buildUi, isUiStale, UI_OUT_DIR } from './buildUi.ts';

const pkgDir = import.meta.dirname;
const distDir = path.join(pkgDir, 'dist');
const outFile = path.join(distDir, 'trellis.mjs');
const entry = path.join(pkgDir, 'src', 'cli', 'main.ts');
/** Sources whose edits make dist stale (bin/trellis checks the same directories). */
export const SOURCE_DIRS = [path.join(pkgDir, 'src'), path.join(pkgDir, '..', 'raft', 'src'), path.join(pkgDir, '..', 'gateway', 'src')];

/** The newest modification time (ms) of a .ts file under `dirs`. */
function newestSource(dirs: string[]): number {
  let newest = 0;
  for (const dir of dirs) {
    if (!fs.existsSync(dir)) continue;
    for (const f of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
      if (!f.isFile() || !f.name.endsWith('.ts')) continue;
      newest = Math.max(newest, fs.statSync(path.join(f.parentPath, f.name)).mtimeMs);
    }
  }
  return newest;
}

export function isStale(): boolean {
  if (!fs.existsSync(outFile)) return true;
  return newestSource(SOURCE_DIRS) > fs.statSync(outFile).mtimeMs;
}

/**
 * import.meta.url in a bundled module would be the bundle's URL; paths computed from it (proto
 * files) would then point next to dist/. Replace it, in the sources that use it, by the URL of the
 * source file itself, resolved relative to the bundle so the checkout can move.
 */
const sourceImportMetaUrl: esbuild.Plugin = {
  name: 'source-import-meta-url',
  setup(build) {
    build.onLoad({ filter: /\.[cm]?[jt]s$/ }, async (args) => {
      const text = await fs.promises.readFile(args.path, 'utf8');
      if (!text.includes('import.meta.url') && !text.includes('import.meta.dirname') && !text.includes('import.meta.filename')) return undefined;
      const rel = path.relative(distDir, args.path).split(path.sep).join('/');
      const url = `new URL(${JSON.stringify(rel)}, import.meta.url).href`;
      const contents = text
        .replaceAll('import.meta.url', url)
        .replaceAll('import.meta.dirname', `__trellisPath.dirname(__trellisFileURLToPath(${url}))`)
        .replaceAll('import.meta.filename', `__trellisFileURLToPath(${url})`);
      const ext = path.extname(args.path);
      return { contents, loader: ext === '.ts' || ext === '.mts' || ext === '.cts' ? 'ts' : 'js' };
    });
  },
};

// ---------------------------------------------------------------------------------------------
// The source map, trimmed to our own sources. Node decodes a module's whole map the first time any
// error's stack is formatted and keeps it: for the full bundle that was +61 MB of an idle agent's
// RSS (103 -> 164 MB). Stack frames in our TypeScript are what a reader needs; frames inside
// dependencies keep their dist/trellis.mjs positions. Each run of generated code that comes from
// node_modules becomes one unmapped segment, so the map stays correct where it maps.

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_VALUE = new Map([...B64].map((c, i) => [c, i]));

function decodeVlq(segment: string): number[] {
  const out: number[] = [];
  let value = 0;
  let shift = 0;
  for (const ch of segment) {
    const digit = B64_VALUE.get(ch);
    if (digit === undefined) throw new Error(`source map: bad base64 digit ${JSON.stringify(ch)}`);
    value += (digit & 31) * 2 ** shift;
    if (digit & 32) { shift += 5; continue; }
    out.push(value & 1 ? -Math.floor(value / 2) : Math.floor(value / 2));
    value = 0;
    shift = 0;
  }
  return out;
}

function encodeVlq(values: number[]): string {
  let s = '';
  for (const v of values) {
    let n = v < 0 ? (-v) * 2 + 1 : v * 2;
    do {
      let digit = n & 31;
      n = Math.floor(n / 32);
      if (n > 0) digit |= 32;
      s += B64[digit];
    } while (n > 0);
  }
  return s;
}

interface RawSourceMap { sources: string[]; mappings: string }

/** Keeps the segments whose source `keep` accepts; the others become unmapped (see above). */
export function trimSourceMap<M extends RawSourceMap>(map: M, keep: (source: string) => boolean): M {
  const kept = map.sources.map(keep);
  // Every field but the generated column is relative to the previous segment of the whole map; the
  // generated column, to the previous segment of its line. In: absolute values read so far; out:
  // the last ones written.
  let src = 0, line = 0, col = 0, name = 0;
  let oSrc = 0, oLine = 0, oCol = 0, oName = 0;
  const lines = map.mappings.split(';').map((text) => {
    const segments: number[][] = []; // absolute: [genCol] or [genCol, src, line, col(, name)]
    let gen = 0;
    let lastUnmapped = false;
    for (const seg of text === '' ? [] : text.split(',')) {
      const f = decodeVlq(seg);
      gen += f[0]!;
      if (f.length >= 4) {
        src += f[1]!; line += f[2]!; col += f[3]!;
        if (f.length >= 5) name += f[4]!;
      }
      if (f.length >= 4 && kept[src]) {
        // One segment per source line is enough to name the line: the tokens after the first on
        // the same line add entries (memory, once decoded) but no line information.
        const last = segments[segments.length - 1];
        if (last !== undefined && last.length >= 4 && last[1] === src && last[2] === line) continue;
        segments.push([gen, src, line, col]);
        lastUnmapped = false;
      } else if (!lastUnmapped) {
        segments.push([gen]);
        lastUnmapped = true;
      }
    }
    let prevGen = 0;
    return segments.map((sg) => {
      const fields = [sg[0]! - prevGen];
      prevGen = sg[0]!;
      if (sg.length >= 4) {
        fields.push(sg[1]! - oSrc, sg[2]! - oLine, sg[3]! - oCol);
        [oSrc, oLine, oCol] = [sg[1]!, sg[2]!, sg[3]!];
        if (sg.length === 5) { fields.push(sg[4]! - oName); oName = sg[4]!; }
      }
      return encodeVlq(fields);
    }).join(',');
  });
  return { ...map, mappings: lines.join(';') };
}

/**
 * `import ... from 'node:http'` in an ES module makes Node build the module's namespace, which
 * reads its lazy WebSocket, CloseEvent and MessageEvent properties and so loads undici (fetch's
 * 750 KB implementation, ~3 MB of an idle agent) that no agent uses. In the bundle those imports
 * read the module through require() instead, which touches only what is used. CommonJS
 * dependencies' require('http') is untouched: it never builds a namespace.
 */
const UNDICI_EXPORTS = new Set(['WebSocket', 'CloseEvent', 'MessageEvent']);
const httpWithoutUndici: esbuild.Plugin = {
  name: 'node-http-without-undici',
  setup(build) {
    build.onResolve({ filter: /^(node:)?http$/ }, (args) =>
      args.kind === 'import-statement' || args.kind === 'dynamic-import' ? { path: 'node:http', namespace: 'trellis-http' } : undefined);
    build.onLoad({ filter: /.*/, namespace: 'trellis-http' }, () => {
      const http = createRequire(import.meta.url)('node:http') as Record<string, unknown>;
      const names = Object.keys(http).filter((k) => !UNDICI_EXPORTS.has(k));
      return { contents: `const http = require('node:http');\nexport default http;\nexport const { ${names.join(', ')} } = http;\n`, loader: 'js' };
    });
  },
};

/** Output files of builds other than the current one are removed once this old (see build()). */
const OLD_OUTPUT_MS = 3600_000;

export async function build(): Promise<{ outFile: string; bytes: number; files: number; ms: number }> {
  const started = Date.now();
  const result = await esbuild.build({
    entryPoints: { trellis: entry },
    bundle: true,
    // Code reached only through import() goes to chunks of its own, loaded when first needed: a CLI
    // command loads the CLI, not the agent runtime; a client agent loads no Raft and no server role.
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    outdir: distDir,
    outExtension: { '.js': '.mjs' },
    // Chunks beside the entry (not in a subdirectory): the import.meta.url rewrite above computes
    // source paths relative to distDir.
    chunkNames: '[name]-[hash]',
    write: false,
    sourcemap: 'linked',
    // The .ts files are in the checkout: the map needs only positions, not a second copy of them.
    sourcesContent: false,
    minifyWhitespace: true,
    minifySyntax: true,
    // Identifiers are not minified: function and class names stay readable in stack traces.
    legalComments: 'none',
    external: ['classic-level'],
    plugins: [sourceImportMetaUrl, httpWithoutUndici],
    // CommonJS dependencies call require() for Node's built-ins; an ES module has none of its own.
    banner: {
      js: [
        "import { createRequire as __trellisCreateRequire } from 'node:module';",
        "import __trellisPath from 'node:path';",
        "import { fileURLToPath as __trellisFileURLToPath } from 'node:url';",
        'const require = __trellisCreateRequire(import.meta.url);',
      ].join(''),
    },
    logLevel: 'warning',
  });
  fs.mkdirSync(distDir, { recursive: true });
  const outputs = result.outputFiles;
  for (const f of outputs) {
    // One non-ASCII character makes V8 keep that whole file's source as a two-byte string (3.4 MB
    // more for the main chunk). esbuild escapes them in strings but not in regular expressions.
    if (f.path.endsWith('.mjs') && /[^\x00-\x7f]/.test(f.text)) {
      const at = f.text.search(/[^\x00-\x7f]/);
      process.stderr.write(`trellis build: warning: ${path.basename(f.path)} has a non-ASCII character near ${JSON.stringify(f.text.slice(Math.max(0, at - 40), at + 10))}; write it as a \\u escape in the source\n`);
    }
  }
  // Each file lands whole (written aside, then renamed), and the entry last: a process starting
  // meanwhile loads either the old build or the new one, and every chunk the new entry names exists.
  const entryFirst = [...outputs].sort((a, b) => Number(a.path === outFile) - Number(b.path === outFile));
  for (const f of entryFirst) {
    const tmp = `${f.path}.${process.pid}.tmp`;
    if (f.path.endsWith('.map')) {
      const map = JSON.parse(f.text) as RawSourceMap;
      fs.writeFileSync(tmp, JSON.stringify(trimSourceMap(map, (source) => !source.includes('node_modules/'))));
    } else {
      fs.writeFileSync(tmp, f.contents);
    }
    // Stamped with the time the sources were read, so an edit made during the build counts as newer.
    fs.utimesSync(tmp, new Date(started), new Date(started));
    fs.renameSync(tmp, f.path);
  }
  // Chunks of earlier builds stay an hour, for processes that started from them and load a chunk
  // later (an agent loads its role's chunk while it starts).
  const current = new Set(outputs.map((f) => path.basename(f.path)));
  for (const name of fs.readdirSync(distDir)) {
    const file = path.join(distDir, name);
    if (current.has(name)) continue;
    try {
      if (started - fs.statSync(file).mtimeMs > OLD_OUTPUT_MS) fs.rmSync(file);
    } catch { /* removed meanwhile by another build */ }
  }
  const bytes = outputs.filter((f) => f.path.endsWith('.mjs')).reduce((n, f) => n + f.contents.length, 0);
  return { outFile, bytes, files: outputs.length, ms: Date.now() - started };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  // The web UI's static files (buildUi.ts), built on their own: they never make the bundle stale.
  if (!process.argv.includes('--if-stale') || isUiStale()) {
    try {
      const u = await buildUi();
      process.stderr.write(`trellis: built the web UI in ${path.relative(process.cwd(), UI_OUT_DIR)} (${u.files} files, ${(u.bytes / 1024).toFixed(1)} KB, ${(u.gzipBytes / 1024).toFixed(1)} KB gzipped)\n`);
    } catch (err) {
      process.stderr.write(`trellis: building the web UI failed: ${(err as Error).message}\n`);
      if (!process.argv.includes('--prepare')) process.exit(1);
    }
  }
  if (process.argv.includes('--if-stale') && !isStale()) process.exit(0);
  let r: Awaited<ReturnType<typeof build>>;
  try {
    r = await build();
  } catch (err) {
    // Under `npm install` (--prepare) a build failure (say, a source mid-edit) must not fail the
    // install: bin/trellis then runs the sources, and `npm test`'s own build reports the failure.
    process.stderr.write(`trellis: building the bundle failed: ${(err as Error).message}\n`);
    process.exit(process.argv.includes('--prepare') ? 0 : 1);
  }
  process.stderr.write(`trellis: built ${path.relative(process.cwd(), r.outFile)} and its chunks (${(r.bytes / 1e6).toFixed(1)} MB of JavaScript, ${r.files} files) in ${r.ms} ms\n`);
}
