// Configuration as people write it for Consul: agent configs, service definitions and config
// entries copied from Consul's documentation, in HCL and JSON, decoded to the same result.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfigText } from '../../src/config/file.ts';
import { CONFIG_SCHEMA, type RawConfig } from '../../src/config/schema.ts';
import { toServiceDefinition } from '../../src/config/serviceDefinition.ts';
import { parseConfigEntryText, readConfigEntryFile } from '../../src/config/configEntry.ts';
import { buildRuntimeConfig, type ConfigEnv } from '../../src/config/runtime.ts';
import { ConfigError } from '../../src/config/errors.ts';

const env: ConfigEnv = {
  hostname: () => 'test-host',
  networkInterfaces: () => ({ eth0: [{ address: '10.1.2.3', family: 'IPv4', internal: false, netmask: '255.0.0.0', mac: '00:00:00:00:00:00', cidr: '10.1.2.3/8' }] }),
};

function hcl(text: string, warnings: string[] = []): RawConfig {
  return parseConfigText(text, 'test.hcl', warnings, CONFIG_SCHEMA, 'hcl')!;
}

function json(doc: unknown, warnings: string[] = []): RawConfig {
  return parseConfigText(JSON.stringify(doc), 'test.json', warnings, CONFIG_SCHEMA, 'json')!;
}

function services(raw: RawConfig) {
  return (raw['services'] as RawConfig[]).map((s, i) => toServiceDefinition(s, `services[${i}]`, 'test'));
}

let dir: string;
before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trellis-consul-examples-')); });
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('agent configuration (Consul docs: agent configuration files)', () => {
  // The server example of Consul's "Agents configuration" page.
  const SERVER_HCL = `
node_name = "consul-server"
server    = true
bootstrap = true
ui_config {
  enabled = true
}
datacenter = "dc1"
data_dir   = "consul/data"
log_level  = "INFO"
addresses {
  http = "0.0.0.0"
}
connect {
  enabled = true
}
`;
  test('HCL and the same keys in JSON decode to the same config', () => {
    const fromHcl = hcl(SERVER_HCL);
    const fromJson = json({
      node_name: 'consul-server', server: true, bootstrap: true, ui_config: { enabled: true }, datacenter: 'dc1',
      data_dir: 'consul/data', log_level: 'INFO', addresses: { http: '0.0.0.0' }, connect: { enabled: true },
    });
    assert.deepEqual(fromHcl, fromJson);
    assert.deepEqual(fromHcl['addresses'], { http: '0.0.0.0' }, 'a block becomes an object, not a list');
  });

  test('the TLS example builds a runtime config with TLS on the server port', () => {
    const f = path.join(dir, 'tls.hcl');
    fs.writeFileSync(f, `
datacenter = "east-aws"
data_dir = "${dir}/data"
log_level = "INFO"
node_name = "foobar"
server = true

addresses = {
  https = "0.0.0.0"
}
ports {
  https = 8501
}

tls {
  defaults {
    key_file = "/etc/pki/tls/private/my.key"
    cert_file = "/etc/pki/tls/certs/my.crt"
    ca_file = "/etc/pki/tls/certs/ca-bundle.crt"
    verify_incoming = true
    verify_outgoing = true
  }
  internal_rpc {
    verify_server_hostname = true
  }
}
`);
    const { config } = buildRuntimeConfig(['-config-file', f], env);
    assert.equal(config.datacenter, 'east-aws');
    assert.equal(config.ports.https, 8501);
    assert.deepEqual(config.httpsAddrs, ['0.0.0.0']);
    assert.equal(config.tls.internalRpc.certFile, '/etc/pki/tls/certs/my.crt', 'internal_rpc inherits tls.defaults');
    assert.equal(config.tls.internalRpc.verifyIncoming, true);
    assert.equal(config.tls.internalRpc.verifyServerHostname, true);
  });

  test('watches and telemetry from the first example are accepted with one warning each', () => {
    const warnings: string[] = [];
    hcl(`
datacenter = "east-aws"
data_dir = "/opt/consul"
log_level = "INFO"
node_name = "foobar"
server = true
watches = [
  {
    type = "checks"
    handler = "/usr/bin/health-check-handler.sh"
  }
]

telemetry {
  statsite_address = "127.0.0.1:2180"
}
`, warnings);
    assert.deepEqual(warnings, [
      'config: test.hcl: "watches" is a Consul setting that Trellis does not use yet; it has no effect',
      'config: test.hcl: "telemetry.statsite_address" is a Consul setting that Trellis does not use yet; it has no effect',
    ]);
  });

  test('keys Trellis was seen refusing are accepted, each with a warning naming it', () => {
    const warnings: string[] = [];
    const raw = hcl('enable_central_service_config = true\nadvertise_reconnect_timeout = "15m"\nauto_encrypt {\n  dns_san = ["a.example"]\n}\n', warnings);
    assert.deepEqual(raw['auto_encrypt'], { dns_san: ['a.example'] });
    assert.ok(warnings.some((w) => w.includes('"enable_central_service_config"') && w.includes('does not use yet')), warnings.join('\n'));
    assert.ok(warnings.some((w) => w.includes('"advertise_reconnect_timeout"')), warnings.join('\n'));
  });

  test('every top-level key of Consul\'s agent configuration is known', () => {
    // agent/config/config.go (Config and DeprecatedConfig), user-facing keys.
    const consulKeys = `acl addresses advertise_addr advertise_addr_ipv4 advertise_addr_ipv6 advertise_addr_wan
      advertise_addr_wan_ipv4 advertise_addr_wan_ipv6 advertise_reconnect_timeout auto_config autopilot bind_addr
      bootstrap bootstrap_expect cache check check_output_max_size check_update_interval checks client_addr cloud
      config_entries auto_encrypt connect dns_config domain alt_domain recursors data_dir datacenter default_query_time
      disable_anonymous_signature disable_coordinates disable_host_node_id disable_http_unprintable_char_filter
      disable_keyring_file disable_remote_exec disable_update_check discard_check_output discovery_max_stale
      enable_agent_tls_for_checks enable_central_service_config enable_debug enable_script_checks
      enable_local_script_checks enable_syslog encrypt encrypt_verify_incoming encrypt_verify_outgoing gossip_lan
      gossip_wan http_config leave_on_terminate license_path limits locality log_level log_sublevels log_json log_file
      log_rotate_duration log_rotate_bytes log_rotate_max_files max_query_time node_id node_meta node_name peering
      performance pid_file ports primary_datacenter primary_gateways primary_gateways_interval protocol raft_protocol
      raft_snapshot_threshold raft_snapshot_interval raft_trailing_logs reconnect_timeout reconnect_timeout_wan
      rejoin_after_leave auto_reload_config retry_interval retry_interval_wan retry_join retry_max retry_max_wan
      retry_join_wan serf_lan_allowed_cidrs serf_wan_allowed_cidrs serf_lan serf_wan server server_name service
      services session_ttl_min skip_leave_on_interrupt syslog_facility tls tagged_addresses telemetry
      translate_wan_addrs xds ui ui_content_path ui_dir ui_config unix_sockets watches rpc raft_logstore
      use_streaming_backend snapshot_agent audit read_replica non_voting_server segment segments partition reporting
      acl_agent_master_token acl_agent_token acl_token acl_enable_key_list_policy acl_master_token acl_replication_token
      enable_acl_replication acl_datacenter acl_default_policy acl_down_policy acl_ttl ca_file ca_path cert_file
      key_file tls_cipher_suites tls_min_version verify_incoming verify_incoming_https verify_incoming_rpc
      verify_outgoing verify_server_hostname tls_prefer_server_cipher_suites start_join start_join_wan raft_boltdb`
      .split(/\s+/).filter(Boolean);
    const fields = (CONFIG_SCHEMA as { fields: Record<string, unknown> }).fields;
    assert.deepEqual(consulKeys.filter((k) => !fields[k]), []);
  });

  test('a truly unknown key is still refused, naming the key and the file', () => {
    assert.throws(() => hcl('datacentre = "dc1"\n'), (err: unknown) => err instanceof ConfigError
      && err.code === 'ERR_CONFIG_UNKNOWN_KEY' && err.message === 'config: test.hcl: unknown field "datacentre" (did you mean "datacenter"?)');
  });

  test('a block that can only be written once, written twice, is a clear error', () => {
    assert.throws(() => hcl('ports { http = 1 }\nports { dns = 2 }\n'), /field "ports" must be an object, got 2 of them \(a block written 2 times\): write it once/);
  });

  test('service written twice in one HCL file registers both', () => {
    const defs = services(hcl('service {\n  name = "a"\n}\nservice {\n  name = "b"\n}\n'));
    assert.deepEqual(defs.map((d) => d.Name), ['a', 'b']);
  });

  test('large integers (beyond 32 bits) decode', () => {
    const raw = hcl('limits {\n  kv_max_value_size = 4294967296\n}\n');
    assert.equal((raw['limits'] as RawConfig)['kv_max_value_size'], 4294967296);
  });
});

describe('service definitions (Consul docs: services and sidecar proxies)', () => {
  test('a sidecar with repeated upstreams blocks, snake_case, decodes to the API shape', () => {
    const [web] = services(hcl(`
service {
  name = "web"
  port = 8080
  connect {
    sidecar_service {
      port = 20000
      check {
        name = "Connect Envoy Sidecar"
        tcp = "127.0.0.1:20000"
        interval = "10s"
      }
      proxy {
        upstreams {
          destination_name = "db"
          local_bind_port = 9191
        }
        upstreams {
          destination_name = "cache"
          local_bind_port = 9192
        }
      }
    }
  }
}
`));
    assert.deepEqual(web!.Connect, {
      SidecarService: {
        Port: 20000,
        // A sidecar_service is converted as a service definition: its check joins Checks, as a service's does.
        Checks: [{ Name: 'Connect Envoy Sidecar', TCP: '127.0.0.1:20000', Interval: '10s' }],
        Proxy: { Upstreams: [{ DestinationName: 'db', LocalBindPort: 9191 }, { DestinationName: 'cache', LocalBindPort: 9192 }] },
      },
    });
  });

  test('one upstreams block is still a list; upstreams = [ … ] is the same', () => {
    const block = services(hcl('service {\n  name = "web"\n  connect { sidecar_service { proxy { upstreams { destination_name = "db"\n local_bind_port = 9191 } } } }\n}\n'));
    const list = services(hcl('service {\n  name = "web"\n  connect { sidecar_service { proxy { upstreams = [{ destination_name = "db", local_bind_port = 9191 }] } } }\n}\n'));
    assert.deepEqual(block, list);
    assert.deepEqual((block[0]!.Connect as any).SidecarService.Proxy.Upstreams, [{ DestinationName: 'db', LocalBindPort: 9191 }]);
  });

  test('CamelCase and snake_case keys decode to the same fields, in JSON too', () => {
    const snake = services(json({ service: { name: 'web', connect: { sidecar_service: { proxy: { upstreams: [{ destination_name: 'db', local_bind_port: 9191 }] } } } } }));
    const camel = services(json({ Service: { Name: 'web', Connect: { SidecarService: { Proxy: { Upstreams: [{ DestinationName: 'db', LocalBindPort: 9191 }] } } } } }));
    const camelHcl = services(hcl('Service {\n  Name = "web"\n  Connect { SidecarService { Proxy { Upstreams { DestinationName = "db"\n LocalBindPort = 9191 } } } }\n}\n'));
    assert.deepEqual(snake, camel);
    assert.deepEqual(snake, camelHcl);
  });

  test('the documented redis definition: meta, tagged addresses, checks, weights', () => {
    const [redis] = services(hcl(`
service {
  name = "redis"
  id   = "redis"
  tags = ["primary"]

  meta = {
    custom_meta_key = "custom_meta_value"
  }

  tagged_addresses = {
    lan = {
      address = "192.168.0.55"
      port    = 8000
    }

    wan = {
      address = "198.18.0.23"
      port    = 80
    }
  }

  port = 8000
  enable_tag_override = true
  checks = [
    {
      args = ["/usr/local/bin/check_redis.py"]
      interval = "10s"
    }
  ]
  weights = {
    passing = 5
    warning = 1
  }
}
`));
    assert.deepEqual(redis, {
      Name: 'redis', ID: 'redis', Port: 8000, Tags: ['primary'], Meta: { custom_meta_key: 'custom_meta_value' },
      TaggedAddresses: { lan: { Address: '192.168.0.55', Port: 8000 }, wan: { Address: '198.18.0.23', Port: 80 } },
      EnableTagOverride: true, Weights: { Passing: 5, Warning: 1 },
      Checks: [{ ScriptArgs: ['/usr/local/bin/check_redis.py'], Interval: '10s' }],
    });
  });

  test('the documented HTTP check with a header map', () => {
    const raw = hcl(`
check = {
  id = "api"
  name = "HTTP API on port 5000"
  http = "https://localhost:5000/health"
  tls_skip_verify = false
  method = "POST"
  header = {
    Content-Type = ["application/json"]
  }
  body = "{\\"method\\":\\"health\\"}"
  disable_redirects = true
  interval = "10s"
  timeout = "1s"
}
`);
    assert.deepEqual((raw['checks'] as RawConfig[])[0], {
      id: 'api', name: 'HTTP API on port 5000', http: 'https://localhost:5000/health', tls_skip_verify: false,
      method: 'POST', header: { 'Content-Type': ['application/json'] }, body: '{"method":"health"}',
      disable_redirects: true, interval: '10s', timeout: '1s',
    });
  });

  test('a connect-proxy service with expose paths', () => {
    const [proxy] = services(hcl(`
service {
  kind = "connect-proxy"
  name = "web-proxy"
  port = 21000
  proxy {
    destination_service_name = "web"
    local_service_port = 8080
    mode = "transparent"
    transparent_proxy {
      outbound_listener_port = 22500
    }
    mesh_gateway {
      mode = "local"
    }
    expose {
      checks = true
      paths {
        path = "/healthz"
        local_path_port = 8080
        listener_port = 21500
        protocol = "http2"
      }
    }
    config {
      protocol = "http"
    }
  }
}
`));
    assert.deepEqual(proxy!.Proxy, {
      DestinationServiceName: 'web', LocalServicePort: 8080, Mode: 'transparent',
      TransparentProxy: { OutboundListenerPort: 22500 }, MeshGateway: { Mode: 'local' },
      Expose: { Checks: true, Paths: [{ Path: '/healthz', LocalPathPort: 8080, ListenerPort: 21500, Protocol: 'http2' }] },
      Config: { protocol: 'http' },
    });
  });

  test('an unknown key inside an upstream names its path', () => {
    assert.throws(() => hcl('service {\n  name = "w"\n  proxy { upstreams { destination_nam = "db" } }\n}\n'),
      /unknown field "service\.proxy\.upstreams\[0\]\.destination_nam" \(did you mean "service\.proxy\.upstreams\[0\]\.destination_name"\?\)/);
  });
});

describe('config entries (Consul docs: service-splitter, service-router, service-resolver)', () => {
  test('service-splitter with the trailing comma after Kind', () => {
    const entry = parseConfigEntryText(`Kind = "service-splitter",
Name = "web"
Splits = [
  {
    Weight        = 90
    ServiceSubset = "v1"
  },
  {
    Weight        = 10
    ServiceSubset = "v2"
  },
]
`, 'splitter.hcl', 'hcl');
    assert.deepEqual(entry, { Kind: 'service-splitter', Name: 'web', Splits: [{ Weight: 90, ServiceSubset: 'v1' }, { Weight: 10, ServiceSubset: 'v2' }] });
  });

  test('snake_case splitter in JSON decodes to the same entry', () => {
    const entry = parseConfigEntryText(JSON.stringify({ kind: 'service-splitter', name: 'web', splits: [{ weight: 90, service_subset: 'v1' }, { weight: 10, service_subset: 'v2' }] }), 'splitter.json', 'json');
    assert.deepEqual(entry, { Kind: 'service-splitter', Name: 'web', Splits: [{ Weight: 90, ServiceSubset: 'v1' }, { Weight: 10, ServiceSubset: 'v2' }] });
  });

  test('service-router: Match and Destination blocks become objects, Header stays a list', () => {
    const entry = parseConfigEntryText(`
Kind = "service-router"
Name = "web"
Routes = [
  {
    Match {
      HTTP {
        PathPrefix = "/admin"
      }
    }

    Destination {
      Service = "admin"
    }
  },
  {
    Match {
      HTTP {
        Header = [
          {
            Name  = "x-debug"
            Exact = "1"
          },
        ]
      }
    }
    Destination {
      Service       = "web"
      ServiceSubset = "canary"
    }
  },
]
`, 'router.hcl', 'hcl');
    assert.deepEqual(entry, {
      Kind: 'service-router', Name: 'web', Routes: [
        { Match: { HTTP: { PathPrefix: '/admin' } }, Destination: { Service: 'admin' } },
        { Match: { HTTP: { Header: [{ Name: 'x-debug', Exact: '1' }] } }, Destination: { Service: 'web', ServiceSubset: 'canary' } },
      ],
    });
  });

  test('service-resolver: subset names are kept as written', () => {
    const f = path.join(dir, 'resolver.hcl');
    fs.writeFileSync(f, `
Kind          = "service-resolver"
Name          = "web"
DefaultSubset = "v1"
Subsets = {
  "v1" = {
    Filter = "Service.Meta.version == v1"
  }
  "v2" = {
    Filter = "Service.Meta.version == v2"
  }
}
`);
    assert.deepEqual(readConfigEntryFile(f), {
      Kind: 'service-resolver', Name: 'web', DefaultSubset: 'v1',
      Subsets: { v1: { Filter: 'Service.Meta.version == v1' }, v2: { Filter: 'Service.Meta.version == v2' } },
    });
  });

  test('proxy-defaults in an agent config (config_entries.bootstrap): Config keys kept as written', () => {
    const raw = hcl(`
config_entries {
  bootstrap {
    kind = "proxy-defaults"
    name = "global"
    config {
      local_connect_timeout_ms = 1000
      handshake_timeout_ms = 10000
    }
  }
}
`);
    assert.deepEqual(raw['config_entries'], { bootstrap: [{ Kind: 'proxy-defaults', Name: 'global', Config: { local_connect_timeout_ms: 1000, handshake_timeout_ms: 10000 } }] });
  });

  test('an entry without a Kind is refused, naming the file', () => {
    assert.throws(() => parseConfigEntryText('Name = "web"\n', 'x.hcl', 'hcl'), /config: x\.hcl: the config entry has no Kind/);
  });
});

test('a key named __proto__ in a config file is an unknown key, not a prototype', () => {
  assert.throws(() => parseConfigText('{"__proto__": {"server": true}}', 'p.json', [], CONFIG_SCHEMA, 'json'),
    (err: unknown) => err instanceof ConfigError && err.code === 'ERR_CONFIG_UNKNOWN_KEY' && /unknown field "__proto__"/.test(err.message));
  assert.throws(() => parseConfigText('"__proto__" { server = true }\n', 'p.hcl', [], CONFIG_SCHEMA, 'hcl'), /unknown field "__proto__"/);
});
