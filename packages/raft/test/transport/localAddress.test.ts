// boundTarget: gRPC channels whose connections leave from a chosen local address (an agent's -bind),
// checked by what a real server sees as the caller's address (call.getPeer()).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { boundTarget, isSpecificAddress } from '../../src/transport/localAddress.ts';

const identity = (b: Buffer): Buffer => b;
const PEER_SERVICE = {
  Peer: { path: '/test.Peer/Peer', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
} as unknown as grpc.ServiceDefinition;

let server: grpc.Server;
let port: number;

before(async () => {
  server = new grpc.Server();
  server.addService(PEER_SERVICE, { Peer: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(call.getPeer())) });
  // 0.0.0.0: reachable at every loopback address, so callers can come from any of 127/8.
  port = await new Promise<number>((resolve, reject) => server.bindAsync('0.0.0.0:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
});
after(() => server.forceShutdown());

/** The caller address the server saw for one call over a channel to `address` from `local`. */
async function peerSeen(address: string, local: string | undefined): Promise<string> {
  const { target, options } = boundTarget(address, local);
  const client = new grpc.Client(target, grpc.credentials.createInsecure(), options);
  try {
    return await new Promise<string>((resolve, reject) => {
      client.makeUnaryRequest('/test.Peer/Peer', identity, identity, Buffer.alloc(0), { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res!.toString())));
    });
  } finally {
    client.close();
  }
}

describe('boundTarget', () => {
  const CASES: Array<[string, string, string | undefined, RegExp]> = [
    ['from 127.0.0.2 to 127.0.0.1', '127.0.0.1', '127.0.0.2', /^127\.0\.0\.2:\d+$/],
    ['from 127.0.0.3 to 127.0.0.5', '127.0.0.5', '127.0.0.3', /^127\.0\.0\.3:\d+$/],
    ['from 127.0.0.4 to a host name', 'localhost', '127.0.0.4', /^127\.0\.0\.4:\d+$/],
    ['no local address: the kernel picks (127.0.0.1 on loopback)', '127.0.0.5', undefined, /^127\.0\.0\.1:\d+$/],
    ['0.0.0.0 (bound to every interface): the kernel picks', '127.0.0.5', '0.0.0.0', /^127\.0\.0\.1:\d+$/],
  ];
  for (const [name, host, local, want] of CASES) {
    test(name, async () => {
      assert.match(await peerSeen(`${host}:${port}`, local), want);
    });
  }

  test('two channels to the same server from different local addresses keep their own sources', async () => {
    const [a, b] = await Promise.all([peerSeen(`127.0.0.1:${port}`, '127.0.0.6'), peerSeen(`127.0.0.1:${port}`, '127.0.0.7')]);
    assert.match(a, /^127\.0\.0\.6:/);
    assert.match(b, /^127\.0\.0\.7:/);
  });

  test('isSpecificAddress', () => {
    for (const a of ['127.0.0.2', '10.1.2.3', '::1', 'fe80::1']) assert.equal(isSpecificAddress(a), true, a);
    for (const a of [undefined, '', '0.0.0.0', '::', 'localhost']) assert.equal(isSpecificAddress(a), false, String(a));
  });
});
