// The web UI's static files, served under ui_config.content_path (default /ui/) as Consul's
// agent/uiserver does:
//   - the files come from packages/agent/dist/ui (built by `npm run build`, see buildUi.ts), or from
//     ui_config.dir (-ui-dir) when set;
//   - any path under the content path that is not a file answers index.html, so the UI's own URLs
//     (/ui/dc1/services/web, /ui/dc1/kv/a/b/) load the app, which then routes on location.pathname;
//   - index.html carries the agent's settings (content path, datacenter) in a JSON script element;
//   - GET / redirects (301) to the content path, and /robots.txt keeps crawlers out (Consul's
//     handleRobots).
// The files are read once, on first request, and kept with a gzip copy (the whole UI is small).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** Where `npm run build` writes the UI (packages/agent/dist/ui), from this source file's place. */
export const BUILT_UI_DIR = fileURLToPath(new URL('../../dist/ui/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

interface Asset { type: string; body: Buffer; gzip?: Buffer }

export interface UiOptions {
  /** ui_config.dir: serve this directory instead of the built UI. */
  dir: string;
  /** ui_config.content_path, normalized to start and end with "/". */
  contentPath: string;
  datacenter: string;
}

/** Reads every file of `dir` (one level of subdirectories and more) into memory. */
function loadAssets(dir: string, settings: string, base: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const f of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!f.isFile()) continue;
    const full = path.join(f.parentPath, f.name);
    const rel = path.relative(dir, full).split(path.sep).join('/');
    let body = fs.readFileSync(full);
    if (rel === 'index.html') {
      // The content path is validated to [A-Za-z0-9/_-] (config/runtime.ts), safe in an attribute.
      body = Buffer.from(body.toString('utf8').replace('__TRELLIS_UI_SETTINGS__', settings).replaceAll('__TRELLIS_UI_BASE__', base));
    }
    const type = TYPES[path.extname(f.name)] ?? 'application/octet-stream';
    const asset: Asset = { type, body };
    if (/^(text|application\/json|image\/svg)/.test(type) && body.length > 512) asset.gzip = gzipSync(body);
    assets.set(rel, asset);
  }
  return assets;
}

/** Adds the UI's routes to `app`. */
export function registerUi(app: FastifyInstance, opts: UiOptions): void {
  const base = opts.contentPath;
  // "<" is escaped so a datacenter name can never close the script element.
  const settings = JSON.stringify({ contentPath: base, datacenter: opts.datacenter }).replaceAll('<', '\\u003c');
  let assets: Map<string, Asset> | undefined;
  let loadError = '';

  const serve = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (!assets) {
      const dir = opts.dir !== '' ? opts.dir : BUILT_UI_DIR;
      try {
        assets = loadAssets(dir, settings, base);
        if (!assets.has('index.html')) throw new Error(`${dir} has no index.html`);
      } catch (err) {
        assets = undefined;
        loadError = `UI files not found (${(err as Error).message}): run \`npm run build\`, or set ui_config.dir to a directory with the UI`;
      }
    }
    if (!assets) {
      await reply.code(404).type('text/plain; charset=utf-8').send(loadError);
      return;
    }
    const urlPath = (req.raw.url ?? '/').split('?')[0]!;
    let rel = '';
    try {
      rel = decodeURIComponent(urlPath.slice(base.length));
    } catch { /* not a file name: the app's own route */ }
    // A file, else the app (index.html) for the UI's own routes.
    const name = assets.has(rel) ? rel : 'index.html';
    const asset = assets.get(name)!;
    const gzip = asset.gzip && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    reply.header('Content-Type', asset.type);
    // index.html may change with every build and carries settings; the rest is named per build too
    // (see buildUi.ts), but no-cache keeps an upgraded agent from serving a stale mix.
    reply.header('Cache-Control', 'no-cache');
    reply.header('Vary', 'Accept-Encoding');
    if (gzip) reply.header('Content-Encoding', 'gzip');
    await reply.code(200).send(gzip ? asset.gzip : asset.body);
  };

  app.route({ method: ['GET', 'HEAD'], url: `${base}*`, handler: serve });
  // "/ui" without its slash: the content path proper, as Go's ServeMux redirects.
  if (base.length > 1) {
    app.route({ method: ['GET', 'HEAD'], url: base.slice(0, -1), handler: async (_req, reply) => { await reply.redirect(base, 301); } });
  }
  app.route({ method: ['GET', 'HEAD'], url: '/robots.txt', handler: async (_req, reply) => {
    await reply.type('text/plain; charset=utf-8').send('User-agent: *\nDisallow: /\n');
  } });
}
