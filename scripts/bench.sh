#!/usr/bin/env bash
# Every store through dlockd beside the store's raw minimum, in one run, in one table.
#
# Starts the servers scripts/test.sh starts (scripts/servers.sh, on ports and a data
# directory of their own), then for each store starts a dlockd with that store alone and
# measures, at 1 and 50 clients, each client on its own key:
#   - dlockd: `dlock bench` lock+unlock pairs over gRPC, dlockd's CPU time per pair (utime +
#     stime from /proc, in clock ticks: count enough pairs) and its resident memory after;
#   - raw: the least the store needs for a lock, without the sidecar: redis-benchmark running
#     daprd's own commands (SET … EX 10 NX, then EVAL of daprd's release script; pairs/s =
#     1 / (1/SET rate + 1/EVAL rate)); the raw clients in src/stores/*/raw_bench.rs for
#     PostgreSQL, MySQL, etcd, ZooKeeper and Azure Blob; none for the in-memory store;
#   - what reached the store per pair, from its own counters: writes (Redis: keys changed;
#     PostgreSQL: rows written, pg_stat_statements; MariaDB: INSERT, UPDATE and DELETE
#     statements; etcd: Raft
#     proposals committed; ZooKeeper: transactions, the zxid's growth; Azurite: PUT requests)
#     and requests (Redis: commands, counting those its scripts run; PostgreSQL: statements;
#     MariaDB: prepared statements executed, prepared, reset and closed, and connection resets;
#     etcd: unary gRPC calls; ZooKeeper: packets received; Azurite: requests). Each request is
#     one round trip, but for Redis, where a script's commands run inside one.
# It prints one table and writes it as markdown, with the date and the machine, to
# target/bench/table.md. The servers run as the tests run them: durability off for PostgreSQL
# and MariaDB (fsync=off, innodb_flush_log_at_trx_commit=0), etcd with its fsyncs, Azurite in
# memory.
#
# Usage: scripts/bench.sh [--pairs N] [--profile PROFILE] [--raw-profile PROFILE] [--no-build] [STORE…]
#   STORE: memory redis postgresql mysql etcd zookeeper azure (default: all). N (default 2000)
#   is each run's pairs on the stores that write to disk or speak HTTP; memory and Redis run
#   10 N, enough clock ticks of CPU to count. PROFILE: release (default), profiling, or dev;
#   --raw-profile builds the raw benches in another (default: bench-raw with release, which is
#   release without the whole-program link, whose build of the library's tests would take as
#   long again as dlockd's; the same profile with any other). --no-build runs what is built already.
#   DLOCK_TEST_PORT_OFFSET moves the servers' ports (default 400, clear of the tests' own).
# Run scripts/test.sh once first on a fresh machine: it installs the servers.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { echo "bench.sh: $*" >&2; }

pairs=2000
profile=release
raw_profile=""
build=yes
stores=()
while (($#)); do
  case "$1" in
    --pairs) pairs="$2"; shift 2 ;;
    --profile) profile="$2"; shift 2 ;;
    --raw-profile) raw_profile="$2"; shift 2 ;;
    --no-build) build=""; shift ;;
    memory | redis | postgresql | mysql | etcd | zookeeper | azure) stores+=("$1"); shift ;;
    *) say "unknown argument '$1' (see the usage at the top of scripts/bench.sh)"; exit 2 ;;
  esac
done
((${#stores[@]})) || stores=(memory redis postgresql mysql etcd zookeeper azure)
[[ $profile == release ]] && raw_profile="${raw_profile:-bench-raw}"
raw_profile="${raw_profile:-$profile}"

out="$root/target/bench"
mkdir -p "$out"
# The binaries where cargo puts them (CARGO_TARGET_DIR, if set, moves them).
bin="${CARGO_TARGET_DIR:-$root/target}/$([[ $profile == dev ]] && echo debug || echo "$profile")"
if [[ -n $build ]]; then
  say "cargo build --profile $profile, and the raw benches with --profile $raw_profile"
  cargo build --profile "$profile" --quiet --bins
  cargo test --profile "$raw_profile" --quiet --lib --no-run 2>/dev/null
fi

# --- Servers ---------------------------------------------------------------------------
export DLOCK_TEST_PORT_OFFSET="${DLOCK_TEST_PORT_OFFSET:-400}"
servers="$out/servers"
postgres_args=(-c shared_preload_libraries=pg_stat_statements)
azurite_args=(--debug "$out/azurite-debug.log")
rm -f "$out/azurite-debug.log"
source scripts/servers.sh >/dev/null
dlockd_pid=""
trap 'kill $dlockd_pid 2>/dev/null || true; stop_servers' EXIT
grpc_port=$((50600 + DLOCK_TEST_PORT_OFFSET))
http_port=$((3600 + DLOCK_TEST_PORT_OFFSET))

psql() {
  PGPASSWORD="$DLOCK_TEST_POSTGRES_PASSWORD" "$pg_bin/psql" -h 127.0.0.1 -p "$postgres_port" \
    -U dlock -d postgres -XAtq "$@"
}
mariadb_root() { mariadb --no-defaults -S "$servers/mariadb/mariadb.sock" -u root -N "$@"; }
psql -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements'

# --- What each store counted -------------------------------------------------------------
# counted STORE: "WRITES ROUND_TRIPS" so far, by the store's own counters.
counted() {
  case "$1" in
    memory) echo "0 0" ;;
    redis)
      redis-cli -p "$redis_port" info all | tr -d '\r' | awk -F: '
        $1 == "rdb_changes_since_last_save" { w = $2 } $1 == "total_commands_processed" { r = $2 }
        END { print w + 0, r + 0 }' ;;
    postgresql)
      psql -F ' ' -c "SELECT coalesce(sum(rows) FILTER (WHERE query ~* '^\s*(insert|update|delete|with)'), 0),
        coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%'" ;;
    mysql)
      # A prepared statement's execution counts in Com_stmt_execute and in its own Com_ too.
      mariadb_root -e "SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_insert', 'Com_update',
        'Com_delete', 'Com_stmt_execute', 'Com_stmt_prepare', 'Com_stmt_reset', 'Com_stmt_close',
        'Com_admin_commands')" |
        awk '/^Com_(insert|update|delete)\t/ { w += $2; next } { r += $2 } END { print w + 0, r + 0 }' ;;
    etcd)
      curl -sf "http://$DLOCK_TEST_ETCD/metrics" | awk '
        /^etcd_server_proposals_committed_total / { w = $2 }
        /^grpc_server_handled_total\{.*grpc_type="unary"/ { r += $2 }
        END { printf "%d %d\n", w, r }' ;;
    zookeeper)
      local zxid packets
      zxid="$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$zookeeper_port && printf srvr >&3 && cat <&3" |
        awk '/^Zxid:/ { print $2 }')"
      packets="$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$zookeeper_port && printf mntr >&3 && cat <&3" |
        awk '$1 == "zk_packets_received" { print $2 }')"
      echo "$((zxid & 0xffffffff)) $packets" ;;
    azure)
      # Azurite writes its debug log a little after each request.
      sleep 5
      awk '/BlobStorageContextMiddleware: RequestMethod=/ { r++; if (/RequestMethod=PUT/) w++ }
        END { print w + 0, r + 0 }' "$out/azurite-debug.log" ;;
  esac
}
# per_pair BEFORE AFTER N: "writes/pair round-trips/pair".
per_pair() {
  awk -v b="$1" -v a="$2" -v n="$3" 'BEGIN {
    split(b, x, " "); split(a, y, " "); printf "%.2f %.2f", (y[1] - x[1]) / n, (y[2] - x[2]) / n }'
}

# --- dlockd ----------------------------------------------------------------------------
component() { # component STORE: the component file of that store, named `store`
  local type metadata
  case "$1" in
    memory) type=lock.in-memory metadata="" ;;
    redis) type=lock.redis metadata="  - {name: redisHost, value: \"$DLOCK_TEST_REDIS\"}" ;;
    postgresql) type=lock.postgresql metadata="  - {name: connectionString, value: \"host=127.0.0.1 \
port=$postgres_port user=dlock password=$DLOCK_TEST_POSTGRES_PASSWORD dbname=postgres\"}" ;;
    mysql) type=lock.mysql metadata="  - {name: connectionString, value: \"dlock:$DLOCK_TEST_MYSQL_PASSWORD@tcp(\
$DLOCK_TEST_MYSQL)/\"}" ;;
    etcd) type=lock.etcd metadata="  - {name: endpoints, value: \"$DLOCK_TEST_ETCD\"}" ;;
    zookeeper) type=lock.zookeeper metadata="  - {name: servers, value: \"$DLOCK_TEST_ZOOKEEPER\"}" ;;
    azure) type=lock.azure.blobstorage metadata="  - {name: connectionString, value: \"DefaultEndpointsProtocol=http;\
AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;\
BlobEndpoint=http://$DLOCK_TEST_AZURITE/devstoreaccount1;\"}
  - {name: containerName, value: dlock-bench}" ;;
  esac
  mkdir -p "$out/components/$1"
  printf 'apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: store\nspec:\n  type: %s\n  version: v1\n  metadata:\n%s\n' \
    "$type" "$metadata" >"$out/components/$1/store.yaml"
  echo "$out/components/$1"
}
start_dlockd() {
  "$bin/dlockd" --metrics-port 0 --metrics-listen-address 127.0.0.1 --dapr-grpc-port "$grpc_port" \
    --dapr-http-port "$http_port" --resources-path "$(component "$1")" --log-level warn \
    >"$out/dlockd-$1.log" 2>&1 &
  dlockd_pid=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$http_port/v1.0/healthz" >/dev/null && return 0
    sleep 0.1
  done
  say "dlockd on $1 did not start"; cat "$out/dlockd-$1.log" >&2; exit 1
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$dlockd_pid/stat"; }
rss_mib() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$dlockd_pid/status"; }

# --- The raw minimum -------------------------------------------------------------------
# raw STORE CLIENTS N: the raw pairs/s, its output kept in $out/raw-STORE-CLIENTS.log.
raw() {
  local store="$1" clients="$2" n="$3" log="$out/raw-$1-$2.log"
  case "$store" in
    memory) echo "-" ; return ;;
    redis)
      local release set_rate eval_rate
      release='local v = redis.call("get", KEYS[1]); if v == false then return -1 end; if v ~= ARGV[1] then return -2 end; return redis.call("del", KEYS[1])'
      rate() {
        redis-benchmark -p "$redis_port" -c "$clients" -n "$n" -r 1000000 -q "$@" | tee -a "$log" |
          tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1
      }
      : >"$log"
      set_rate=$(rate SET "lock||bench||__rand_int__" owner EX 10 NX)
      eval_rate=$(rate EVAL "$release" 1 "lock||bench||__rand_int__" owner)
      awk -v s="$set_rate" -v e="$eval_rate" 'BEGIN { printf "%.0f", 1 / (1 / s + 1 / e) }' ;;
    *)
      local test
      case "$store" in
        azure) test=stores::azure_blob::raw_bench::raw_lease_pairs ;;
        *) test="stores::$store::raw_bench::raw_pairs" ;;
      esac
      DLOCK_BENCH_CLIENTS="$clients" DLOCK_BENCH_PAIRS="$n" \
        DLOCK_BENCH_POSTGRES="host=127.0.0.1 port=$postgres_port user=dlock password=$DLOCK_TEST_POSTGRES_PASSWORD dbname=postgres" \
        DLOCK_BENCH_MYSQL="dlock:$DLOCK_TEST_MYSQL_PASSWORD@tcp($DLOCK_TEST_MYSQL)/" \
        DLOCK_BENCH_ETCD="$DLOCK_TEST_ETCD" DLOCK_BENCH_ZOOKEEPER="$DLOCK_TEST_ZOOKEEPER" \
        DLOCK_BENCH_AZURITE="$DLOCK_TEST_AZURITE" \
        cargo test --profile "$raw_profile" --quiet --lib "$test" -- --exact --ignored --nocapture >"$log" 2>&1 \
        || { say "the raw bench of $store failed"; cat "$log" >&2; exit 1; }
      grep -E "^raw .*, $clients clients:" "$log" | grep -oE '[0-9]+ pairs/s' | cut -d' ' -f1 ;;
  esac
}

# --- The runs --------------------------------------------------------------------------
rows=()
for store in "${stores[@]}"; do
  n="$pairs"
  [[ $store == memory || $store == redis ]] && n=$((pairs * 10))
  start_dlockd "$store"
  # A first lock: connections, prepared statements and shared leases are made before counting.
  "$bin/dlock" --endpoint "127.0.0.1:$grpc_port" --store store bench -c 1 -n 10 >/dev/null
  for clients in 1 50; do
    say "$store, $clients clients, $n pairs"
    before="$(counted "$store")"
    ticks=$(cpu_ticks)
    bench_out="$("$bin/dlock" --endpoint "127.0.0.1:$grpc_port" --store store bench -c "$clients" -n "$n" 2>&1)" \
      || { say "dlock bench on $store failed"; echo "$bench_out" >&2; exit 1; }
    cpu_us=$(awk -v t="$(($(cpu_ticks) - ticks))" -v hz="$(getconf CLK_TCK)" -v n="$n" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
    echo "$bench_out" >"$out/dlockd-$store-$clients.log"
    read -r writes trips <<<"$(per_pair "$before" "$(counted "$store")" "$n")"
    rate="$(grep -oE 'throughput: [0-9]+' <<<"$bench_out" | cut -d' ' -f2)"
    before="$(counted "$store")"
    raw_rate="$(raw "$store" "$clients" "$n")"
    [[ -n $raw_rate ]] || { say "no raw figure for $store at $clients clients"; exit 1; }
    raw_writes="-" raw_trips="-" ratio="-"
    if [[ $raw_rate != - ]]; then
      ratio="$(awk -v a="$rate" -v b="$raw_rate" 'BEGIN { printf "%.0f%%", 100 * a / b }')"
      read -r raw_writes raw_trips <<<"$(per_pair "$before" "$(counted "$store")" "$n")"
    fi
    [[ $store == memory ]] && writes="-" trips="-"
    rows+=("$store|$clients|$rate|$raw_rate|$ratio|$writes ($raw_writes)|$trips ($raw_trips)|$cpu_us|$(rss_mib)")
    say "${rows[-1]}"
  done
  kill "$dlockd_pid"
  wait "$dlockd_pid" 2>/dev/null || true
  dlockd_pid=""
done

# --- The table -------------------------------------------------------------------------
heading="store|clients|pairs/s dlockd|pairs/s raw|ratio|writes/pair dlockd (raw)|requests/pair dlockd (raw)|dlockd CPU µs/pair|dlockd RSS MiB"
# Aligned where `column` is there (bsdextrautils, not on every fresh machine); tab-separated if not.
align() { if command -v column >/dev/null; then column -t -s '|'; else tr '|' '\t'; fi; }
{ echo "$heading"; printf '%s\n' "${rows[@]}"; } | align
machine="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores"
{
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`scripts/bench.sh --pairs $pairs --profile $profile --raw-profile $raw_profile\` on $machine"
  echo "(memory and Redis: $((pairs * 10)) pairs per run, the others $pairs)."
  echo
  echo "| ${heading//|/ | } |"
  awk -F'|' '{ for (i = 1; i <= NF; i++) printf "| --- "; print "|" }' <<<"$heading"
  for row in "${rows[@]}"; do echo "| ${row//|/ | } |"; done
} >"$out/table.md"
say "the table in markdown: target/bench/table.md"
