// gRPC checks against a real grpc-js server implementing grpc.health.v1 (its messages encoded by
// @grpc/proto-loader from the real .proto, independently of the runner's hand-written codec).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { startCheckRunner } from '../../src/checks/index.ts';
import { decodeHealthCheckResponse, encodeHealthCheckRequest } from '../../src/checks/grpc.ts';
import type { CheckType } from '../../src/structs/check.ts';
import { closedPort, context, MS, nthReport, selfSignedCert } from './helpers.ts';

const HEALTH_PROTO = `
syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health { rpc Check(HealthCheckRequest) returns (HealthCheckResponse); }
`;

/** Service name → status; a name not here is NOT_FOUND, as the health protocol says. */
const statuses: Record<string, string> = { '': 'SERVING', billing: 'SERVING', search: 'NOT_SERVING' };

function healthService(): grpc.ServiceDefinition {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-health-proto-'));
  try {
    fs.writeFileSync(path.join(dir, 'health.proto'), HEALTH_PROTO);
    const def = protoLoader.loadSync(path.join(dir, 'health.proto'), { enums: String, defaults: true });
    return def['grpc.health.v1.Health'] as grpc.ServiceDefinition;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const implementation = {
  Check(call: grpc.ServerUnaryCall<{ service: string }, unknown>, cb: grpc.sendUnaryData<unknown>) {
    const status = statuses[call.request.service];
    if (status === undefined) cb({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
    else cb(null, { status });
  },
};

async function startServer(creds: grpc.ServerCredentials): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server();
  server.addService(healthService(), implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
  return { server, port };
}

async function firstReport(ct: CheckType) {
  const ctx = context();
  const runner = startCheckRunner({ IntervalNs: 10_000 * MS, TimeoutNs: 3_000 * MS, ...ct }, ctx);
  try {
    return await nthReport(ctx, 0);
  } finally {
    runner.stop();
  }
}

test('the hand-written health codec matches protobuf', () => {
  assert.deepEqual(encodeHealthCheckRequest(''), Buffer.alloc(0));
  assert.deepEqual(encodeHealthCheckRequest('web'), Buffer.from([0x0a, 3, 0x77, 0x65, 0x62]));
  assert.equal(decodeHealthCheckResponse(Buffer.from([0x08, 0x02])), 2);
  assert.equal(decodeHealthCheckResponse(Buffer.alloc(0)), 0);
  // An unknown length-delimited field before the status is skipped.
  assert.equal(decodeHealthCheckResponse(Buffer.from([0x12, 0x01, 0x41, 0x08, 0x01])), 1);
});

describe('gRPC checks', () => {
  let plain: { server: grpc.Server; port: number };

  before(async () => {
    plain = await startServer(grpc.ServerCredentials.createInsecure());
  });

  after(() => plain.server.forceShutdown());

  test('SERVING is passing, for the server and for a named service', async () => {
    const target = `127.0.0.1:${plain.port}`;
    const r = await firstReport({ GRPC: target });
    assert.deepEqual([r.status, r.output], ['passing', `gRPC check ${target}: success`]);
    const svc = await firstReport({ GRPC: `${target}/billing` });
    assert.deepEqual([svc.status, svc.output], ['passing', `gRPC check ${target}/billing: success`]);
  });

  test('NOT_SERVING is critical with the serving status', async () => {
    const target = `127.0.0.1:${plain.port}/search`;
    const r = await firstReport({ GRPC: target });
    assert.deepEqual([r.status, r.output], ['critical', `gRPC ${target} serving status: NOT_SERVING`]);
  });

  test('an RPC error is critical in grpc-go words', async () => {
    const r = await firstReport({ GRPC: `127.0.0.1:${plain.port}/ledger` });
    assert.deepEqual([r.status, r.output], ['critical', 'rpc error: code = NotFound desc = unknown service']);
    const down = await firstReport({ GRPC: `127.0.0.1:${await closedPort()}` });
    assert.equal(down.status, 'critical');
    assert.match(down.output, /^rpc error: code = Unavailable desc = /);
  });

  const pem = selfSignedCert();
  test('GRPCUseTLS: an untrusted certificate is critical unless TLSSkipVerify', { skip: !pem && 'openssl is not available' }, async () => {
    const tls = await startServer(grpc.ServerCredentials.createSsl(null, [{ private_key: pem!.key, cert_chain: pem!.cert }]));
    try {
      const target = `127.0.0.1:${tls.port}`;
      const plainClient = await firstReport({ GRPC: target });
      assert.equal(plainClient.status, 'critical', 'a plaintext client cannot talk to a TLS server');
      const strict = await firstReport({ GRPC: target, GRPCUseTLS: true });
      assert.equal(strict.status, 'critical');
      assert.match(strict.output, /^rpc error: code = Unavailable/);
      const skip = await firstReport({ GRPC: target, GRPCUseTLS: true, TLSSkipVerify: true });
      assert.deepEqual([skip.status, skip.output], ['passing', `gRPC check ${target}: success`]);
    } finally {
      tls.server.forceShutdown();
    }
  });
});
