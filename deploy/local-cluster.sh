#!/usr/bin/env bash
# A local Trellis datacenter on loopback: N servers (-bootstrap-expect N) and M client agents, each
# its own process with its own data dir and ports, joined through LAN gossip.
#
#   deploy/local-cluster.sh start [--servers 3] [--clients 2] [--dir /tmp/trellis-local] [--base-port 21000] [--datacenter dc1]
#   deploy/local-cluster.sh status [--dir ...]
#   deploy/local-cluster.sh stop   [--dir ...]          # SIGTERM to every agent, then waits
#
# Agent i (servers first, from 0) uses base+10*i: HTTP +0, DNS +1, server RPC +2, serf LAN +3.
# Logs, data and pid files live under --dir/<node>/. Run from the repository (after npm install).
set -euo pipefail

cmd="${1:-}"
[ -n "$cmd" ] && shift || true
servers=3
clients=2
dir=/tmp/trellis-local
base=21000
dc=dc1
while [ $# -gt 0 ]; do
  case "$1" in
    --servers) servers="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --base-port) base="$2"; shift 2 ;;
    --datacenter) dc="$2"; shift 2 ;;
    *) echo "local-cluster: unknown option $1 (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
done

repo="$(cd "$(dirname "$0")/.." && pwd)"
trellis="$repo/node_modules/.bin/trellis"

http_port() { echo $((base + 10 * $1)); }

node_name() {
  if [ "$1" -lt "$servers" ]; then echo "server$(($1 + 1))"; else echo "client$(($1 - servers + 1))"; fi
}

start() {
  [ -x "$trellis" ] || { echo "local-cluster: $trellis not found: run 'npm install' in $repo first" >&2; exit 1; }
  case "$servers" in ''|*[!0-9]*) echo "local-cluster: --servers must be a number" >&2; exit 2 ;; esac
  case "$clients" in ''|*[!0-9]*) echo "local-cluster: --clients must be a number" >&2; exit 2 ;; esac
  [ "$servers" -ge 1 ] || { echo "local-cluster: at least one server is needed" >&2; exit 2; }
  if ls "$dir"/*/agent.pid >/dev/null 2>&1; then
    echo "local-cluster: $dir already holds a cluster; run '$0 stop --dir $dir' first (or pick another --dir)" >&2
    exit 1
  fi
  mkdir -p "$dir"
  echo "$servers $clients $base $dc" > "$dir/cluster"
  local total=$((servers + clients))
  for ((i = 0; i < total; i++)); do
    local name; name="$(node_name "$i")"
    local p; p="$(http_port "$i")"
    mkdir -p "$dir/$name"
    local args=(agent -node "$name" -datacenter "$dc" -data-dir "$dir/$name/data" -bind 127.0.0.1 -client 127.0.0.1
      -http-port "$p" -dns-port $((p + 1)) -server-port $((p + 2)) -serf-lan-port $((p + 3)) -serf-wan-port $((p + 4))
      -pid-file "$dir/$name/agent.pid" -retry-interval 1s)
    if [ "$i" -lt "$servers" ]; then args+=(-server -bootstrap-expect "$servers"); fi
    # Everyone joins the first server; the servers also join each other.
    for ((j = 0; j < servers; j++)); do
      [ "$j" -eq "$i" ] || args+=(-retry-join "127.0.0.1:$(( $(http_port "$j") + 3 ))")
    done
    nohup "$trellis" "${args[@]}" > "$dir/$name/agent.log" 2>&1 &
  done
  echo "local-cluster: started $servers server(s) and $clients client(s) under $dir; waiting for a leader ..."
  local leader=""
  for ((t = 0; t < 120; t++)); do
    leader="$(curl -s --max-time 1 "http://127.0.0.1:$(http_port 0)/v1/status/leader" 2>/dev/null || true)"
    if [ -n "$leader" ] && [ "$leader" != '""' ]; then break; fi
    sleep 0.5
  done
  if [ -z "$leader" ] || [ "$leader" = '""' ]; then
    echo "local-cluster: no leader after 60 s; see $dir/*/agent.log" >&2
    exit 1
  fi
  echo "local-cluster: leader $leader"
  status
  echo
  echo "Try: export CONSUL_HTTP_ADDR=127.0.0.1:$(http_port "$servers"); $trellis members"
}

status() {
  [ -f "$dir/cluster" ] || { echo "local-cluster: no cluster under $dir" >&2; exit 1; }
  read -r servers clients base dc < "$dir/cluster"
  printf '%-10s %-8s %-8s %-22s %s\n' NODE ROLE PID HTTP STATE
  local total=$((servers + clients))
  for ((i = 0; i < total; i++)); do
    local name; name="$(node_name "$i")"
    local role=client
    [ "$i" -lt "$servers" ] && role=server
    local pid="-" state=stopped
    if [ -f "$dir/$name/agent.pid" ]; then
      pid="$(cat "$dir/$name/agent.pid")"
      if kill -0 "$pid" 2>/dev/null; then state=running; fi
    fi
    printf '%-10s %-8s %-8s %-22s %s\n' "$name" "$role" "$pid" "127.0.0.1:$(http_port "$i")" "$state"
  done
}

stop() {
  [ -f "$dir/cluster" ] || { echo "local-cluster: no cluster under $dir" >&2; exit 1; }
  local pids=()
  for f in "$dir"/*/agent.pid; do
    [ -f "$f" ] || continue
    local pid; pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; pids+=("$pid"); fi
  done
  for ((t = 0; t < 60; t++)); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.5
  done
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"; done
  echo "local-cluster: stopped ${#pids[@]} agent(s); data and logs stay in $dir"
}

case "$cmd" in
  start) start ;;
  status) status ;;
  stop) stop ;;
  *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
