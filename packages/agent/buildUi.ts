// Builds the web UI (packages/agent/ui: Preact + htm, dagre for the graph pictures) into static
// files under packages/agent/dist/ui, which the agent serves under ui_config.content_path
// (src/http/ui.ts). Called by build.ts, so `npm run build`, `npm install` and `npm test` build it;
// nothing is fetched at run time.
//
// The whole UI must stay small (issue 18: <= 200 KB gzipped): the build prints its gzipped size and
// fails when it is over.
import * as esbuild from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

const pkgDir = import.meta.dirname;
export const UI_SRC_DIR = path.join(pkgDir, 'ui');
export const UI_OUT_DIR = path.join(pkgDir, 'dist', 'ui');
const STAMP = path.join(UI_OUT_DIR, 'app.js');
export const UI_MAX_GZIP_BYTES = 200 * 1024;

function newestUiSource(): number {
  let newest = 0;
  for (const f of fs.readdirSync(UI_SRC_DIR, { recursive: true, withFileTypes: true })) {
    if (f.isFile()) newest = Math.max(newest, fs.statSync(path.join(f.parentPath, f.name)).mtimeMs);
  }
  return newest;
}

export function isUiStale(): boolean {
  return !fs.existsSync(STAMP) || newestUiSource() > fs.statSync(STAMP).mtimeMs;
}

export async function buildUi(): Promise<{ files: number; bytes: number; gzipBytes: number }> {
  const started = Date.now();
  const result = await esbuild.build({
    entryPoints: { app: path.join(UI_SRC_DIR, 'main.ts') },
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: ['chrome110', 'firefox110', 'safari16'],
    minify: true,
    write: false,
    outdir: UI_OUT_DIR,
    legalComments: 'none',
    logLevel: 'warning',
  });
  const files = [
    ...result.outputFiles.map((f) => ({ name: path.basename(f.path), contents: Buffer.from(f.contents) })),
    ...['index.html', 'app.css', 'favicon.svg'].map((name) => ({ name, contents: fs.readFileSync(path.join(UI_SRC_DIR, name)) })),
  ];
  const bytes = files.reduce((n, f) => n + f.contents.length, 0);
  const gzipBytes = files.reduce((n, f) => n + gzipSync(f.contents, { level: 9 }).length, 0);
  if (gzipBytes > UI_MAX_GZIP_BYTES) {
    throw new Error(`the web UI is ${(gzipBytes / 1024).toFixed(1)} KB gzipped, over its ${UI_MAX_GZIP_BYTES / 1024} KB budget`);
  }
  fs.mkdirSync(UI_OUT_DIR, { recursive: true });
  // app.js last: it is the staleness stamp, so a build that stops half-way is redone.
  files.sort((a, b) => Number(a.name === 'app.js') - Number(b.name === 'app.js'));
  for (const f of files) {
    const out = path.join(UI_OUT_DIR, f.name);
    const tmp = `${out}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, f.contents);
    // Stamped with the time the sources were read, so an edit made during the build counts as newer.
    fs.utimesSync(tmp, new Date(started), new Date(started));
    fs.renameSync(tmp, out);
  }
  return { files: files.length, bytes, gzipBytes };
}
