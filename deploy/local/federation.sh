#!/usr/bin/env bash
# The three-datacenter demo of shared/design/SCENARIOS.md on one machine, on loopback with distinct
# ports: datacenters onprem (primary), cloud and space, each one server agent (Connect on,
# primary_datacenter onprem) WAN-joined to onprem, one mesh gateway (`trellis connect gateway
# -register`), and the test apps (test/fixtures/testApp.ts) each with its sidecar
# (`trellis connect proxy -sidecar-for`) as in the cast table:
#   onprem: web -> payments (v1, v2), payments v2 -> currency, currency v1
#   cloud:  currency (v2), api -> backend
#   space:  backend
# proxy-defaults: protocol http, MeshGateway.Mode local; intentions: default deny plus the story's allows.
#
#   deploy/local/federation.sh start  [--dir /tmp/trellis-federation] [--base-port 19000]
#   deploy/local/federation.sh status [--dir ...]
#   deploy/local/federation.sh stop   [--dir ...]
#
# start is idempotent: what is already running is left alone, what is missing is started (so it
# also repairs a half-started demo); registrations, config entries and intentions are upserts.
# stop sends SIGTERM to everything it started (apps and sidecars first, servers last), SIGKILL after
# 30 s; logs stay under --dir/<dc>/. Ports: datacenter d (onprem 0, cloud 1, space 2) uses
# base+100*d + offsets: agent HTTP +0, DNS +1, server RPC +2, serf LAN +3, serf WAN +4; gateway LAN
# +10, WAN +11, metrics +12; app/sidecar/upstream: web and api +20/21/22, payments v1 and backend
# +30/31/32, payments v2 +40/41/42, currency +50/51 (the default base, 19000, stays below the test
# suites' port range, 20000-32767). Loopback only: the namespaces with overlapping
# addresses are the test suite's (test/e2e/federation). Run from the repository after npm install.
set -euo pipefail

cmd="${1:-}"
[ -n "$cmd" ] && shift || true
dir=/tmp/trellis-federation
base=19000
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --base-port) base="$2"; shift 2 ;;
    *) echo "federation: unknown option $1 (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
done

repo="$(cd "$(dirname "$0")/../.." && pwd)"
trellis="$repo/node_modules/.bin/trellis"
node24="$repo/node_modules/.bin/node"
app_script="$repo/test/fixtures/testApp.ts"
dcs=(onprem cloud space)

dc_index() { case "$1" in onprem) echo 0 ;; cloud) echo 1 ;; space) echo 2 ;; esac; }
port() { echo $((base + 100 * $(dc_index "$1") + $2)); }
http_addr() { echo "127.0.0.1:$(port "$1" 0)"; }

die() { echo "federation: $*" >&2; exit 1; }

# pid_alive <pidfile>: the process it names is running.
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# port_busy <port>: something accepts TCP connections on 127.0.0.1:<port>.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# launch <pidfile> <logfile> <command...>: starts it in the background unless its pid file names a
# live process. The launcher and node exec, so $! is the process itself.
launch() {
  local pidfile="$1" log="$2"; shift 2
  if pid_alive "$pidfile"; then return 0; fi
  nohup "$@" >> "$log" 2>&1 &
  echo $! > "$pidfile"
}

api() { # api <dc> <method> <path> [json]: the agent's HTTP API; fails with its answer on a non-2xx status.
  local out code
  out="$(curl -sS --max-time 10 -X "$2" -w '\n%{http_code}' ${4:+--data "$4"} "http://$(http_addr "$1")$3")" || die "$2 $3 in $1: no answer from $(http_addr "$1")"
  code="${out##*$'\n'}"
  case "$code" in 2*) printf '%s' "${out%$'\n'*}" ;; *) die "$2 $3 in $1: HTTP $code: ${out%$'\n'*}" ;; esac
}

wait_for() { # wait_for <what> <seconds> <command...>
  local what="$1" secs="$2"; shift 2
  for ((t = 0; t < secs * 2; t++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  die "$what not within ${secs} s; see the logs under $dir"
}

has_leader() { local l; l="$(curl -s --max-time 1 "http://$(http_addr "$1")/v1/status/leader")"; [ -n "$l" ] && [ "$l" != '""' ]; }
passing() { curl -s --max-time 2 "http://$(http_addr "$1")/v1/health/service/$2?passing=1" | grep -q "\"ID\":\"$3\""; }

start_server() {
  local dc="$1" d="$dir/$1"
  mkdir -p "$d"
  pid_alive "$d/server.pid" && return 0
  for off in 0 2 3 4; do port_busy "$(port "$dc" $off)" && die "port $(port "$dc" $off) ($dc's server) is in use by another program; pick another --base-port"; done
  printf '{"primary_datacenter": "onprem", "connect": {"enabled": true}}\n' > "$d/agent.json"
  local args=(agent -server -bootstrap -datacenter "$dc" -node "$dc-server" -data-dir "$d/data" -config-file "$d/agent.json"
    -bind 127.0.0.1 -client 127.0.0.1 -http-port "$(port "$dc" 0)" -dns-port "$(port "$dc" 1)" -server-port "$(port "$dc" 2)"
    -serf-lan-port "$(port "$dc" 3)" -serf-wan-port "$(port "$dc" 4)" -pid-file "$d/agent.pid")
  [ "$dc" = onprem ] || args+=(-retry-join-wan "127.0.0.1:$(port onprem 4)" -retry-interval-wan 1s)
  launch "$d/server.pid" "$d/server.log" "$trellis" "${args[@]}"
}

start_gateway() {
  local dc="$1" d="$dir/$1"
  pid_alive "$d/gateway.pid" && return 0
  port_busy "$(port "$dc" 10)" && die "port $(port "$dc" 10) ($dc's mesh gateway) is in use by another program"
  launch "$d/gateway.pid" "$d/gateway.log" "$trellis" connect gateway -register -service mesh-gateway \
    -address "127.0.0.1:$(port "$dc" 10)" -wan-address "127.0.0.1:$(port "$dc" 11)" \
    -metrics-addr "127.0.0.1:$(port "$dc" 12)" -http-addr "$(http_addr "$dc")"
}

# start_app <dc> <service> <id> <display> <offset> <version or -> [<upstream>]
start_app() {
  local dc="$1" svc="$2" id="$3" display="$4" off="$5" version="$6" upstream="${7:-}" d="$dir/$1"
  local app_port sidecar_port up_port meta tags ups=()
  app_port="$(port "$dc" "$off")"; sidecar_port="$(port "$dc" $((off + 1)))"; up_port="$(port "$dc" $((off + 2)))"
  [ -n "$upstream" ] && ups=(-upstream "http://127.0.0.1:$up_port")
  launch "$d/$id.app.pid" "$d/$id.app.log" "$node24" "$app_script" -name "$display" -listen "127.0.0.1:$app_port" "${ups[@]}"
  meta='{}'; tags='[]'
  [ "$version" != - ] && { meta="{\"version\":\"$version\"}"; tags="[\"v$version\"]"; }
  local upstreams='[]'
  [ -n "$upstream" ] && upstreams="[{\"DestinationName\":\"$upstream\",\"LocalBindPort\":$up_port}]"
  api "$dc" PUT /v1/agent/service/register "{\"Name\":\"$svc\",\"ID\":\"$id\",\"Address\":\"127.0.0.1\",\"Port\":$app_port,\"Tags\":$tags,\"Meta\":$meta,
    \"Connect\":{\"SidecarService\":{\"Port\":$sidecar_port,\"Meta\":$meta,\"Proxy\":{\"Config\":{\"bind_address\":\"127.0.0.1\"},\"Upstreams\":$upstreams}}}}" >/dev/null
  launch "$d/$id.sidecar.pid" "$d/$id.sidecar.log" "$trellis" connect proxy -sidecar-for "$id" -http-addr "$(http_addr "$dc")"
}

start() {
  [ -x "$trellis" ] || die "$trellis not found: run 'npm install' in $repo first"
  [ -x "$node24" ] || die "$node24 not found: run 'npm install' in $repo first"
  command -v curl >/dev/null || die "curl is needed (apt-get install curl)"
  case "$base" in ''|*[!0-9]*) echo "federation: --base-port must be a number" >&2; exit 2 ;; esac
  [ "$base" -ge 1024 ] && [ "$base" -le 65000 ] || { echo "federation: --base-port must be between 1024 and 65000" >&2; exit 2; }
  if [ -f "$dir/ports" ] && [ "$(cat "$dir/ports")" != "$base" ]; then
    local f
    for f in "$dir"/*/*.pid; do
      pid_alive "$f" && die "$dir holds a running demo on base port $(cat "$dir/ports"), not $base: stop it first or use another --dir"
    done
  fi
  mkdir -p "$dir"
  echo "$base" > "$dir/ports"
  for dc in "${dcs[@]}"; do start_server "$dc"; done
  echo "federation: servers started under $dir; waiting for a leader in each datacenter ..."
  for dc in "${dcs[@]}"; do wait_for "a leader in $dc" 90 has_leader "$dc"; done
  wait_for "three datacenters in the WAN pool" 90 bash -c "curl -s --max-time 1 http://$(http_addr onprem)/v1/catalog/datacenters | grep -q space"

  # Written in the primary; the secondaries replicate them.
  api onprem PUT /v1/config '{"Kind":"proxy-defaults","Name":"global","Config":{"protocol":"http"},"MeshGateway":{"Mode":"local"}}' >/dev/null
  api onprem PUT '/v1/connect/intentions/exact?source=*&destination=*' '{"Action":"deny"}' >/dev/null
  for pair in web:payments web:currency payments:currency api:backend backend:payments; do
    api onprem PUT "/v1/connect/intentions/exact?source=${pair%%:*}&destination=${pair##*:}" '{"Action":"allow"}' >/dev/null
  done

  for dc in "${dcs[@]}"; do start_gateway "$dc"; done
  start_app onprem payments payments-v1 'payments v1 (onprem)' 30 1
  start_app onprem payments payments-v2 'payments v2 (onprem)' 40 2 currency
  start_app onprem currency currency-v1 'currency (onprem)' 50 1
  start_app onprem web web 'web (onprem)' 20 1 payments
  start_app cloud currency currency 'currency (cloud)' 50 2
  start_app cloud api api 'api (cloud)' 20 - backend
  start_app space backend backend 'backend (space)' 30 -
  local s dc svc id
  for s in onprem:web:web onprem:payments:payments-v1 onprem:payments:payments-v2 onprem:currency:currency-v1 \
      cloud:currency:currency cloud:api:api space:backend:backend; do
    IFS=: read -r dc svc id <<< "$s"
    wait_for "$id's sidecar passing in $dc" 90 passing "$dc" "$svc-sidecar-proxy" "$id-sidecar-proxy"
  done
  for dc in "${dcs[@]}"; do wait_for "$dc's mesh gateway passing" 60 passing "$dc" mesh-gateway mesh-gateway; done
  status
  cat <<EOF

The story (SCENARIOS.md A1-A7); every config entry is written in onprem:
  curl -s 127.0.0.1:$(port onprem 20)/                     # web -> payments (v1 and v2 answer until a resolver picks one)
  curl -s 127.0.0.1:$(port cloud 20)/                      # api -> backend: fails until the redirect below
  export CONSUL_HTTP_ADDR=$(http_addr onprem)
  echo '{"Kind":"service-resolver","Name":"backend","Redirect":{"Datacenter":"space"}}' | $trellis config write -
  echo '{"Kind":"service-resolver","Name":"currency","Redirect":{"Datacenter":"cloud"}}' | $trellis config write -
  $trellis members -wan
EOF
}

# Every component: "<dc> <name> <pidfile> <address>".
components() {
  for dc in "${dcs[@]}"; do
    echo "$dc server $dir/$dc/server.pid $(http_addr "$dc")"
    echo "$dc mesh-gateway $dir/$dc/gateway.pid 127.0.0.1:$(port "$dc" 10)/wan:$(port "$dc" 11)"
  done
  echo "onprem web $dir/onprem/web.app.pid 127.0.0.1:$(port onprem 20)"
  for id in web payments-v1 payments-v2 currency-v1; do
    echo "onprem $id-sidecar $dir/onprem/$id.sidecar.pid -"
  done
  for id in payments-v1 payments-v2 currency-v1; do echo "onprem $id $dir/onprem/$id.app.pid -"; done
  echo "cloud api $dir/cloud/api.app.pid 127.0.0.1:$(port cloud 20)"
  echo "cloud currency $dir/cloud/currency.app.pid -"
  for id in api currency; do echo "cloud $id-sidecar $dir/cloud/$id.sidecar.pid -"; done
  echo "space backend $dir/space/backend.app.pid -"
  echo "space backend-sidecar $dir/space/backend.sidecar.pid -"
}

status() {
  [ -f "$dir/ports" ] || { echo "federation: no demo under $dir" >&2; exit 1; }
  base="$(cat "$dir/ports")"
  printf '%-8s %-22s %-8s %-28s %s\n' DC COMPONENT PID ADDRESS STATE
  while read -r dc name pidfile addr; do
    local pid="-" state=stopped
    if [ -f "$pidfile" ]; then pid="$(cat "$pidfile")"; kill -0 "$pid" 2>/dev/null && state=running; fi
    printf '%-8s %-22s %-8s %-28s %s\n' "$dc" "$name" "$pid" "$addr" "$state"
  done < <(components)
  if has_leader onprem; then echo; "$trellis" members -wan -http-addr "$(http_addr onprem)" || true; fi
}

stop() {
  [ -f "$dir/ports" ] || { echo "federation: no demo under $dir (nothing to stop)"; return 0; }
  local pids=() f
  # Apps and sidecars first, then gateways, servers last.
  for f in "$dir"/*/*.app.pid "$dir"/*/*.sidecar.pid "$dir"/*/gateway.pid "$dir"/*/server.pid; do
    [ -f "$f" ] || continue
    if pid_alive "$f"; then kill -TERM "$(cat "$f")"; pids+=("$(cat "$f")"); fi
    rm -f "$f"
  done
  for ((t = 0; t < 60; t++)); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.5
  done
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"; done
  echo "federation: stopped ${#pids[@]} process(es); data and logs stay in $dir"
}

case "$cmd" in
  start) start ;;
  status) status ;;
  stop) stop ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
