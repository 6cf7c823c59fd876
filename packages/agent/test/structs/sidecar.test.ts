// Sidecar registration's pure parts (structs/sidecar.ts): Consul's defaults, port assignment,
// default checks, validation texts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServiceFields } from '../../src/state/types.ts';
import {
  allocateSidecarPort, multiError, parentSidecarErrors, proxyServiceErrors, sidecarDefaultChecks, sidecarFromService, upstreamFromDecoded,
} from '../../src/structs/sidecar.ts';

function svc(fields: Partial<ServiceFields>): ServiceFields {
  return {
    Kind: '', ID: '', Service: '', Tags: [], Address: '', TaggedAddresses: {}, Meta: {}, Port: 0,
    Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false, ...fields,
  };
}

describe('allocateSidecarPort (Consul\'s sidecarPortFromServiceIDLocked)', () => {
  const range = { min: 2222, max: 2224 };
  test('the lowest port of the range when nothing uses it', () => {
    assert.deepEqual(allocateSidecarPort([], 'web-sidecar-proxy', range), { port: 2222 });
  });
  test('skips ports used by any service of the agent, and ignores ports outside the range', () => {
    const used = [svc({ ID: 'a', Port: 2222 }), svc({ ID: 'b', Port: 8080 }), svc({ ID: 'c', Port: 2224 })];
    assert.deepEqual(allocateSidecarPort(used, 'web-sidecar-proxy', range), { port: 2223 });
  });
  test('a sidecar already registered with a port in the range keeps it', () => {
    const used = [svc({ ID: 'a', Port: 2222 }), svc({ ID: 'web-sidecar-proxy', Port: 2224 })];
    assert.deepEqual(allocateSidecarPort(used, 'web-sidecar-proxy', range), { port: 2224 });
  });
  test('range exhausted: Consul\'s error', () => {
    const used = [2222, 2223, 2224].map((p) => svc({ ID: `s${p}`, Port: p }));
    assert.deepEqual(allocateSidecarPort(used, 'web-sidecar-proxy', range), {
      error: 'no port provided for sidecar_service and none left in the configured range [2222, 2224]',
    });
  });
  test('assignment disabled (ports set to 0)', () => {
    assert.deepEqual(allocateSidecarPort([], 'x', { min: 0, max: 0 }), {
      error: 'no port provided for sidecar_service and auto-assignment disabled in config',
    });
  });
});

describe('sidecarFromService (Consul\'s sidecarServiceFromNodeService)', () => {
  const parent = svc({ ID: 'web1', Service: 'web', Port: 8080, Address: '10.0.0.5', Tags: ['v1'], Meta: { version: '2' } });

  test('an empty SidecarService: every default from the service', () => {
    const s = sidecarFromService(parent, svc({}));
    assert.deepEqual(s, svc({
      Kind: 'connect-proxy', ID: 'web1-sidecar-proxy', Service: 'web-sidecar-proxy', Address: '10.0.0.5', Tags: ['v1'],
      Meta: { version: '2' }, Port: 0,
      Proxy: {
        DestinationServiceName: 'web', DestinationServiceID: 'web1', LocalServiceAddress: '127.0.0.1', LocalServicePort: 8080,
        MeshGateway: {}, Expose: {},
      },
    }));
  });

  test('what the definition gives wins; tags and meta given are not merged', () => {
    const s = sidecarFromService(parent, svc({
      Service: 'custom', Tags: ['proxy'], Meta: { team: 'a' }, Port: 21500, Address: '10.0.0.6',
      Proxy: { LocalServiceAddress: '10.0.0.7', LocalServicePort: 9090, Upstreams: [upstreamFromDecoded({ DestinationName: 'db', LocalBindPort: 9191 })] },
    }));
    assert.equal(s.Service, 'custom');
    assert.deepEqual(s.Tags, ['proxy']);
    assert.deepEqual(s.Meta, { team: 'a' });
    assert.equal(s.Port, 21500);
    assert.equal(s.Address, '10.0.0.6');
    assert.deepEqual(s.Proxy, {
      DestinationServiceName: 'web', DestinationServiceID: 'web1', LocalServiceAddress: '10.0.0.7', LocalServicePort: 9090,
      Upstreams: [{ DestinationType: 'service', DestinationName: 'db', Datacenter: '', LocalBindPort: 9191, MeshGateway: {} }],
      MeshGateway: {}, Expose: {},
    });
  });

  test('a service on a unix socket: the proxy points at the socket', () => {
    const s = sidecarFromService(svc({ ID: 'web', Service: 'web', SocketPath: '/run/web.sock' }), svc({}));
    assert.equal(s.Proxy?.LocalServiceSocketPath, '/run/web.sock');
    assert.equal(s.Proxy?.LocalServiceAddress, undefined);
  });
});

describe('sidecar validation texts', () => {
  test('multiError prints as go-multierror', () => {
    assert.equal(multiError(['a']), '1 error occurred:\n\t* a\n\n');
    assert.equal(multiError(['a', 'b']), '2 errors occurred:\n\t* a\n\t* b\n\n');
  });
  test('the parent\'s rules about its SidecarService', () => {
    assert.deepEqual(parentSidecarErrors('', {}), []);
    assert.deepEqual(parentSidecarErrors('', { ID: 'x', Connect: { SidecarService: {} } }), [
      'A SidecarService cannot specify an ID as this is managed by the agent',
      'A SidecarService cannot have a nested SidecarService',
    ]);
    assert.deepEqual(parentSidecarErrors('mesh-gateway', {}), ['A mesh-gateway cannot have a sidecar service defined']);
  });
  test('upstreams: each of Upstream.Validate\'s rules, and duplicates', () => {
    const proxy = (ups: Record<string, unknown>[]) => svc({
      Kind: 'connect-proxy', Port: 21000, Proxy: { DestinationServiceName: 'web', Upstreams: ups.map(upstreamFromDecoded) },
    });
    assert.deepEqual(proxyServiceErrors(proxy([{ DestinationName: 'db', LocalBindPort: 1 }])), []);
    assert.deepEqual(proxyServiceErrors(proxy([{ LocalBindPort: 1 }])), ['upstream destination name cannot be empty']);
    assert.deepEqual(proxyServiceErrors(proxy([{ DestinationName: 'db' }])), ['upstream local bind port or local socket path must be defined and nonzero']);
    assert.deepEqual(proxyServiceErrors(proxy([{ DestinationName: 'db', LocalBindPort: 1, DestinationType: 'x' }])), ['unknown upstream destination type: "x"']);
    assert.deepEqual(proxyServiceErrors(proxy([{ DestinationName: 'db', LocalBindPort: 1 }, { DestinationName: 'db', LocalBindPort: 2 }])), [
      'upstreams cannot contain duplicates of [type="service", name="db", partition="", namespace="", peer="", datacenter=""]',
    ]);
    assert.deepEqual(proxyServiceErrors(proxy([{ DestinationName: 'db', LocalBindPort: 1 }, { DestinationName: 'cache', LocalBindPort: 1 }])), [
      'upstreams cannot contain duplicates by local bind address and port or unix path; "127.0.0.1:1" is specified twice',
    ]);
  });
  test('a sidecar of a gateway kind gets every gateway rule', () => {
    const s = sidecarFromService(svc({ ID: 'web', Service: 'web', Port: 80 }), svc({ Kind: 'mesh-gateway' }));
    assert.deepEqual(proxyServiceErrors(s), [
      'Port must be non-zero for a mesh-gateway',
      'The Proxy.DestinationServiceName configuration is invalid for a mesh-gateway',
      'The Proxy.DestinationServiceID configuration is invalid for a mesh-gateway',
      'The Proxy.LocalServiceAddress configuration is invalid for a mesh-gateway',
      'The Proxy.LocalServicePort configuration is invalid for a mesh-gateway',
    ]);
  });
});

describe('sidecarDefaultChecks', () => {
  test('TCP on the proxy\'s address (else the local service address) every 10 s, and an alias of the service', () => {
    const s = svc({ ID: 'web1-sidecar-proxy', Port: 21000, Proxy: { LocalServiceAddress: '127.0.0.1' } });
    assert.deepEqual(sidecarDefaultChecks(s), [
      { Name: 'Connect Sidecar Listening', TCP: '127.0.0.1:21000', IntervalNs: 10e9 },
      { Name: 'Connect Sidecar Aliasing web1', AliasService: 'web1' },
    ]);
    assert.equal(sidecarDefaultChecks({ ...s, Address: '10.0.0.5' })[0]!.TCP, '10.0.0.5:21000');
  });
});
