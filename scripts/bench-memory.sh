#!/usr/bin/env bash
# What dlockd's memory does idle, through a burst of short locks, and through a burst of hostile
# HTTP traffic, on the embedded store: starts a dlockd (release build) on ports of its own and
#   - reads its resident memory idle (after a few locks, as a sidecar that has served anything);
#   - sends a burst of one-second locks on fresh keys, left to expire (`dlock bench --keys
#     expiring`), and prints the peak and what is resident each second for 10 s after, once
#     every lock has expired and been swept;
#   - sends a burst of hostile HTTP requests (heads of 64 KiB and of 384 KiB, bodies that break
#     off after 2 MB, broken chunked encodings after 1 MiB of chunks, bodies over the limit,
#     garbage instead of a request line) over 100 connections at a time, and prints the peak
#     and what is resident each second for 10 s after;
# and prints the three figures with their ratios to idle on its last lines.
# Usage: scripts/bench-memory.sh [--profile PROFILE | --bin-dir DIR] [LOCKS] [HOSTILE_REQUESTS]
#   (defaults release, 200000 and 3000). Another profile (`dev`: minutes to build rather than
#   the release build's quarter of an hour) shows what a change keeps after a burst, not the
#   figures a release build has: its idle is larger. --bin-dir measures the dlockd and dlock
#   found there, built by nothing here: e.g. an unpacked release archive's static binaries.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
profile=release
bin=""
case "${1:-}" in
  --profile) profile="$2"; shift 2 ;;
  --bin-dir) bin="$(cd "$2" && pwd)"; shift 2 ;;
esac
locks="${1:-200000}"
hostile="${2:-3000}"
grpc_port=50792
http_port=3792

if [[ -z $bin ]]; then
  cargo build --profile "$profile" --quiet --bins
  # The binaries where cargo puts them (CARGO_TARGET_DIR, if set, moves them).
  bin="${CARGO_TARGET_DIR:-$root/target}/$([[ $profile == dev ]] && echo debug || echo "$profile")"
fi
"$bin/dlockd" --metrics-port 0 --metrics-listen-address 127.0.0.1 --dapr-grpc-port "$grpc_port" --dapr-http-port "$http_port" \
  --log-level warn &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$http_port/v1.0/healthz" >/dev/null; do sleep 0.1; done

rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$pid/status"; }
# Warm up with a few locks, as a sidecar that has served anything has.
"$bin/dlock" --endpoint "127.0.0.1:$grpc_port" bench -c 4 -n 1000 >/dev/null
sleep 2
idle=$(rss)
"$bin/dlock" --endpoint "127.0.0.1:$grpc_port" bench --keys expiring --expiry 1 \
  -c 50 -n "$locks" | sed 's/^/  /'
peak=$(hwm)
# settle: what is resident each second for 10 s; the last is kept in $after.
settle() {
  for waited in 1 2 3 4 5 6 7 8 9 10; do
    sleep 1
    after=$(rss)
    echo "  ${waited}s after the burst: ${after} KiB resident"
  done
}
# Every lock expires a second after its grant; the sweep runs every second.
settle
after_locks=$after

echo "  hostile HTTP: $hostile requests, 100 connections at a time"
# Resets the peak (VmHWM), so the next one is the hostile burst's own.
echo 5 >"/proc/$pid/clear_refs"
python3 - "$http_port" "$hostile" 100 <<'PY'
import socket, sys, threading

port, total, workers = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
body = b'{"resourceId":"hostile","lockOwner":"h","expiryInSeconds":1}'

def head(extra):
    return ("POST /v1.0-alpha1/lock/lockstore HTTP/1.1\r\nHost: x\r\n" + extra).encode()

def pad(count, size):
    return "".join(f"X-Pad-{i}: {'a' * size}\r\n" for i in range(count))

requests = [
    head(pad(60, 1024) + f"Content-Length: {len(body)}\r\n\r\n") + body,
    head(pad(96, 4096) + "Content-Length: 2\r\n\r\n{}"),
    head("Content-Length: 4000000\r\n\r\n") + b"a" * 2_000_000,
    head("Transfer-Encoding: chunked\r\n\r\n") + b"100000\r\n" + b"a" * 0x100000 + b"\r\nzz\r\n",
    head("Content-Length: 8000000\r\n\r\n") + b"a" * 65536,
    b"\x16\x03\x01" + b"\xff" * 70000,
]
left = [total]
lock = threading.Lock()

def client():
    while True:
        with lock:
            if left[0] == 0:
                return
            left[0] -= 1
            request = requests[left[0] % len(requests)]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                try:
                    s.sendall(request)
                    s.shutdown(socket.SHUT_WR)
                    while s.recv(65536):
                        pass
                except OSError:
                    pass  # refused halfway: what a hostile client gets
        except OSError:
            pass

threads = [threading.Thread(target=client) for _ in range(workers)]
for t in threads:
    t.start()
for t in threads:
    t.join()
PY
hostile_peak=$(hwm)
settle
awk -v i="$idle" -v p="$peak" -v a="$after_locks" -v hp="$hostile_peak" -v h="$after" \
  -v locks="$locks" -v hostile="$hostile" 'BEGIN {
  printf "dlockd idle on lock.in-memory: %.1f MiB resident\n", i/1024
  printf "after %s one-second locks: peak %.1f MiB, 10 s after %.1f MiB (%.2fx idle)\n", locks, p/1024, a/1024, a/i
  printf "after %s hostile HTTP requests: peak %.1f MiB, 10 s after %.1f MiB (%.2fx idle)\n", hostile, hp/1024, h/1024, h/i
}'
