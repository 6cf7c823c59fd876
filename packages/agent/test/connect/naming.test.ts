// SPIFFE IDs, SNI names and the certificate policy (connect/: pure).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { canSign, formatSpiffeId, parseSpiffeId, serviceId, SpiffeParseError, trustDomainFor } from '../../src/connect/spiffe.ts';
import { datacenterSni, isValidSubsetName, serviceSni } from '../../src/connect/sni.ts';
import { colonHex, leafTtlError, renewAt, HOUR_MS } from '../../src/connect/policy.ts';
import { agentCN, caCN, serviceCN } from '../../src/connect/commonNames.ts';

const TD = '11111111-2222-3333-4444-555555555555.consul';

describe('SPIFFE IDs', () => {
  test('each kind formats as Consul writes it and parses back', () => {
    const cases: [ReturnType<typeof parseSpiffeId>, string][] = [
      [serviceId(TD, 'dc1', 'web'), `spiffe://${TD}/ns/default/dc/dc1/svc/web`],
      [{ kind: 'agent', trustDomain: TD, datacenter: 'dc1', node: 'node-1' }, `spiffe://${TD}/agent/client/dc/dc1/id/node-1`],
      [{ kind: 'server', trustDomain: TD, datacenter: 'dc2' }, `spiffe://${TD}/agent/server/dc/dc2`],
      [{ kind: 'mesh-gateway', trustDomain: TD, datacenter: 'dc1' }, `spiffe://${TD}/gateway/mesh/dc/dc1`],
      [{ kind: 'signing', trustDomain: TD }, `spiffe://${TD}`],
    ];
    for (const [id, uri] of cases) {
      assert.equal(formatSpiffeId(id), uri);
      assert.deepEqual(parseSpiffeId(uri), id);
    }
  });

  test('a service name with characters outside a path segment round-trips escaped', () => {
    const uri = formatSpiffeId(serviceId(TD, 'dc1', 'a b/c'));
    assert.equal(uri, `spiffe://${TD}/ns/default/dc/dc1/svc/a%20b%2Fc`);
    assert.deepEqual(parseSpiffeId(uri), serviceId(TD, 'dc1', 'a b/c'));
  });

  test('the trust domain is the cluster id plus .consul, lower case, and parsing lower-cases it', () => {
    assert.equal(trustDomainFor('ABCDEF00-0000-0000-0000-000000000000'), 'abcdef00-0000-0000-0000-000000000000.consul');
    assert.equal(parseSpiffeId(`spiffe://${TD.toUpperCase()}/agent/server/dc/dc1`).trustDomain, TD);
  });

  test('other schemes and unknown forms are refused with Consul texts', () => {
    assert.throws(() => parseSpiffeId(`https://${TD}/ns/default/dc/dc1/svc/web`), (e: Error) => e instanceof SpiffeParseError && e.message === "URI scheme must be 'spiffe'");
    for (const bad of [`spiffe://${TD}/ns/default/dc/dc1/svc/`, `spiffe://${TD}/ns/default/dc/dc1`, `spiffe://${TD}/foo`, 'spiffe:///ns/default/dc/dc1/svc/web', 'not a uri']) {
      assert.throws(() => parseSpiffeId(bad), SpiffeParseError, bad);
    }
  });

  test('a CA signs IDs of its own trust domain only, and never another CA', () => {
    assert.equal(canSign(TD, serviceId(TD, 'dc1', 'web')), true);
    assert.equal(canSign(TD.toUpperCase(), serviceId(TD, 'dc1', 'web')), true);
    assert.equal(canSign(TD, serviceId('other.consul', 'dc1', 'web')), false);
    assert.equal(canSign(TD, { kind: 'signing', trustDomain: TD }), false);
  });
});

describe('SNI names', () => {
  test('service targets with and without a subset, and a datacenter', () => {
    assert.equal(serviceSni('payments', '', 'dc1', TD), `payments.default.dc1.internal.${TD}`);
    assert.equal(serviceSni('payments', 'v2', 'dc1', TD), `v2.payments.default.dc1.internal.${TD}`);
    assert.equal(datacenterSni('dc2', TD), `dc2.internal.${TD}`);
  });

  test('subset names are DNS labels', () => {
    assert.equal(isValidSubsetName('v2'), true);
    assert.equal(isValidSubsetName('a'.repeat(63)), true);
    for (const bad of ['', 'V2', '-v2', 'v2-', 'v_2', 'a.b', 'a'.repeat(64)]) assert.equal(isValidSubsetName(bad), false, bad);
  });
});

describe('common names (Consul\'s common_names.go)', () => {
  test('service, agent and CA names: sanitized, lower case, the trust domain cut to 8', () => {
    assert.equal(serviceCN('web', 'default', TD), 'web.svc.default.11111111.consul');
    assert.equal(serviceCN('Web_API-v2', 'default', TD), 'webapiv2.svc.default.11111111.consul');
    assert.equal(agentCN('Node-1', TD), 'node1.agnt.11111111.consul');
    assert.equal(caCN('consul', 'AbC123xyz', TD), 'pri-abc123xy.consul.ca.11111111.consul');
    assert.equal(caCN('consul', 'abc', TD, false), 'sec-abc.consul.ca.11111111.consul');
  });

  test('a long service name is cut so the CN stays within 64 bytes', () => {
    const cn = serviceCN('a'.repeat(100), 'default', TD);
    assert.equal(cn, `${'a'.repeat(36)}.svc.default.11111111.consul`);
    assert.ok(cn.length <= 64);
    const both = serviceCN('s'.repeat(40), 'n'.repeat(40), TD);
    assert.equal(both, `${'s'.repeat(21)}.svc.${'n'.repeat(22)}.11111111.consul`);
    assert.ok(both.length <= 64);
  });
});

describe('certificate policy', () => {
  test('leaf TTL bounds are 1h to 8760h with Consul texts', () => {
    assert.equal(leafTtlError(HOUR_MS), null);
    assert.equal(leafTtlError(8760 * HOUR_MS), null);
    assert.equal(leafTtlError(HOUR_MS - 1), 'leaf cert TTL must be greater or equal than 1h0m0s');
    assert.equal(leafTtlError(8760 * HOUR_MS + 1), 'leaf cert TTL must be less than 8760h0m0s');
  });

  test('renewal falls between 60% and 90% of the lifetime, placed by the random source', () => {
    const from = 1_000_000;
    const to = from + 100 * HOUR_MS;
    assert.equal(renewAt(from, to, () => 0), from + 60 * HOUR_MS);
    assert.equal(renewAt(from, to, () => 0.5), from + 75 * HOUR_MS);
    const top = renewAt(from, to, () => 0.999999);
    assert.ok(top <= from + 90 * HOUR_MS && top > from + 89 * HOUR_MS);
    // Out-of-range randoms are clamped rather than trusted.
    assert.equal(renewAt(from, to, () => 7), from + 90 * HOUR_MS);
  });

  test('IDs are lower-case colon-separated hex', () => {
    assert.equal(colonHex(new Uint8Array([0, 0xab, 0x0f, 0xff])), '00:ab:0f:ff');
  });
});
