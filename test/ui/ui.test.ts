// The web UI in a real browser (headless Debian Chromium through puppeteer-core) against a real
// `trellis agent -dev` (which turns the UI on, as Consul's -dev does). Each test drives the UI as a
// person would and checks the result through the HTTP API, or changes state through the API and
// waits for the open page to show it (blocking queries, no reload). Screenshots of every page go to
// test-results/ui/ (gitignored) for people to look at.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Browser, Page } from 'puppeteer-core';
import { launchBrowser, screenshotDir } from '../support/browser.ts';
import { AgentProcess, printLogsIfFailed, waitFor } from '../support/index.ts';

// The page functions below run in the browser; the repo's type check has no DOM library, so the few
// browser names they use are declared here (module scope: nothing leaks to other files).
interface Field { value: string; innerText: string; dispatchEvent(e: unknown): boolean; hasAttribute(n: string): boolean; getAttribute(n: string): string | null }
declare const document: { hidden: boolean; activeElement: Field | null; querySelector(s: string): Field | null; dispatchEvent(e: unknown): boolean };
declare const window: { marker?: number };
declare const location: { pathname: string };
declare const Event: new (type: string, init?: { bubbles?: boolean }) => unknown;
declare const sessionStorage: { getItem(k: string): string | null };

let agent: AgentProcess;
let browser: Browser;
let page: Page;

const shot = async (name: string, p: Page = page): Promise<void> => {
  await p.screenshot({ path: path.join(screenshotDir, `${name}.png`), fullPage: true });
};

/** Waits for `selector` and returns its text. */
async function textOf(selector: string, timeout = 15_000): Promise<string> {
  const el = await page.waitForSelector(selector, { timeout });
  return (await el!.evaluate((e) => (e as unknown as Field).innerText)).trim();
}

/** Types into a field, replacing what it held. */
async function fill(selector: string, value: string): Promise<void> {
  await page.waitForSelector(selector);
  await page.$eval(selector, (e) => { (e as unknown as Field).value = ''; });
  await page.focus(selector);
  await page.keyboard.type(value);
}

/** Sets a big field (a textarea) at once, as a paste would, firing the input event. */
async function paste(selector: string, value: string): Promise<void> {
  await page.waitForSelector(selector);
  await page.$eval(selector, (e, v) => {
    (e as unknown as Field).value = v;
    e.dispatchEvent(new Event('input', { bubbles: true }));
  }, value);
}

const ui = (p: string): string => `${agent.url}/ui/dc1/${p}`;

before(async () => {
  fs.mkdirSync(screenshotDir, { recursive: true });
  agent = await AgentProcess.start({ name: 'ui' });
  browser = await launchBrowser();
  page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
});

after(async () => {
  await browser?.close();
  await agent?.dispose();
});

afterEach((t) => printLogsIfFailed(t, agent));

describe('serving', () => {
  test('GET / redirects to /ui/ in -dev; the UI URLs answer the app with the agent settings; assets are gzipped', async () => {
    const root = await agent.request('GET', '/');
    assert.equal(root.status, 301);
    assert.equal(root.headers.location, '/ui/');
    for (const p of ['/ui/', '/ui/dc1/services', '/ui/dc1/kv/a/b/', '/ui/dc1/services/web/routing']) {
      const r = await agent.request('GET', p);
      assert.equal(r.status, 200, p);
      assert.match(String(r.headers['content-type']), /^text\/html/);
      assert.match(r.text, /"contentPath":"\/ui\/","datacenter":"dc1"/);
      assert.match(r.text, /src="\/ui\/app\.js"/);
    }
    const js = await agent.request('GET', '/ui/app.js', { headers: { 'Accept-Encoding': 'gzip' } });
    assert.equal(js.status, 200);
    assert.equal(js.headers['content-encoding'], 'gzip');
    assert.match(String(js.headers['content-type']), /javascript/);
    assert.equal((await agent.request('GET', '/v1/nope')).status, 404, 'unknown API paths are still 404');
  });
});

describe('services', () => {
  test('the services page lists a registered service and turns it critical when its TTL check fails, without a reload', async () => {
    let r = await agent.request('PUT', '/v1/agent/service/register', { body: { Name: 'web', Port: 8080, Tags: ['frontend'], Meta: { team: 'a' }, Check: { CheckID: 'web-ttl', TTL: '10m' } } });
    assert.equal(r.status, 200, r.text);
    r = await agent.request('PUT', '/v1/agent/check/pass/web-ttl?note=all%20good');
    assert.equal(r.status, 200, r.text);
    await page.goto(ui('services'));
    await page.waitForSelector('tr[data-service="web"][data-health="passing"]', { timeout: 15_000 });
    // A marker that a reload would lose.
    await page.evaluate(() => { window.marker = 1; });
    r = await agent.request('PUT', '/v1/agent/check/fail/web-ttl?note=backend%20down');
    assert.equal(r.status, 200, r.text);
    await page.waitForSelector('tr[data-service="web"][data-health="critical"]', { timeout: 10_000 });
    assert.equal(await page.evaluate(() => window.marker), 1, 'the page was not reloaded');
    assert.match(await textOf('tr[data-service="web"] .health-summary'), /1 critical/);
    await shot('services');

    // Keyboard: "/" focuses the filter; typing filters the list.
    await page.keyboard.press('/');
    assert.equal(await page.evaluate(() => document.activeElement?.hasAttribute('data-filter')), true);
    await page.keyboard.type('frontend');
    await waitFor('the filter to leave only web', async () => {
      const names = await page.$$eval('tr[data-service]', (rows) => rows.map((x) => x.getAttribute('data-service')));
      return names.length === 1 && names[0] === 'web';
    });

    // The detail page: the instance, its check with the output, tags.
    await page.goto(ui('services/web'));
    const check = await textOf('[data-check="web-ttl"]');
    assert.match(check, /critical/);
    assert.match(check, /backend down/);
    await shot('service-detail');

    // Phone width.
    await page.setViewport({ width: 390, height: 844 });
    await page.goto(ui('services'));
    await page.waitForSelector('tr[data-service="web"]');
    await shot('services-phone');
    await page.setViewport({ width: 1280, height: 800 });
  });

  test('a hidden tab aborts its blocking queries and resumes them when shown', async () => {
    const isServices = (url: string): boolean => url.includes('/v1/internal/ui/services');
    // Requests in flight, and those aborted, as the browser reports them (an earlier page's requests
    // end when it is left, so they leave `pending` too).
    const pending = new Set<unknown>();
    const aborted: string[] = [];
    page.on('request', (req) => { if (isServices(req.url())) pending.add(req); });
    page.on('requestfinished', (req) => pending.delete(req));
    page.on('requestfailed', (req) => { pending.delete(req); if (isServices(req.url())) aborted.push(`${req.url()} ${req.failure()?.errorText}`); });
    await page.goto(ui('services'));
    await page.waitForSelector('tr[data-service="web"]');
    await waitFor('a blocking query parked at the agent', () => [...pending].some((r) => (r as { url(): string }).url().includes('index=')), 10_000);
    aborted.length = 0;
    const setHidden = (hidden: boolean): Promise<void> => page.evaluate((h) => {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => h });
      document.dispatchEvent(new Event('visibilitychange'));
    }, hidden);
    await setHidden(true);
    await waitFor('the parked request to be aborted', () => aborted.some((a) => a.includes('index=') && a.includes('ABORTED')) && pending.size === 0, 10_000);
    const resumed = page.waitForRequest((req) => isServices(req.url()), { timeout: 10_000 });
    await setHidden(false);
    await resumed;
    page.removeAllListeners('request');
    page.removeAllListeners('requestfinished');
    page.removeAllListeners('requestfailed');
  });
});

describe('nodes and topology', () => {
  test('the nodes page marks the leader; the topology draws services and upstream edges', async () => {
    await page.goto(ui('nodes'));
    const self = (await agent.getJson<{ Config: { NodeName: string } }>('/v1/agent/self')).Config.NodeName;
    await page.waitForSelector(`tr[data-node="${self}"] .leader`, { timeout: 15_000 });
    await shot('nodes');
    const r = await agent.request('PUT', '/v1/agent/service/register', { body: { Name: 'frontend', Port: 7070, Connect: { SidecarService: { Proxy: { Upstreams: [{ DestinationName: 'web', LocalBindPort: 9191 }] } } } } });
    assert.equal(r.status, 200, r.text);
    await page.goto(ui('topology'));
    await page.waitForSelector('[data-testid="topology"] .edge[data-from="frontend"][data-to="web"]', { timeout: 15_000 });
    await shot('topology');
  });
});

describe('key/value', () => {
  test('a key created and edited in the UI is readable through the API', async () => {
    await page.goto(ui('kv/create'));
    await fill('input[name="key"]', 'ui/greeting');
    await paste('textarea[name="value"]', 'hello');
    await page.click('form.kv-form button[type="submit"]');
    await waitFor('the key in the API', async () => (await agent.request('GET', '/v1/kv/ui/greeting?raw')).text === 'hello', 10_000);
    await page.waitForFunction(() => location.pathname.endsWith('/kv/ui/greeting'), { timeout: 10_000 });
    await page.waitForSelector('form.kv-form textarea[name="value"]');
    await paste('textarea[name="value"]', 'hello again');
    await page.click('form.kv-form button[type="submit"]');
    await waitFor('the edit in the API', async () => (await agent.request('GET', '/v1/kv/ui/greeting?raw')).text === 'hello again', 10_000);
    await shot('kv-key');
    await page.goto(ui('kv/ui/'));
    await page.waitForSelector('[data-testid="kv-list"]');
    await shot('kv-folder');
  });

  test('an edit over a newer version is refused with a clear message and changes nothing', async () => {
    await page.goto(ui('kv/ui/greeting'));
    await page.waitForSelector('form.kv-form textarea[name="value"]');
    // Someone else writes meanwhile.
    assert.equal((await agent.request('PUT', '/v1/kv/ui/greeting', { body: 'theirs' })).text, 'true');
    await page.waitForSelector('form.kv-form .warning', { timeout: 10_000 });
    await paste('textarea[name="value"]', 'mine');
    await page.click('form.kv-form button[type="submit"]');
    assert.match(await textOf('form.kv-form .error'), /was changed since you opened it/);
    assert.equal((await agent.request('GET', '/v1/kv/ui/greeting?raw')).text, 'theirs');
    await shot('kv-cas-refused');
  });

  test('an invalid key shows the API\'s error and creates nothing', async () => {
    const before = (await agent.request('GET', '/v1/kv/?keys')).text;
    await page.goto(ui('kv/create'));
    await fill('input[name="key"]', 'bad key!');
    await paste('textarea[name="value"]', 'x');
    await page.click('form.kv-form button[type="submit"]');
    const api = await agent.request('PUT', '/v1/kv/bad%20key!', { body: 'x' });
    assert.equal(api.status, 400);
    const shown = await textOf('form.kv-form .error');
    assert.ok(shown.includes(api.text.trim()), `UI shows ${JSON.stringify(shown)}; the API says ${JSON.stringify(api.text)}`);
    assert.match(shown, /HTTP 400/);
    assert.equal((await agent.request('GET', '/v1/kv/?keys')).text, before);
    await shot('kv-invalid-key');
  });

  test('a key deleted from its folder in the UI is gone from the API', async () => {
    assert.equal((await agent.request('PUT', '/v1/kv/ui/doomed', { body: 'bye' })).text, 'true');
    await page.goto(ui('kv/ui/'));
    await page.waitForSelector('button[aria-label="Delete ui/doomed"]');
    page.once('dialog', (d) => { void d.accept(); });
    await page.click('button[aria-label="Delete ui/doomed"]');
    await waitFor('the key gone from the API', async () => (await agent.request('GET', '/v1/kv/ui/doomed')).status === 404, 10_000);
    await page.waitForFunction(() => document.querySelector('button[aria-label="Delete ui/doomed"]') === null, { timeout: 10_000 });
    assert.equal((await agent.request('GET', '/v1/kv/ui/greeting?raw')).status, 200, 'only that key');
  });
});

describe('intentions', () => {
  test('an intention created in the UI shows in /v1/connect/intentions; "can A reach B?" answers from the check endpoint', async () => {
    await page.goto(ui('intentions'));
    await fill('input[name="source"]', 'frontend');
    await fill('input[name="destination"]', 'billing');
    await page.click('input[name="action"][value="deny"]');
    await fill('input[name="description"]', 'made in the UI');
    await page.click('form[aria-labelledby="h-intform"] button[type="submit"]');
    const found = await waitFor('the intention in the API', async () => {
      const list = await agent.getJson<{ SourceName: string; DestinationName: string; Action: string; Description: string }[]>('/v1/connect/intentions');
      return list.find((i) => i.SourceName === 'frontend' && i.DestinationName === 'billing');
    }, 10_000);
    assert.equal(found.Action, 'deny');
    assert.equal(found.Description, 'made in the UI');
    await page.waitForSelector('tr[data-intention="frontend>billing"]', { timeout: 10_000 });

    await fill('input[name="check-source"]', 'frontend');
    await fill('input[name="check-destination"]', 'billing');
    await page.click('form[aria-labelledby="h-check"] button[type="submit"]');
    const answer = await page.waitForSelector('[data-check-answer]');
    assert.equal(await answer!.evaluate((e) => e.getAttribute('data-check-answer')), 'denied');
    await shot('intentions');
  });

  test('an intention edited and then deleted in the UI is changed and then gone in the API', async () => {
    const get = async () => (await agent.getJson<{ SourceName: string; DestinationName: string; Action: string }[]>('/v1/connect/intentions'))
      .find((i) => i.SourceName === 'frontend' && i.DestinationName === 'billing');
    await page.goto(ui('intentions'));
    await page.waitForSelector('tr[data-intention="frontend>billing"]', { timeout: 15_000 });
    await page.click('tr[data-intention="frontend>billing"] button.link:not(.danger)');
    await page.waitForFunction(() => document.querySelector('input[name="source"]')?.value === 'frontend');
    await page.click('input[name="action"][value="allow"]');
    await page.click('form[aria-labelledby="h-intform"] button[type="submit"]');
    await waitFor('the edit in the API', async () => (await get())?.Action === 'allow', 10_000);
    // Delete asks first (a confirm dialog), then the row and the intention go.
    const accept = (d: { accept(): Promise<void> }): void => { void d.accept(); };
    page.once('dialog', accept);
    await page.click('tr[data-intention="frontend>billing"] button.danger');
    await waitFor('the intention gone from the API', async () => (await get()) === undefined, 10_000);
    await page.waitForFunction(() => document.querySelector('tr[data-intention="frontend>billing"]') === null, { timeout: 10_000 });
  });
});

describe('routing', () => {
  const put = async (entry: unknown): Promise<void> => {
    const r = await agent.request('PUT', '/v1/config', { body: entry });
    assert.equal(r.status, 200, r.text);
  };

  test('the A/B discovery chain of payments (resolver v1/v2 subsets, splitter) renders its nodes and follows a new split live', async () => {
    await put({ Kind: 'service-defaults', Name: 'payments', Protocol: 'http' });
    await put({ Kind: 'service-resolver', Name: 'payments', DefaultSubset: 'v1', Subsets: { v1: { Filter: 'Service.Meta.version == 1' }, v2: { Filter: 'Service.Meta.version == 2' } } });
    await put({ Kind: 'service-splitter', Name: 'payments', Splits: [{ Weight: 90, ServiceSubset: 'v1' }, { Weight: 10, ServiceSubset: 'v2' }] });
    await page.goto(ui('services/payments/routing'));
    const chain = (await agent.getJson<{ Chain: { Nodes: Record<string, unknown>; Targets: Record<string, unknown> } }>('/v1/discovery-chain/payments')).Chain;
    const expected = [...Object.keys(chain.Nodes), ...Object.keys(chain.Targets).map((t) => `target:${t}`)];
    assert.ok(expected.some((id) => id.startsWith('splitter:')), JSON.stringify(expected));
    assert.equal(expected.filter((id) => id.startsWith('resolver:')).length, 2, JSON.stringify(expected));
    for (const id of expected) await page.waitForSelector(`[data-testid="chain"] [data-node="${id}"]`, { timeout: 15_000 });
    const labels = async (): Promise<string[]> => page.$$eval('[data-testid="chain"] .edge text', (ts) => ts.map((t) => t.textContent ?? ''));
    assert.deepEqual((await labels()).filter((l) => l.endsWith('%')).sort(), ['10%', '90%']);
    await shot('routing');

    await put({ Kind: 'service-splitter', Name: 'payments', Splits: [{ Weight: 50, ServiceSubset: 'v1' }, { Weight: 50, ServiceSubset: 'v2' }] });
    await waitFor('the new split on the page', async () => (await labels()).filter((l) => l === '50%').length === 2, 10_000);
  });

  test('a splitter that does not sum to 100, saved from the UI, shows the API\'s error and changes nothing', async () => {
    const before = await agent.getJson<{ ModifyIndex: number; Splits: unknown }>('/v1/config/service-splitter/payments');
    await page.goto(ui('services/payments/routing'));
    await page.waitForFunction(() => document.querySelector('textarea[name="entry"]')?.value.includes('"Splits"'), { timeout: 15_000 });
    const bad = { Kind: 'service-splitter', Name: 'payments', Splits: [{ Weight: 60, ServiceSubset: 'v1' }, { Weight: 30, ServiceSubset: 'v2' }] };
    await paste('textarea[name="entry"]', JSON.stringify(bad, null, 2));
    await page.click('form[aria-labelledby="h-entry"] button[type="submit"]');
    const shown = await textOf('form[aria-labelledby="h-entry"] .error');
    const api = await agent.request('PUT', '/v1/config', { body: bad });
    assert.equal(api.status, 400);
    assert.ok(shown.includes(api.text.trim()), `UI shows ${JSON.stringify(shown)}; the API says ${JSON.stringify(api.text)}`);
    const afterwards = await agent.getJson<{ ModifyIndex: number; Splits: unknown }>('/v1/config/service-splitter/payments');
    assert.equal(afterwards.ModifyIndex, before.ModifyIndex);
    assert.deepEqual(afterwards.Splits, before.Splits);
    await shot('routing-bad-splitter');
  });
});

describe('ui_config', () => {
  test('content_path moves the UI (assets, links and the / redirect); an agent without the UI serves none', async () => {
    const other = await AgentProcess.start({ name: 'ui-path', mode: 'server', args: ['-hcl', 'ui_config {\n  enabled = true\n  content_path = "/console/"\n}'] });
    const off = await AgentProcess.start({ name: 'ui-off', mode: 'server' });
    try {
      const root = await other.request('GET', '/');
      assert.equal(root.status, 301);
      assert.equal(root.headers.location, '/console/');
      assert.equal((await other.request('GET', '/ui/')).status, 404);
      const p = await browser.newPage();
      try {
        await p.goto(`${other.url}/console/`);
        // The app routes under /console/ and opens the services page of the agent's datacenter.
        await p.waitForSelector('tr[data-service="consul"]', { timeout: 15_000 });
        assert.equal(new URL(p.url()).pathname, '/console/dc1/services');
        const hrefs = await p.$$eval('nav.sections a', (as) => as.map((a) => a.getAttribute('href')));
        assert.ok(hrefs.every((h) => h?.startsWith('/console/dc1/')), JSON.stringify(hrefs));
      } finally {
        await p.close();
      }
      const offRoot = await off.request('GET', '/');
      assert.equal(offRoot.status, 200);
      assert.match(offRoot.text, /UI disabled/);
      assert.equal((await off.request('GET', '/ui/')).status, 404);
      assert.equal((await off.request('GET', '/ui/app.js')).status, 404);
    } finally {
      await other.dispose();
      await off.dispose();
    }
  });
});

describe('datacenters and ACL tokens', () => {
  test('with a second datacenter joined over the WAN, the switcher lists both and shows the other one\'s services', { timeout: 120_000 }, async () => {
    const dc2 = await AgentProcess.start({ name: 'ui-dc2', mode: 'server', args: ['-datacenter', 'dc2'] });
    const dc1 = await AgentProcess.start({ name: 'ui-dc1', mode: 'server', args: ['-datacenter', 'dc1', '-ui', '-join-wan', dc2.serfWanAddr] });
    try {
      await waitFor('dc1 to know dc2', async () => (await dc1.getJson<string[]>('/v1/catalog/datacenters')).includes('dc2'), 30_000, 200);
      const r = await dc2.request('PUT', '/v1/catalog/register', { body: { Node: 'far', Address: '10.2.0.1', Service: { Service: 'only-in-dc2', Port: 1 } } });
      assert.equal(r.status, 200, r.text);
      await page.goto(`${dc1.url}/ui/dc1/services`);
      const select = await page.waitForSelector('select[data-dc-switcher]', { timeout: 20_000 });
      assert.deepEqual(await select!.evaluate((s) => [...(s as unknown as { options: { value: string }[] }).options].map((o) => o.value)), ['dc1', 'dc2']);
      assert.equal(await page.$('tr[data-service="only-in-dc2"]'), null);
      await page.select('select[data-dc-switcher]', 'dc2');
      await page.waitForSelector('tr[data-service="only-in-dc2"]', { timeout: 15_000 });
      assert.equal(new URL(page.url()).pathname, '/ui/dc2/services');
      await shot('datacenter-dc2');
    } finally {
      await dc1.dispose();
      await dc2.dispose();
    }
  });

  test('with ACLs on (default deny), the API\'s refusal is shown and nothing written; a token typed in the token box is used', { timeout: 120_000 }, async () => {
    const acl = await AgentProcess.start({ name: 'ui-acl', mode: 'server', args: ['-ui', '-hcl', 'acl {\n  enabled = true\n  default_policy = "deny"\n}\n'] });
    const p = await browser.newPage();
    try {
      const boot = await waitFor('ACL bootstrap', async () => {
        const r = await acl.request('PUT', '/v1/acl/bootstrap');
        return r.status === 200 ? r.json<{ SecretID: string }>() : undefined;
      }, 20_000, 200);
      // Anonymous may not write: the page says what the API said, and nothing is written.
      await p.goto(`${acl.url}/ui/dc1/kv/create`);
      const create = async (): Promise<void> => {
        await p.waitForSelector('input[name="key"]');
        await p.$eval('input[name="key"]', (e) => { (e as unknown as Field).value = ''; });
        await p.type('input[name="key"]', 'secret/a');
        await p.type('textarea[name="value"]', 'x');
        await p.click('form.kv-form button[type="submit"]');
      };
      await create();
      const shown = await (await p.waitForSelector('form.kv-form .error', { timeout: 15_000 }))!.evaluate((e) => (e as unknown as Field).innerText);
      const anon = await acl.request('PUT', '/v1/kv/secret/a', { body: 'x' });
      assert.equal(anon.status, 403);
      assert.ok(shown.includes(anon.text.trim()), `UI shows ${JSON.stringify(shown)}; the API says ${JSON.stringify(anon.text)}`);
      const as = { headers: { 'X-Consul-Token': boot.SecretID } };
      assert.equal((await acl.request('GET', '/v1/kv/secret/a', as)).status, 404);
      // With the token from the token box, the same form writes the key.
      await p.click('button.token-toggle');
      await p.type('form.token input', boot.SecretID);
      await Promise.all([p.waitForNavigation(), p.click('form.token button[type="submit"]')]);
      await create();
      await waitFor('the key written with the token', async () => (await acl.request('GET', '/v1/kv/secret/a?raw', as)).text === 'x', 10_000);
      // Kept for this tab's session only.
      assert.equal(await p.evaluate(() => sessionStorage.getItem('trellis-ui-token')), boot.SecretID);
    } finally {
      await p.close();
      await acl.dispose();
    }
  });
});
