#!/usr/bin/env bash
# dlockd + lock.redis next to raw Redis, in one run: starts a private redis-server and a dlockd
# (release build) on ports of their own, then measures
#   - raw Redis: redis-benchmark running daprd's own commands (SET … EX 10 NX, then EVAL of
#     daprd's release script), pairs/s = 1 / (1/SET rate + 1/EVAL rate);
#   - dlockd: `dlock bench` lock+unlock pairs through the sidecar, and dlockd's own CPU time
#     per pair (utime + stime from /proc);
# at 1 and 50 clients, and prints the ratio. Usage: scripts/bench-redis.sh [REQUESTS]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
requests="${1:-100000}"
redis_port=16479
grpc_port=50791
dir="$root/target/bench-redis"
rm -rf "$dir" && mkdir -p "$dir"

cargo build --release --quiet
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
  --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
cat >"$dir/store.yaml" <<EOF
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: store
spec:
  type: lock.redis
  version: v1
  metadata:
  - name: redisHost
    value: 127.0.0.1:$redis_port
EOF
target/release/dlockd --metrics-port 0 --metrics-listen-address 127.0.0.1 --dapr-http-port 0 --dapr-grpc-port "$grpc_port" \
  --resources-path "$dir/store.yaml" --log-level warn &
dlockd=$!
trap 'kill $dlockd 2>/dev/null || true; kill "$(cat "$dir/redis.pid")" 2>/dev/null || true' EXIT
sleep 1

release='local v = redis.call("get", KEYS[1]); if v == false then return -1 end; if v ~= ARGV[1] then return -2 end; return redis.call("del", KEYS[1])'
rate() { # the requests/s redis-benchmark -q prints
  redis-benchmark -p "$redis_port" -c "$1" -n "$2" -r 1000000 -q "${@:3}" |
    tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1
}
cpu_ticks() { # utime + stime of a process, in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat"
}
pairs() { # bench output line "throughput: N lock+unlock pairs/s …" → N
  grep -o 'throughput: [0-9]*' | cut -d' ' -f2
}

# dlockd at 50 clients over 1, 2 and 4 gRPC connections: one connection is one application's
# SDK channel; several are several applications (or instances) on one sidecar.
runs=("1 1" "50 1" "50 2" "50 4")
for run in "${runs[@]}"; do
  read -r clients connections <<<"$run"
  n=$((clients == 1 ? requests / 10 : requests))
  if [[ "$connections" == 1 ]]; then # raw Redis once per client count
    set_rate=$(rate "$clients" "$n" SET "lock||bench||__rand_int__" owner EX 10 NX)
    eval_rate=$(rate "$clients" "$n" EVAL "$release" 1 "lock||bench||__rand_int__" owner)
    raw=$(echo "1 / (1/$set_rate + 1/$eval_rate)" | bc -l)
  fi
  before=$(cpu_ticks "$dlockd")
  out=$(target/release/dlock --endpoint "127.0.0.1:$grpc_port" --store store bench \
    -c "$clients" --connections "$connections" -n "$n")
  cpu_us=$(echo "($(cpu_ticks "$dlockd") - $before) * 1000000 / $(getconf CLK_TCK) / $n" | bc -l)
  sidecar=$(echo "$out" | pairs)
  latency=$(echo "$out" | grep -o 'p50 [0-9.]* ms, p99 [0-9.]* ms')
  printf '%2d clients, %d conn: dlockd %6d pairs/s (%s, %.0f µs CPU/pair) | raw Redis %6.0f pairs/s (SET %.0f/s, EVAL %.0f/s) | ratio %.0f%%\n' \
    "$clients" "$connections" "$sidecar" "$latency" "$cpu_us" "$raw" "$set_rate" "$eval_rate" \
    "$(echo "100 * $sidecar / $raw" | bc -l)"
done
