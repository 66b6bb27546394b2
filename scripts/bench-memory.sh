#!/usr/bin/env bash
# What dlockd's memory does through a burst of short locks on the embedded store: starts a
# dlockd (release build) on ports of its own, reads its resident memory idle, sends a burst of
# one-second locks on fresh keys, left to expire (`dlock bench --keys expiring`), and prints the
# peak and what is resident once every lock has expired and been swept, with the ratio to idle.
# Usage: scripts/bench-memory.sh [LOCKS]   (default 200000)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
locks="${1:-200000}"
grpc_port=50792
http_port=3792

cargo build --release --quiet
target/release/dlockd --metrics-port 0 --metrics-listen-address 127.0.0.1 --dapr-grpc-port "$grpc_port" --dapr-http-port "$http_port" \
  --log-level warn &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$http_port/v1.0/healthz" >/dev/null; do sleep 0.1; done

rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$pid/status"; }
# Warm up with a few locks, as a sidecar that has served anything has.
target/release/dlock --endpoint "127.0.0.1:$grpc_port" bench -c 4 -n 1000 >/dev/null
sleep 2
idle=$(rss)
target/release/dlock --endpoint "127.0.0.1:$grpc_port" bench --keys expiring --expiry 1 \
  -c 50 -n "$locks" | sed 's/^/  /'
peak=$(hwm)
# Every lock expires a second after its grant; the sweep runs every second.
for waited in 1 2 3 4 5 6 7 8 9 10; do
  sleep 1
  after=$(rss)
  echo "  ${waited}s after the burst: ${after} KiB resident"
done
awk -v i="$idle" -v p="$peak" -v a="$after" 'BEGIN {
  printf "dlockd, %s one-second locks on lock.in-memory: idle %.1f MiB, peak %.1f MiB, 10 s after %.1f MiB (%.2fx idle)\n",
    ARGV[1], i/1024, p/1024, a/1024, a/i }' "$locks"
