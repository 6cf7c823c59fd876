// TCP and UDP checks against real loopback sockets.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { startCheckRunner } from '../../src/checks/index.ts';
import { splitHostPort } from '../../src/checks/net.ts';
import type { CheckType } from '../../src/structs/check.ts';
import { closedPort, context, MS, nthReport, waitFor } from './helpers.ts';

async function firstReport(ct: CheckType) {
  const ctx = context();
  const runner = startCheckRunner({ IntervalNs: 10_000 * MS, ...ct }, ctx);
  try {
    return await nthReport(ctx, 0);
  } finally {
    runner.stop();
  }
}

test('splitHostPort follows Go: brackets for IPv6, a port required', () => {
  assert.deepEqual(splitHostPort('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
  assert.deepEqual(splitHostPort('[::1]:53'), { host: '::1', port: 53 });
  assert.deepEqual(splitHostPort('db.service.consul:5432'), { host: 'db.service.consul', port: 5432 });
  assert.throws(() => splitHostPort('127.0.0.1'), /address 127\.0\.0\.1: missing port in address/);
  assert.throws(() => splitHostPort('::1:53'), /too many colons/);
  assert.throws(() => splitHostPort('h:http'), /invalid port/);
});

describe('TCP checks', () => {
  let server: net.Server;
  let addr: string;
  let accepted = 0;

  before(async () => {
    server = net.createServer((s) => {
      accepted++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    addr = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  });

  after(() => server.close());

  test('a connection that opens is passing', async () => {
    const before = accepted;
    const r = await firstReport({ TCP: addr });
    assert.deepEqual([r.status, r.output], ['passing', `TCP connect ${addr}: Success`]);
    await waitFor('the listener to accept the connection', () => accepted === before + 1);
  });

  test('a closed port is critical with the error', async () => {
    const closed = `127.0.0.1:${await closedPort()}`;
    const r = await firstReport({ TCP: closed });
    assert.deepEqual([r.status, r.output], ['critical', `dial tcp ${closed}: connect ECONNREFUSED ${closed}`]);
  });

  test('an address without a port is critical', async () => {
    const r = await firstReport({ TCP: '127.0.0.1' });
    assert.deepEqual([r.status, r.output], ['critical', 'dial tcp: address 127.0.0.1: missing port in address']);
  });
});

describe('UDP checks', () => {
  let echo: dgram.Socket;
  let silent: dgram.Socket;
  const port = (s: dgram.Socket) => `127.0.0.1:${s.address().port}`;

  before(async () => {
    echo = dgram.createSocket('udp4');
    echo.on('message', (msg, rinfo) => echo.send(msg, rinfo.port, rinfo.address));
    silent = dgram.createSocket('udp4');
    await Promise.all([echo, silent].map((s) => new Promise<void>((r) => s.bind(0, '127.0.0.1', r))));
  });

  after(() => {
    echo.close();
    silent.close();
  });

  test('a reply is passing', async () => {
    const r = await firstReport({ UDP: port(echo), TimeoutNs: 2_000 * MS });
    assert.deepEqual([r.status, r.output], ['passing', `UDP connect ${port(echo)}: Success`]);
  });

  test('no reply within Timeout is passing too', async () => {
    const started = Date.now();
    const r = await firstReport({ UDP: port(silent), TimeoutNs: 150 * MS });
    assert.equal(r.status, 'passing');
    assert.ok(Date.now() - started >= 140);
  });

  test('a closed port (ICMP unreachable) is critical', async () => {
    const closed = `127.0.0.1:${await closedPort()}`;
    const r = await firstReport({ UDP: closed, TimeoutNs: 2_000 * MS });
    assert.equal(r.status, 'critical');
    assert.match(r.output, new RegExp(`^read udp ${closed}: .*ECONNREFUSED`));
  });
});
