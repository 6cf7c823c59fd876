// Sidecar mesh gateway modes: precedence (upstream > proxy registration > the chain target's,
// which carries service-defaults > proxy-defaults) and what each mode dials for a remote target.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gatewayAddress, gatewayRoute, resolveMeshGatewayMode, startTarget } from '../../src/meshGatewayMode.ts';
import type { CompiledDiscoveryChain } from '../../src/chainTypes.ts';

test('precedence: the first set mode wins; unset or unknown modes fall through; default none', () => {
  assert.equal(resolveMeshGatewayMode({ Mode: 'remote' }, { Mode: 'local' }, { Mode: 'none' }), 'remote');
  assert.equal(resolveMeshGatewayMode({}, { Mode: 'local' }, { Mode: 'remote' }), 'local');
  assert.equal(resolveMeshGatewayMode(undefined, null, { Mode: 'remote' }), 'remote');
  assert.equal(resolveMeshGatewayMode({ Mode: '' }, {}, {}), 'none');
  assert.equal(resolveMeshGatewayMode({ Mode: 'bogus' }, { Mode: 'local' }), 'local');
});

test('routes: local gateways by LAN address, remote by WAN with ?dc=, none and same-dc targets directly', () => {
  assert.deepEqual(gatewayRoute('dc2', 'dc1', 'local'), { path: '/v1/health/service/mesh-gateway?passing=1', side: 'lan' });
  assert.deepEqual(gatewayRoute('dc2', 'dc1', 'remote'), { path: '/v1/health/service/mesh-gateway?passing=1&dc=dc2', side: 'wan' });
  assert.equal(gatewayRoute('dc2', 'dc1', 'none'), undefined);
  assert.equal(gatewayRoute('dc1', 'dc1', 'local'), undefined);
  assert.equal(gatewayRoute(undefined, 'dc1', 'local'), undefined);
  assert.equal(gatewayRoute('dc2', undefined, 'local'), undefined, 'own datacenter not known yet: direct');
});

test('gateway addresses: tagged lan/wan, else the service address, else the node address', () => {
  const e = { Node: { Address: '10.0.0.9' }, Service: { Address: '10.0.0.5', Port: 8443, TaggedAddresses: { lan: { Address: '10.0.0.5', Port: 8443 }, wan: { Address: '198.51.100.5', Port: 443 } } } };
  assert.deepEqual(gatewayAddress(e, 'lan'), { host: '10.0.0.5', port: 8443 });
  assert.deepEqual(gatewayAddress(e, 'wan'), { host: '198.51.100.5', port: 443 });
  assert.deepEqual(gatewayAddress({ Node: { Address: '10.0.0.9' }, Service: { Port: 8443 } }, 'wan'), { host: '10.0.0.9', port: 8443 });
});

test("a chain's start target carries its MeshGateway mode", () => {
  const chain: CompiledDiscoveryChain = {
    ServiceName: 'api', Datacenter: 'dc1', Protocol: 'tcp', StartNode: 'resolver:api.default.dc2',
    Nodes: { 'resolver:api.default.dc2': { Type: 'resolver', Name: 'api.default.dc2', Resolver: { Target: 'api.default.dc2' } } },
    Targets: { 'api.default.dc2': { ID: 'api.default.dc2', Service: 'api', Datacenter: 'dc2', MeshGateway: { Mode: 'local' } } },
  };
  assert.equal(resolveMeshGatewayMode(undefined, undefined, startTarget(chain)?.MeshGateway), 'local');
  assert.equal(startTarget(undefined), undefined);
});
