#!/usr/bin/env bash
# System packages the benchmarks need (Debian): etcd (server and etcdctl), the baseline that
# packages/agent/bench/kv.ts measures Trellis against, and haproxy, the reference of
# packages/gateway/bench/proxy.ts. Idempotent: a no-op when all are present; otherwise one
# `apt-get update` and one install.
set -euo pipefail
need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-bench-deps: need root to apt-get install ${need[*]}" >&2
  exit 1
fi
echo "install-bench-deps: apt-get install ${need[*]}"
apt-get update -qq
# Debian's etcd-server package enables and starts a system etcd on 127.0.0.1:2379 when systemd is
# running; the bench starts its own member on free ports, so that service is neither needed nor
# wanted. policy-rc.d 101 tells invoke-rc.d not to start services during this install.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
command -v etcd >/dev/null 2>&1 || { echo "install-bench-deps: etcd is still not on PATH after the install" >&2; exit 1; }
command -v haproxy >/dev/null 2>&1 || { echo "install-bench-deps: haproxy is still not on PATH after the install" >&2; exit 1; }
echo "install-bench-deps: $(etcd --version 2>/dev/null | head -1); $(haproxy -v 2>/dev/null | head -1)"
