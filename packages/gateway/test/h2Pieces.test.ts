// The pure parts of the proxy's HTTP/2 and gRPC support: Consul's retry policy as Envoy applies it
// (retryPolicy.ts), gRPC local answers (grpc.ts), the request view routing and intentions see
// (routeMatch.ts requestInfo), which listener a chain needs (sidecarProxy.ts listenerKind), the
// replayable request body (h2Upstream.ts) and header filtering (h2Relay.ts).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { encodeGrpcMessage, GRPC_STATUS, grpcLocalReply, httpToGrpcStatus, isGrpcContentType } from '../src/grpc.ts';
import { endToEndHeaders } from '../src/h2Relay.ts';
import { ReplayableBody } from '../src/h2Upstream.ts';
import { retryOnFailure, retryOnResponse, retryPolicyOf } from '../src/retryPolicy.ts';
import { requestInfo, routeMatches } from '../src/routeMatch.ts';
import { listenerKind } from '../src/sidecarProxy.ts';
import type { CompiledDiscoveryChain } from '../src/chainTypes.ts';

describe('retryPolicyOf: Consul makeRetryPolicy', () => {
  test('no retry features: no policy', () => {
    assert.equal(retryPolicyOf(undefined), undefined);
    assert.equal(retryPolicyOf({ Service: 'x' }), undefined);
    assert.equal(retryPolicyOf({ NumRetries: 0, RetryOn: [], RetryOnStatusCodes: [] }), undefined);
  });
  test('conditions: RetryOn, plus connect-failure and retriable-status-codes from the legacy fields', () => {
    const p = retryPolicyOf({ NumRetries: 3, RetryOn: ['unavailable', 'reset'], RetryOnConnectFailure: true, RetryOnStatusCodes: [503, 429] })!;
    assert.equal(p.numRetries, 3);
    assert.deepEqual([...p.on].sort(), ['connect-failure', 'reset', 'retriable-status-codes', 'unavailable']);
    assert.deepEqual([...p.statusCodes].sort(), [429, 503]);
  });
  test('a policy with NumRetries 0 gets Envoy\'s default of one retry; more than 10 is capped', () => {
    assert.equal(retryPolicyOf({ RetryOnStatusCodes: [503] })!.numRetries, 1);
    assert.equal(retryPolicyOf({ RetryOnConnectFailure: true })!.numRetries, 1);
    assert.equal(retryPolicyOf({ NumRetries: 50, RetryOn: ['5xx'] })!.numRetries, 10);
  });
  test('NumRetries without a condition retries nothing (Envoy with an empty retry_on)', () => {
    const p = retryPolicyOf({ NumRetries: 2 })!;
    assert.equal(retryOnResponse(p, 503), false);
    assert.equal(retryOnFailure(p, 'connect-failure'), false);
    assert.equal(retryOnFailure(p, 'reset'), false);
  });
});

describe('retryOnResponse / retryOnFailure', () => {
  const on = (...c: string[]) => retryPolicyOf({ NumRetries: 1, RetryOn: c })!;
  const table: Array<[string[], number, Record<string, string>, boolean]> = [
    [['5xx'], 500, {}, true], [['5xx'], 503, {}, true], [['5xx'], 404, {}, false],
    [['gateway-error'], 502, {}, true], [['gateway-error'], 504, {}, true], [['gateway-error'], 500, {}, false],
    [['retriable-4xx'], 409, {}, true], [['retriable-4xx'], 404, {}, false],
    [['envoy-ratelimited'], 429, { 'x-envoy-ratelimited': 'true' }, true], [['envoy-ratelimited'], 429, {}, false],
    // gRPC: the status of a trailers-only answer (HTTP 200).
    [['unavailable'], 200, { 'grpc-status': '14' }, true], [['unavailable'], 200, { 'grpc-status': '13' }, false],
    [['cancelled'], 200, { 'grpc-status': '1' }, true], [['deadline-exceeded'], 200, { 'grpc-status': '4' }, true],
    [['internal'], 200, { 'grpc-status': '13' }, true], [['resource-exhausted'], 200, { 'grpc-status': '8' }, true],
    [['unavailable'], 200, {}, false], [['unavailable'], 200, { 'grpc-status': '0' }, false], [['5xx'], 200, { 'grpc-status': '14' }, false],
  ];
  for (const [conds, status, headers, want] of table) {
    test(`${conds.join(',')}: ${status} ${JSON.stringify(headers)} -> ${want}`, () => assert.equal(retryOnResponse(on(...conds), status, headers), want));
  }
  test('retriable-status-codes: only the listed codes', () => {
    const p = retryPolicyOf({ RetryOnStatusCodes: [503] })!;
    assert.equal(retryOnResponse(p, 503), true);
    assert.equal(retryOnResponse(p, 502), false);
  });
  test('failures before a response', () => {
    assert.equal(retryOnFailure(on('connect-failure'), 'connect-failure'), true);
    assert.equal(retryOnFailure(on('connect-failure'), 'reset'), false);
    assert.equal(retryOnFailure(on('refused-stream'), 'refused-stream'), true);
    assert.equal(retryOnFailure(on('refused-stream'), 'reset'), false);
    for (const c of ['5xx', 'gateway-error', 'reset']) for (const why of ['connect-failure', 'reset', 'refused-stream'] as const) assert.equal(retryOnFailure(on(c), why), true, `${c} ${why}`);
    assert.equal(retryOnFailure(on('unavailable'), 'reset'), false);
  });
});

describe('gRPC local answers', () => {
  test('content types', () => {
    for (const ct of ['application/grpc', 'application/grpc+proto', 'application/grpc-web', 'application/grpc; charset=utf-8', 'Application/GRPC']) assert.equal(isGrpcContentType(ct), true, ct);
    for (const ct of ['application/json', 'application/grpcx', undefined, '']) assert.equal(isGrpcContentType(ct), false, String(ct));
  });
  test('Envoy\'s HTTP to gRPC status mapping', () => {
    assert.deepEqual([400, 401, 403, 404, 429, 502, 503, 504, 500, 418].map(httpToGrpcStatus), [13, 16, 7, 12, 14, 14, 14, 14, 2, 2]);
  });
  test('a denied gRPC call: HTTP 200, grpc-status 7, the message percent-encoded', () => {
    assert.deepEqual(grpcLocalReply(403, 'RBAC: access denied'), { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(GRPC_STATUS.PERMISSION_DENIED), 'grpc-message': 'RBAC: access denied' });
    assert.equal(encodeGrpcMessage('100% über\n'), '100%25 %C3%BCber%0A');
  });
});

describe('requestInfo', () => {
  test(':authority and host are one header; the query is split off', () => {
    const h2 = requestInfo('POST', '/pkg.Svc/Method?x=1&x=2', { ':authority': 'greeter:8080', 'content-type': 'application/grpc' });
    assert.deepEqual([h2.method, h2.path, h2.query, h2.headers.host, h2.headers[':authority']], ['POST', '/pkg.Svc/Method', { x: '1' }, 'greeter:8080', 'greeter:8080']);
    const h1 = requestInfo('GET', '/', { host: 'web' });
    assert.equal(h1.headers[':authority'], 'web');
    assert.equal(routeMatches({ Match: { HTTP: { Header: [{ Name: ':authority', Exact: 'web' }] } } }, h1), true);
    assert.equal(routeMatches({ Match: { HTTP: { Header: [{ Name: 'host', Exact: 'greeter:8080' }] } } }, h2), true);
  });
  test('a gRPC method is a path: PathExact and PathPrefix match it', () => {
    const r = requestInfo('POST', '/trellis.test.Greeter/Admin', {});
    assert.equal(routeMatches({ Match: { HTTP: { PathExact: '/trellis.test.Greeter/Admin' } } }, r), true);
    assert.equal(routeMatches({ Match: { HTTP: { PathPrefix: '/trellis.test.Greeter/' } } }, r), true);
    assert.equal(routeMatches({ Match: { HTTP: { PathExact: '/trellis.test.Greeter/Hello' } } }, r), false);
  });
});

test('listenerKind: tcp, http (HTTP/1.1) or http2 (http2 and grpc)', () => {
  const c = (Protocol: string) => ({ Protocol }) as CompiledDiscoveryChain;
  assert.deepEqual([undefined, c('tcp'), c('http'), c('http2'), c('grpc')].map(listenerKind), ['tcp', 'tcp', 'http', 'http2', 'http2']);
});

test('endToEndHeaders drops pseudo and connection-specific headers, keeps te: trailers', () => {
  assert.deepEqual(endToEndHeaders({ ':path': '/', ':method': 'GET', connection: 'close', host: 'x', te: 'trailers', 'content-type': 'application/grpc', 'x-a': ['1', '2'] }),
    { te: 'trailers', 'content-type': 'application/grpc', 'x-a': ['1', '2'] });
  assert.deepEqual(endToEndHeaders({ te: 'gzip', 'keep-alive': '5', 'transfer-encoding': 'chunked', upgrade: 'h2c' }), {});
});

describe('ReplayableBody', () => {
  const sink = () => {
    const got: Buffer[] = [];
    let ended = false;
    const w = new Writable({ write(c: Buffer, _e, cb) { got.push(c); cb(); }, final(cb) { ended = true; cb(); } });
    return { w, text: () => Buffer.concat(got).toString(), ended: () => ended };
  };
  const endOf = (w: Writable) => new Promise<void>((r) => w.once('finish', () => r()));
  test('a body within the limit is sent to the first attempt and again to a retry', async () => {
    const src = new PassThrough();
    const b = new ReplayableBody(src, 100);
    const a = sink();
    b.attach(a.w);
    src.write('hello ');
    src.end('world');
    await endOf(a.w);
    assert.equal(a.text(), 'hello world');
    assert.equal(b.replayable, true);
    b.detach();
    const r = sink();
    b.attach(r.w);
    await endOf(r.w);
    assert.equal(r.text(), 'hello world');
  });
  test('a retry attached mid-body gets what came so far, then the rest', async () => {
    const src = new PassThrough();
    const b = new ReplayableBody(src, 100);
    const a = sink();
    b.attach(a.w);
    src.write('one ');
    await new Promise((r) => setImmediate(r));
    b.detach();
    const r = sink();
    b.attach(r.w);
    src.end('two');
    await endOf(r.w);
    assert.equal(r.text(), 'one two');
    assert.equal(a.text(), 'one ', 'the abandoned attempt got nothing after it was detached');
  });
  test('a body over the limit is streamed but not replayable', async () => {
    const src = new PassThrough();
    const b = new ReplayableBody(src, 4);
    const a = sink();
    b.attach(a.w);
    src.end('more than four');
    await endOf(a.w);
    assert.equal(a.text(), 'more than four');
    assert.equal(b.replayable, false);
  });
  test('a slow destination pauses the source (backpressure)', async () => {
    const src = new PassThrough({ highWaterMark: 16 });
    const b = new ReplayableBody(src, 0);
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const got: Buffer[] = [];
    const slow = new Writable({ highWaterMark: 4, write(c: Buffer, _e, cb) { got.push(c); void gate.then(() => cb()); } });
    b.attach(slow);
    src.write('aaaaaaaa');
    src.write('bbbbbbbb');
    await new Promise((r) => setImmediate(r));
    assert.equal(src.isPaused(), true, 'the source is paused while the destination is full');
    release();
    src.end();
    await endOf(slow);
    assert.equal(Buffer.concat(got).toString(), 'aaaaaaaabbbbbbbb');
  });
  test('readAll: the whole body, or undefined when over the limit', async () => {
    const src = new PassThrough();
    const b = new ReplayableBody(src, 100);
    src.end('abc');
    assert.equal((await b.readAll(10))?.toString(), 'abc');
    const src2 = new PassThrough();
    src2.end('abcdef');
    assert.equal(await new ReplayableBody(src2, 100).readAll(3), undefined);
  });
});
