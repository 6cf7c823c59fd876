#!/usr/bin/env bash
# System packages the network-namespace tests need (test/support/netns.ts, test/chaos): iproute2
# (ip netns, veth, bridge) and nftables (drops, loss, dnat inside a namespace). Debian; idempotent,
# a no-op when both are present. Needs root to install.
set -euo pipefail
need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "install-netns-deps: need root to apt-get install ${need[*]}" >&2; exit 1; fi
  echo "install-netns-deps: apt-get install ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
