#!/usr/bin/env bash
# System packages the chaos harness's host faults need (test/chaos/hostFaults.ts), Debian:
#   disk-stall   gcc and libc6-dev, to build the LD_PRELOAD shim test/chaos/stall/stall.c
#   clock-step   libfaketime (package faketime), the LD_PRELOAD library that fakes the clocks
# Idempotent; a no-op when everything is present. Needs root to install. Arguments: which of
# "disk" and "clock" to check (default both).
set -euo pipefail
want=("$@"); [ ${#want[@]} -gt 0 ] || want=(disk clock)
need=()
for w in "${want[@]}"; do
  case "$w" in
    disk)
      command -v gcc >/dev/null 2>&1 || need+=(gcc)
      [ -e /usr/include/dlfcn.h ] || need+=(libc6-dev) ;;
    clock)
      ls /usr/lib/*/faketime/libfaketimeMT.so.1 >/dev/null 2>&1 || need+=(faketime) ;;
    *) echo "install-host-fault-deps: unknown part $w (disk, clock)" >&2; exit 2 ;;
  esac
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "install-host-fault-deps: need root to apt-get install ${need[*]}" >&2; exit 1; fi
  echo "install-host-fault-deps: apt-get install ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
