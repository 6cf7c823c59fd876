// Limits a probe of a running server found wrong, over real HTTP against a real `trellis agent -server`:
//   - every KV value up to Consul's 512 KiB (limits.kv_max_value_size) is stored, through /v1/kv/ and
//     through /v1/txn (whose 512 KiB body limit bounds a base64 value to ~384 KiB, as in Consul); values
//     from 393,160 bytes up used to fail with "proposal of … bytes exceeds maxEntryBytes";
//   - limits.http_max_conns_per_client caps concurrent connections per client IP: the one over the
//     limit gets go-connlimit's raw 429 and is closed, other IPs are not affected, and a freed slot
//     can be used again;
//   - a client that trickles its request headers is dropped after limits.https_handshake_timeout;
//   - limits.rpc_max_conns_per_client caps connections per client IP on the server RPC port (closed at once).
// The agent runs with a limit of 5 and a 1 s header timeout; the limit tests connect from 127.0.0.2
// and 127.0.0.3 (Linux routes all of 127/8 to loopback) so the helper's own requests from 127.0.0.1
// are not counted against them.
import { test, before, after, afterEach, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { AgentProcess, printLogsIfFailed, closeIdleSockets, waitFor } from '../support/index.ts';

const KIB = 1024;
const MAX_CONNS = 5;
const MAX_RPC_CONNS = 3;
const HEADER_TIMEOUT_MS = 1000;

let agent: AgentProcess;
let configDir: string;

before(async () => {
  configDir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-limits-'));
  const cfg = path.join(configDir, 'limits.json');
  fs.writeFileSync(cfg, JSON.stringify({ limits: { http_max_conns_per_client: MAX_CONNS, rpc_max_conns_per_client: MAX_RPC_CONNS, https_handshake_timeout: `${HEADER_TIMEOUT_MS}ms` } }));
  agent = await AgentProcess.start({ name: 'limits', mode: 'server', args: ['-config-file', cfg] });
});
after(async () => {
  await agent?.dispose();
  closeIdleSockets();
  fs.rmSync(configDir, { recursive: true, force: true });
});
afterEach((t) => printLogsIfFailed(t, agent));

/** Every byte value, in an order no encoding leaves alone. */
function binary(n: number, seed = 7): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = (i * 151 + seed) & 0xff;
  return out;
}

describe('KV values up to 512 KiB', () => {
  for (const size of [393_160, 400 * KIB, 512 * KIB]) {
    test(`a ${size}-byte value is stored through /v1/kv/ and read back byte for byte`, async () => {
      const value = binary(size);
      const put = await agent.request('PUT', `/v1/kv/big/${size}`, { body: value });
      assert.equal(put.status, 200, put.text.slice(0, 200));
      assert.equal(put.text, 'true');
      const get = await agent.request('GET', `/v1/kv/big/${size}?raw`);
      assert.equal(get.status, 200);
      assert.ok(get.body.equals(value), `read back ${get.body.length} bytes that differ from the ${size} written`);
    });
  }

  test('a 512 KiB value through cas, and one byte more is refused with Consul\'s 413', async () => {
    const first = await agent.request('GET', '/v1/kv/big/524288');
    const index = first.json<Array<{ ModifyIndex: number }>>()[0]!.ModifyIndex;
    const cas = await agent.request('PUT', `/v1/kv/big/524288?cas=${index}`, { body: binary(512 * KIB, 11) });
    assert.equal(cas.text, 'true');
    const over = await agent.request('PUT', '/v1/kv/big/over', { body: binary(512 * KIB + 1) });
    assert.equal(over.status, 413);
    assert.equal(over.text, 'Request body(524289 bytes) too large, max size: 524288 bytes');
  });

  test('the largest value a 512 KiB txn body can carry (base64) is stored; two values in one txn too', async () => {
    // The body is [{"KV":{"Verb":"set","Key":"txn/big","Value":"<base64>"}}]: find the largest value that fits.
    const body = (n: number) => JSON.stringify([{ KV: { Verb: 'set', Key: 'txn/big', Value: binary(n, 3).toString('base64') } }]);
    let n = Math.floor((512 * KIB * 3) / 4);
    while (Buffer.byteLength(body(n)) > 512 * KIB) n -= 3;
    assert.ok(n > 390_000, `a 512 KiB body carries a ${n}-byte value`);
    const r = await agent.request('PUT', '/v1/txn', { body: body(n) });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    const get = await agent.request('GET', '/v1/kv/txn/big?raw');
    assert.ok(get.body.equals(binary(n, 3)), 'the txn value reads back byte for byte');

    const two = [{ KV: { Verb: 'set', Key: 'txn/a', Value: binary(190_000, 1).toString('base64') } }, { KV: { Verb: 'set', Key: 'txn/b', Value: binary(190_000, 2).toString('base64') } }];
    const r2 = await agent.request('PUT', '/v1/txn', { body: two });
    assert.equal(r2.status, 200, r2.text.slice(0, 300));
    assert.ok((await agent.request('GET', '/v1/kv/txn/b?raw')).body.equals(binary(190_000, 2)));

    const over = await agent.request('PUT', '/v1/txn', { body: body(n + 3) });
    assert.equal(over.status, 413);
    assert.match(over.text, /^Request body too large, max size: 524288 bytes/);
  });

  test('the server kept running and still takes small writes', async () => {
    const r = await agent.request('PUT', '/v1/kv/small', { body: 'x' });
    assert.equal(r.text, 'true');
    assert.ok(agent.running);
  });
});

/** A raw TCP connection to the agent's HTTP port from `source`, with what it has received so far. */
interface Conn { socket: net.Socket; received: () => string; closed: Promise<void>; isClosed: () => boolean }

function connect(source: string): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port: agent.ports.http, localAddress: source });
    let data = '';
    let closed = false;
    socket.on('data', (d: Buffer) => { data += d.toString('latin1'); });
    const closedP = new Promise<void>((res) => socket.once('close', () => { closed = true; res(); }));
    socket.on('error', () => { /* a reset by the server shows as close */ });
    socket.once('connect', () => resolve({ socket, received: () => data, closed: closedP, isClosed: () => closed }));
    socket.once('error', reject);
  });
}

/** Sends one keep-alive request on `c` and waits for its complete answer. */
async function exchange(c: Conn, what: string): Promise<string> {
  const before = c.received().length;
  c.socket.write('GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n');
  return waitFor(`${what}: an answer`, () => {
    const got = c.received().slice(before);
    return /\r\n\r\n"[^"]*"$/.test(got) ? got : undefined;
  }, 10_000);
}

describe('HTTP connections per client IP (limits.http_max_conns_per_client)', () => {
  const conns: Conn[] = [];
  after(() => { for (const c of conns) c.socket.destroy(); });

  test(`connection ${MAX_CONNS + 1} from one IP gets a 429 and is closed; another IP is served; a freed slot is usable`, async () => {
    for (let i = 0; i < MAX_CONNS; i++) {
      const c = await connect('127.0.0.2');
      conns.push(c);
      // Each is accepted and served (and so counted), and stays open.
      assert.match(await exchange(c, `connection ${i + 1}`), /^HTTP\/1\.1 200 /);
    }
    const over = await connect('127.0.0.2');
    conns.push(over);
    over.socket.write('PUT /v1/kv/from-refused HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx');
    await waitFor('the server closes the connection over the limit', () => over.isClosed(), 10_000);
    assert.match(over.received(), /^HTTP\/1\.1 429 Too Many Requests\r\n/);
    assert.match(over.received(), /\r\n\r\nYour IP is issuing too many concurrent connections, please rate limit your calls\n$/);
    // The request it sent never ran.
    assert.equal((await agent.request('GET', '/v1/kv/from-refused')).status, 404);

    // The five are still served.
    for (const c of conns.slice(0, MAX_CONNS)) assert.match(await exchange(c, 'a counted connection'), /^HTTP\/1\.1 200 /);

    // Another client IP has its own count.
    const other = await connect('127.0.0.3');
    conns.push(other);
    assert.match(await exchange(other, 'a connection from 127.0.0.3'), /^HTTP\/1\.1 200 /);

    // Closing one of the five frees a slot for the next connection from 127.0.0.2.
    conns[0]!.socket.destroy();
    await waitFor('a new connection from 127.0.0.2 is served once one closed', async () => {
      const c = await connect('127.0.0.2');
      conns.push(c);
      c.socket.write('GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n');
      const answer = await waitFor('an answer or a close', () => (/\r\n\r\n/.test(c.received()) || c.isClosed() ? c.received() : undefined), 5000);
      if (/^HTTP\/1\.1 200 /.test(answer)) return true;
      c.socket.destroy();
      return false;
    }, 10_000, 200);
  });
});

describe('request header timeout (limits.https_handshake_timeout)', () => {
  test('a client that sends a header line every 0.5 s is dropped; a prompt client on the same agent is served', async () => {
    const c = await connect('127.0.0.4');
    const started = Date.now();
    c.socket.write('GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n');
    let lines = 0;
    const trickle = setInterval(() => {
      if (!c.isClosed()) c.socket.write(`X-Slow-${lines++}: y\r\n`);
    }, 500);
    try {
      await waitFor('the server drops the slow client', () => c.isClosed(), 15_000, 100);
    } finally {
      clearInterval(trickle);
    }
    const heldMs = Date.now() - started;
    // Dropped after about the 1 s timeout (Node checks each 250 ms), not the 60 s Node allows by default.
    assert.ok(heldMs < 8000, `the slow client was held for ${heldMs} ms`);
    assert.ok(lines >= 1, 'the client was still sending when it was dropped');
    assert.doesNotMatch(c.received(), /^HTTP\/1\.1 200/, 'its request never ran');
    const ok = await agent.request('GET', '/v1/status/leader');
    assert.equal(ok.status, 200);
  });
});

describe('server RPC connections per client IP (limits.rpc_max_conns_per_client)', () => {
  test(`connection ${MAX_RPC_CONNS + 1} from one IP to the RPC port is closed at once; the others stay open`, async () => {
    const open: net.Socket[] = [];
    const closed = new Set<net.Socket>();
    const dial = () => new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: agent.ports.server, localAddress: '127.0.0.5' });
      s.on('error', () => { /* a reset shows as close */ });
      s.once('close', () => closed.add(s));
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
    try {
      for (let i = 0; i < MAX_RPC_CONNS; i++) open.push(await dial());
      const over = await dial();
      open.push(over);
      await waitFor('the server closes the connection over the limit', () => closed.has(over), 10_000);
      // The first ones were accepted and kept (an HTTP/2 client preface would be answered on them).
      assert.deepEqual(open.slice(0, MAX_RPC_CONNS).map((s) => closed.has(s)), Array(MAX_RPC_CONNS).fill(false));
      // The server's own RPC keeps working: a write still commits.
      assert.equal((await agent.request('PUT', '/v1/kv/after-rpc-limit', { body: 'x' })).text, 'true');
    } finally {
      for (const s of open) s.destroy();
    }
  });
});
