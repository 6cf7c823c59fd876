// HTTP checks against a real node:http(s) server on 127.0.0.1.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { startCheckRunner, HTTP_ACCEPT, HTTP_USER_AGENT } from '../../src/checks/index.ts';
import { closedPort, context, MS, nthReport, selfSignedCert, sleep, waitFor } from './helpers.ts';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

const seen: Seen[] = [];
/** Requests the /hang route is holding open, and whether each was closed by the client. */
const hanging: { closed: boolean }[] = [];

function handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString()));
  req.on('end', () => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
    const path = req.url!;
    if (path === '/ok') res.end('all good');
    else if (path === '/busy') res.writeHead(429).end('slow down');
    else if (path === '/down') res.writeHead(503).end('maintenance');
    else if (path === '/big') res.end('x'.repeat(5000));
    else if (path === '/old') res.writeHead(302, { Location: '/ok' }).end();
    else if (path === '/loop') res.writeHead(301, { Location: '/loop' }).end();
    else if (path === '/hang') {
      const h = { closed: false };
      hanging.push(h);
      res.on('close', () => (h.closed = true));
    } else res.writeHead(404).end('no such page');
  });
}

let server: http.Server;
let base: string;

before(async () => {
  server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

/** Runs the check until its first report, stops it, and returns the report. */
async function once(ct: Parameters<typeof startCheckRunner>[0], overrides = {}) {
  const ctx = context(overrides);
  const runner = startCheckRunner({ IntervalNs: 10_000 * MS, ...ct }, ctx);
  try {
    return { report: await nthReport(ctx, 0), ctx };
  } finally {
    runner.stop();
  }
}

describe('HTTP checks', () => {
  test('2xx is passing, with Consul output and default headers; a fresh connection each run', async () => {
    const { report } = await once({ HTTP: `${base}/ok` });
    assert.deepEqual([report.status, report.output], ['passing', `HTTP GET ${base}/ok: 200 OK Output: all good`]);
    const req = seen.findLast((s) => s.url === '/ok')!;
    assert.equal(req.method, 'GET');
    assert.equal(req.headers['user-agent'], HTTP_USER_AGENT);
    assert.equal(req.headers.accept, HTTP_ACCEPT);
    assert.equal(req.headers.connection, 'close');
  });

  test('429 is warning, other statuses critical', async () => {
    const busy = await once({ HTTP: `${base}/busy` });
    assert.deepEqual([busy.report.status, busy.report.output], ['warning', `HTTP GET ${base}/busy: 429 Too Many Requests Output: slow down`]);
    const down = await once({ HTTP: `${base}/down` });
    assert.deepEqual([down.report.status, down.report.output], ['critical', `HTTP GET ${base}/down: 503 Service Unavailable Output: maintenance`]);
    const missing = await once({ HTTP: `${base}/nope` });
    assert.equal(missing.report.status, 'critical');
  });

  test('Method, Header (several values, overriding User-Agent) and Body are sent', async () => {
    const { report } = await once({
      HTTP: `${base}/ok`, Method: 'POST', Body: '{"ping":1}',
      Header: { 'X-Token': ['a', 'b'], 'User-Agent': ['probe/1'], Host: ['svc.internal'] },
    });
    assert.equal(report.output, `HTTP POST ${base}/ok: 200 OK Output: all good`);
    const req = seen.findLast((s) => s.method === 'POST')!;
    assert.equal(req.body, '{"ping":1}');
    assert.equal(req.headers['x-token'], 'a, b');
    assert.equal(req.headers['user-agent'], 'probe/1');
    assert.equal(req.headers.accept, HTTP_ACCEPT);
    assert.equal(req.headers.host, 'svc.internal');
  });

  test('redirects are followed (the output names the URL checked); more than 10 fail', async () => {
    const { report } = await once({ HTTP: `${base}/old` });
    assert.deepEqual([report.status, report.output], ['passing', `HTTP GET ${base}/old: 200 OK Output: all good`]);
    const loop = await once({ HTTP: `${base}/loop` });
    assert.deepEqual([loop.report.status, loop.report.output], ['critical', `Get "${base}/loop": stopped after 10 redirects`]);
  });

  test('a refused connection is critical with the error', async () => {
    const url = `http://127.0.0.1:${await closedPort()}/`;
    const { report } = await once({ HTTP: url });
    assert.equal(report.status, 'critical');
    assert.match(report.output, new RegExp(`^Get "${url}": connect ECONNREFUSED`));
  });

  test('a bad URL or scheme is critical, not a crash', async () => {
    const bad = await once({ HTTP: 'not a url' });
    assert.deepEqual([bad.report.status, bad.report.output], ['critical', 'parse "not a url": invalid URL']);
    const ftp = await once({ HTTP: 'ftp://127.0.0.1/x' });
    assert.deepEqual([ftp.report.status, ftp.report.output], ['critical', 'Get "ftp://127.0.0.1/x": unsupported protocol scheme "ftp"']);
  });

  test('no answer within Timeout is critical; the request is closed', async () => {
    const before = hanging.length;
    const { report } = await once({ HTTP: `${base}/hang`, TimeoutNs: 150 * MS });
    assert.equal(report.status, 'critical');
    assert.equal(report.output, `Get "${base}/hang": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`);
    await waitFor('the server to see the request closed', () => hanging[before]?.closed);
  });

  test('the body is cut to OutputMaxSize the way TTL output is', async () => {
    const { report } = await once({ HTTP: `${base}/big`, OutputMaxSize: 100 });
    assert.equal(report.output, `HTTP GET ${base}/big: 200 OK Output: ${'x'.repeat(100)} ... (captured 100 of 5000 bytes)`);
    const dflt = await once({ HTTP: `${base}/big` });
    assert.equal(dflt.report.output, `HTTP GET ${base}/big: 200 OK Output: ${'x'.repeat(4096)} ... (captured 4096 of 5000 bytes)`);
  });

  test('stop() aborts the request in flight, reports nothing and leaves no timer', async () => {
    const before = hanging.length;
    const ctx = context();
    const runner = startCheckRunner({ HTTP: `${base}/hang`, IntervalNs: 50 * MS }, ctx);
    await waitFor('the request to arrive', () => hanging.length > before);
    runner.stop();
    await waitFor('the server to see the request closed', () => hanging[before]!.closed);
    // Proves a negative (no report after stop): ten check intervals pass, and nothing comes.
    await sleep(500);
    assert.deepEqual(ctx.reports, []);
    assert.equal(ctx.timers.pending.size, 0);
  });

  test('runs again every Interval', async () => {
    const ctx = context();
    const runner = startCheckRunner({ HTTP: `${base}/ok`, IntervalNs: 40 * MS }, ctx);
    await nthReport(ctx, 2);
    runner.stop();
    const gaps = ctx.reports.slice(1).map((r, i) => r.at - ctx.reports[i]!.at);
    assert.ok(gaps.every((g) => g >= 35), `gaps ${gaps}`);
    assert.equal(ctx.timers.pending.size, 0);
  });
});

describe('HTTPS checks', () => {
  const pem = selfSignedCert();
  let tlsServer: https.Server;
  let tlsBase: string;
  const sni: (string | false)[] = [];

  before(async () => {
    if (!pem) return;
    tlsServer = https.createServer({ key: pem.key, cert: pem.cert }, (_req, res) => res.end('secure'));
    tlsServer.on('secureConnection', (s: TLSSocket) => sni.push((s as TLSSocket & { servername: string | false }).servername));
    await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
    tlsBase = `https://127.0.0.1:${(tlsServer.address() as AddressInfo).port}`;
  });

  after(() => {
    if (!pem) return;
    tlsServer.closeAllConnections();
    tlsServer.close();
  });

  test('an untrusted certificate is critical unless TLSSkipVerify; TLSServerName is the SNI', { skip: !pem && 'openssl is not available' }, async () => {
    const strict = await once({ HTTP: `${tlsBase}/` });
    assert.equal(strict.report.status, 'critical');
    assert.match(strict.report.output, /self-signed certificate/);

    const skip = await once({ HTTP: `${tlsBase}/`, TLSSkipVerify: true, TLSServerName: 'web.service.consul' });
    assert.deepEqual([skip.report.status, skip.report.output], ['passing', `HTTP GET ${tlsBase}/: 200 OK Output: secure`]);
    assert.equal(sni.at(-1), 'web.service.consul');
  });
});
