#!/usr/bin/env bash
# System packages the test suites need (Debian). Idempotent; a no-op when all are present.
set -euo pipefail
need=()
command -v dig >/dev/null 2>&1 || need+=(dnsutils)
# Headless Chromium for the web UI's browser tests (test/ui), driven by puppeteer-core: Debian's
# build, so nothing downloads a browser of its own.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# jemalloc for `trellis connect proxy` (bin/trellis preloads it where present): the proxy suites'
# idle-RSS bounds hold after bursts of connections with it (glibc keeps their high-water mark).
compgen -G '/usr/lib/*-linux-gnu/libjemalloc.so.2' >/dev/null || need+=(libjemalloc2)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "install-test-deps: need root to apt-get install ${need[*]}" >&2; exit 1; fi
  echo "install-test-deps: apt-get install ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# iproute2 and nftables for the network-namespace suites (test/chaos): their own script, also run by npm run chaos.
bash "$(dirname "$0")/install-netns-deps.sh"
# gcc and libfaketime for the chaos harness's disk-stall and clock-step faults: their own script, also run by npm run chaos.
bash "$(dirname "$0")/install-host-fault-deps.sh"
