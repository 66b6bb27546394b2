#!/usr/bin/env bash
# The project's test command (the README's, and what .ci/run calls). On a brand-new Debian
# machine with the Rust toolchain it installs what the tests need, then runs every test:
# formatting and lints, unit tests, and the integration suite (tests/it), which starts real
# dlockd sidecars on loopback ports of their own and drives them with dlock and the official
# Dapr SDKs. Anything it starts lives under target/ and is stopped when the tests end.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { echo "test.sh: $*" >&2; }

# --- What a fresh machine lacks ------------------------------------------------------
need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-venv)
[[ -e /usr/share/java/zookeeper.jar ]] || need_apt+=(zookeeper)
if ((${#need_apt[@]})); then
  say "apt-get install ${need_apt[*]}"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}" >&2
fi
scripts/install-sdks.sh >/dev/null

# --- Checks --------------------------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

# --- Servers the tests share ------------------------------------------------------------
# Each on a loopback port of its own, its data under target/test-servers, stopped on exit.
# Tests that stop a server mid-test start a private one instead (they find the binaries
# through the DLOCK_TEST_*_SERVER variables).
servers="$root/target/test-servers"
rm -rf "$servers" && mkdir -p "$servers/redis" "$servers/zookeeper/data"
stop_servers() {
  if [[ -f "$servers/redis/redis.pid" ]]; then kill "$(cat "$servers/redis/redis.pid")" 2>/dev/null || true; fi
  if [[ -f "$servers/zookeeper/zookeeper.pid" ]]; then kill "$(cat "$servers/zookeeper/zookeeper.pid")" 2>/dev/null || true; fi
}
trap stop_servers EXIT
redis_port=16379
say "redis-server on 127.0.0.1:$redis_port"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$servers/redis" --save "" \
  --appendonly no --daemonize yes --pidfile "$servers/redis/redis.pid" \
  --logfile "$servers/redis/redis.log"
for _ in $(seq 50); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -p "$redis_port" ping >/dev/null || { say "redis-server did not start"; cat "$servers/redis/redis.log" >&2; exit 1; }
export DLOCK_TEST_REDIS="127.0.0.1:$redis_port"
DLOCK_TEST_REDIS_SERVER="$(command -v redis-server)"
export DLOCK_TEST_REDIS_SERVER

# ZooKeeper, standalone, from Debian's package; a tick of 500 ms allows sessions down to 1 s.
zookeeper_port=12181
say "zookeeper on 127.0.0.1:$zookeeper_port"
cat >"$servers/zookeeper/zoo.cfg" <<EOF
tickTime=500
dataDir=$servers/zookeeper/data
clientPort=$zookeeper_port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=srvr
EOF
scripts/zookeeper-server.sh "$servers/zookeeper" >/dev/null 2>&1 &
echo $! >"$servers/zookeeper/zookeeper.pid"
zookeeper_serving() { # the server answers srvr with its mode once it serves
  { exec 3<>"/dev/tcp/127.0.0.1/$zookeeper_port"; } 2>/dev/null || return 1
  printf srvr >&3
  local answer
  answer="$(cat <&3)"
  exec 3<&-
  [[ "$answer" == *"Mode: "* ]]
}
for _ in $(seq 300); do
  zookeeper_serving && break
  sleep 0.1
done
zookeeper_serving || { say "zookeeper did not start"; cat "$servers/zookeeper/zookeeper.log" >&2; exit 1; }
export DLOCK_TEST_ZOOKEEPER="127.0.0.1:$zookeeper_port"
export DLOCK_TEST_ZOOKEEPER_SERVER="$root/scripts/zookeeper-server.sh"

# --- Tests ---------------------------------------------------------------------------
# The SDK tests find the venv's Python here; a missing SDK fails them, never skips them.
export DLOCK_TEST_PYTHON="$root/target/sdk/venv/bin/python"
say "cargo test"
# No exec: the trap above stops the servers when the tests end.
cargo test --locked --all-targets
