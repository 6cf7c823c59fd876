// /v1/internal/ui/services and /v1/internal/ui/nodes (the web UI's summaries), and the UI's static
// file serving (http/ui.ts) from ui_config.dir.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defaults } from '../../src/config/runtime.ts';
import { harness, NODE, type Harness } from './helpers.ts';

interface Summary { Name: string; Kind: string; Tags: string[]; Nodes: string[]; InstanceCount: number; ChecksPassing: number; ChecksWarning: number; ChecksCritical: number; ConnectedWithProxy: boolean }

async function register(h: Harness, body: unknown): Promise<void> {
  const res = await h.req('PUT', '/v1/catalog/register', body);
  assert.equal(res.statusCode, 200, res.body);
}

async function mesh(h: Harness): Promise<void> {
  await register(h, {
    Node: 'n2', Address: '10.0.0.2',
    Service: { Service: 'web', ID: 'web-2', Port: 8080, Tags: ['v1', 'canary'] },
    Checks: [
      { CheckID: 'web-2-http', Name: 'http', Status: 'passing', ServiceID: 'web-2' },
      { CheckID: 'n2-disk', Name: 'disk', Status: 'warning' },
    ],
  });
  await register(h, {
    Node: 'n3', Address: '10.0.0.3',
    Service: { Service: 'web', ID: 'web-3', Port: 8080, Tags: ['v2'] },
    Check: { CheckID: 'web-3-http', Name: 'http', Status: 'critical', ServiceID: 'web-3', Output: 'connection refused' },
  });
  await register(h, {
    Node: 'n3', Address: '10.0.0.3', SkipNodeUpdate: true,
    Service: { Kind: 'connect-proxy', Service: 'web-sidecar-proxy', ID: 'web-3-sidecar-proxy', Port: 21000,
      Proxy: { DestinationServiceName: 'web', DestinationServiceID: 'web-3', Upstreams: [{ DestinationName: 'payments', LocalBindPort: 9191 }] } },
  });
}

describe('/v1/internal/ui', () => {
  test('services: one row per name with kind, tags, nodes, instance count and check counts (node checks included, as Consul)', async () => {
    const h = harness();
    await mesh(h);
    const res = await h.json<Summary[]>('GET', '/v1/internal/ui/services');
    assert.equal(res.status, 200);
    assert.ok(Number(res.headers['x-consul-index']) > 0);
    const byName = new Map(res.body.map((s) => [s.Name, s]));
    const web = byName.get('web')!;
    assert.deepEqual(
      { kind: web.Kind, tags: web.Tags, nodes: web.Nodes, n: web.InstanceCount, p: web.ChecksPassing, w: web.ChecksWarning, c: web.ChecksCritical, proxied: web.ConnectedWithProxy },
      { kind: '', tags: ['canary', 'v1', 'v2'], nodes: ['n2', 'n3'], n: 2, p: 1, w: 1, c: 1, proxied: true },
    );
    const proxy = byName.get('web-sidecar-proxy')!;
    assert.equal(proxy.Kind, 'connect-proxy');
    assert.equal(proxy.InstanceCount, 1);
    assert.equal(proxy.ConnectedWithProxy, false);
    assert.deepEqual(res.body.map((s) => s.Name), [...res.body.map((s) => s.Name)].sort(), 'sorted by name');
  });

  test('nodes: every node with its services and checks (outputs included)', async () => {
    const h = harness();
    await mesh(h);
    const res = await h.json<{ Node: string; Address: string; Services: { ID: string; Proxy?: { Upstreams?: { DestinationName: string }[] } }[]; Checks: { CheckID: string; Output: string }[] }[]>('GET', '/v1/internal/ui/nodes');
    assert.equal(res.status, 200);
    const n3 = res.body.find((n) => n.Node === 'n3')!;
    assert.equal(n3.Address, '10.0.0.3');
    assert.deepEqual(n3.Services.map((s) => s.ID).sort(), ['web-3', 'web-3-sidecar-proxy']);
    assert.equal(n3.Services.find((s) => s.ID === 'web-3-sidecar-proxy')!.Proxy!.Upstreams![0]!.DestinationName, 'payments');
    assert.equal(n3.Checks.find((c) => c.CheckID === 'web-3-http')!.Output, 'connection refused');
    assert.ok(res.body.some((n) => n.Node === NODE), 'the agent\'s own node too');
  });

  test('services is a blocking query that a check status change wakes', async () => {
    const h = harness();
    await mesh(h);
    const first = await h.json<Summary[]>('GET', '/v1/internal/ui/services');
    const index = String(first.headers['x-consul-index']);
    const waiting = h.json<Summary[]>('GET', `/v1/internal/ui/services?index=${index}&wait=30s`);
    let settled = false;
    void waiting.then(() => { settled = true; });
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false, 'nothing changed yet: the query waits');
    await register(h, { Node: 'n3', Address: '10.0.0.3', SkipNodeUpdate: true, Check: { CheckID: 'web-3-http', Name: 'http', Status: 'passing', ServiceID: 'web-3' } });
    const woke = await waiting;
    assert.ok(Number(woke.headers['x-consul-index']) > Number(index));
    assert.equal(woke.body.find((s) => s.Name === 'web')!.ChecksCritical, 0);
  });
});

describe('UI files (ui_config)', () => {
  function uiDir(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-ui-'));
    fs.writeFileSync(path.join(dir, 'index.html'), '<html><link href="__TRELLIS_UI_BASE__app.css"><script type="application/json">__TRELLIS_UI_SETTINGS__</script></html>');
    fs.writeFileSync(path.join(dir, 'app.css'), 'body { color: red }');
    return dir;
  }

  test('ui_config.dir and content_path: files, the app for every other path under it, settings injected, / redirected', async () => {
    const dir = uiDir();
    const h = harness({ config: { ui: { ...defaults().ui, enabled: false, dir, contentPath: '/console/' } } });
    try {
      const root = await h.req('GET', '/');
      assert.equal(root.statusCode, 301);
      assert.equal(root.headers.location, '/console/');
      const css = await h.req('GET', '/console/app.css');
      assert.equal(css.statusCode, 200);
      assert.match(String(css.headers['content-type']), /^text\/css/);
      assert.equal(css.body, 'body { color: red }');
      for (const p of ['/console/', '/console/dc1/services/web', '/console/dc1/kv/a/b/']) {
        const page = await h.req('GET', p);
        assert.equal(page.statusCode, 200, p);
        assert.match(String(page.headers['content-type']), /^text\/html/);
        assert.match(page.body, /href="\/console\/app\.css"/);
        assert.match(page.body, /\{"contentPath":"\/console\/","datacenter":"dc1"\}/);
      }
      assert.equal((await h.req('GET', '/console')).headers.location, '/console/');
      assert.equal((await h.req('GET', '/ui/')).statusCode, 404);
      assert.match((await h.req('GET', '/robots.txt')).body, /Disallow: \//);
    } finally {
      await h.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('with the UI off, / names the agent and nothing is served under /ui/', async () => {
    const h = harness();
    try {
      const root = await h.req('GET', '/');
      assert.equal(root.statusCode, 200);
      assert.match(root.body, /UI disabled/);
      assert.equal((await h.req('GET', '/ui/')).statusCode, 404);
    } finally {
      await h.close();
    }
  });

  test('a UI directory without index.html answers 404 saying what is missing', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-ui-empty-'));
    const h2 = harness({ config: { ui: { ...defaults().ui, dir, contentPath: '/ui/' } } });
    try {
      const r = await h2.req('GET', '/ui/');
      assert.equal(r.statusCode, 404);
      assert.match(r.body, /has no index\.html/);
      assert.match(r.body, /npm run build/);
    } finally {
      await h2.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
