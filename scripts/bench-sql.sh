#!/usr/bin/env bash
# dlockd + lock.postgresql and lock.mysql next to the raw cost of the same statements, in one
# run, on a private PostgreSQL and MariaDB (the ones scripts/test.sh installs, started the same
# way, under target/bench-sql on ports of their own; as root they run as the postgres and
# mysql users). For each store it measures
#   - raw: the store's take and release statements, straight through its own pool
#     (src/stores/{postgresql,mysql}/raw_bench.rs), at 1 and 50 clients;
#   - dlockd: `dlock bench` lock+unlock pairs through the sidecar, at 1 and 50 clients, each
#     client on its own key;
#   - what reached the server per pair, from its own counters: on PostgreSQL the statements
#     executed (pg_stat_statements; with the prepared statements cached, each is one round
#     trip); on MariaDB the commands, each one round trip: statements executed and prepared,
#     connection resets or user changes (Com_admin_commands; a user change, as a pooled
#     connection is reset, also counts in Connections), and SELECTs.
# The servers run as scripts/test.sh runs them: durability off (fsync=off,
# innodb_flush_log_at_trx_commit=0), so the figures are the round trips and the servers'
# work, not the disk's.
# Usage: scripts/bench-sql.sh [PAIRS] [PROFILE]   (PROFILE: release, the default, or dev)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
pairs="${1:-2000}"
profile="${2:-release}"
postgres_port=15590
mariadb_port=13590
grpc_port=50892
dir="$root/target/bench-sql"
password=dlock-bench
# The binaries where cargo puts them (CARGO_TARGET_DIR, if set, moves them).
bin="${CARGO_TARGET_DIR:-$root/target}/$([[ $profile == dev ]] && echo debug || echo "$profile")"
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[[ -x "$pg_bin/postgres" ]] && command -v mariadbd >/dev/null \
  || { echo "run scripts/test.sh once first: it installs PostgreSQL and MariaDB" >&2; exit 1; }

# Both servers refuse to run as root: as root, PostgreSQL runs as the postgres user through
# setpriv, which execs (so $! is postgres's own pid), and MariaDB switches to mysql by itself.
as_postgres=() as_mysql=()
[[ $EUID -eq 0 ]] && as_postgres=(setpriv --reuid=postgres --regid=postgres --clear-groups --) \
  && as_mysql=(--user=mysql)
stop() {
  # dlockd first, while its servers are up; PostgreSQL's INT is its fast shutdown.
  kill ${dlockd:-} 2>/dev/null || true
  kill -INT ${postgres:-} 2>/dev/null || true
  kill ${mariadb:-} 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop EXIT
[[ -d "$dir" ]] && rm -rf "$dir"
mkdir -p "$dir/postgres" "$dir/mariadb" "$dir/components"

cargo build --profile "$profile" --quiet --bins

echo "$password" >"$dir/postgres/password"
[[ $EUID -eq 0 ]] && chown -R postgres: "$dir/postgres" && chown mysql: "$dir/mariadb"
"${as_postgres[@]}" "$pg_bin/initdb" -D "$dir/postgres/data" -U dlock --pwfile="$dir/postgres/password" \
  -A scram-sha-256 --no-sync >"$dir/postgres/initdb.log" 2>&1
"${as_postgres[@]}" "$pg_bin/postgres" -D "$dir/postgres/data" -p "$postgres_port" \
  -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c fsync=off -c max_connections=400 \
  -c shared_preload_libraries=pg_stat_statements >"$dir/postgres/postgres.log" 2>&1 &
postgres=$!
mariadb-install-db --no-defaults "${as_mysql[@]}" --datadir="$dir/mariadb/data" \
  --auth-root-authentication-method=normal --skip-test-db >"$dir/mariadb/install.log" 2>&1
mariadbd --no-defaults "${as_mysql[@]}" --datadir="$dir/mariadb/data" --port="$mariadb_port" \
  --bind-address=127.0.0.1 --socket="$dir/mariadb/mariadb.sock" --skip-log-bin \
  --innodb-flush-log-at-trx-commit=0 --max-connections=400 >"$dir/mariadb/mariadb.log" 2>&1 &
mariadb=$!

psql() { PGPASSWORD="$password" "$pg_bin/psql" -h 127.0.0.1 -p "$postgres_port" -U dlock -d postgres -XAtq "$@"; }
mariadb_root() { mariadb --no-defaults -S "$dir/mariadb/mariadb.sock" -u root -N "$@"; }
for _ in $(seq 100); do
  "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$postgres_port" && mariadb_root -e 'SELECT 1' >/dev/null 2>&1 && break
  sleep 0.1
done
psql -c 'CREATE EXTENSION pg_stat_statements'
mariadb_root -e "CREATE USER 'dlock'@'%' IDENTIFIED BY '$password'; GRANT ALL ON *.* TO 'dlock'@'%';"

postgres_connection="host=127.0.0.1 port=$postgres_port user=dlock password=$password dbname=postgres"
mysql_dsn="dlock:$password@tcp(127.0.0.1:$mariadb_port)/"
for store in postgresql mysql; do
  connection="$([[ $store == postgresql ]] && echo "$postgres_connection" || echo "$mysql_dsn")"
  cat >"$dir/components/$store.yaml" <<YAML
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: $store
spec:
  type: lock.$store
  version: v1
  metadata:
  - name: connectionString
    value: "$connection"
YAML
done
"$bin/dlockd" --metrics-port 0 --metrics-listen-address 127.0.0.1 --dapr-http-port 0 --dapr-grpc-port "$grpc_port" \
  --resources-path "$dir/components" --log-level warn &
dlockd=$!

# What reached each server so far: statements executed on PostgreSQL (leaving out these
# counting queries); on MariaDB the commands by kind, name=count.
counted() {
  if [[ $1 == postgresql ]]; then
    echo "statements=$(psql -c "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%'")"
  else
    mariadb_root -e "SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_stmt_execute', 'Com_stmt_prepare',
      'Com_admin_commands', 'Com_select', 'Connections')" | awk '{ printf "%s=%s ", $1, $2 }'
  fi
}
# per_pair BEFORE AFTER: each counter's growth per pair.
per_pair() {
  awk -v before="$1" -v after="$2" -v pairs="$pairs" 'BEGIN {
    n = split(before, b, " "); split(after, a, " ")
    for (i = 1; i <= n; i++) { split(b[i], x, "="); split(a[i], y, "=")
      printf "%s%s %.2f", (i > 1 ? ", " : ""), x[1], (y[2] - x[2]) / pairs }
  }'
}
# One run: LABEL CLIENTS STORE CMD…; keeps a table row.
rows=()
measure() {
  local label="$1" clients="$2" store="$3" out before after
  shift 3
  before="$(counted "$store")"
  out="$("$@" 2>&1)" || { echo "$out" >&2; exit 1; }
  after="$(counted "$store")"
  echo "$out"
  local rate p50 p99
  rate="$(grep -oE '[0-9]+ (lock\+unlock )?pairs/s' <<<"$out" | grep -oE '^[0-9]+')"
  p50="$(grep -oE 'p50 [0-9.]+' <<<"$out" | cut -d' ' -f2)"
  p99="$(grep -oE 'p99 [0-9.]+' <<<"$out" | cut -d' ' -f2)"
  rows+=("$(printf '%-12s %-30s %7s %9s %8s %8s   %s' "$store" "$label" "$clients" "$rate" "$p50" "$p99" "$(per_pair "$before" "$after")")")
}
raw() {
  local test="$1" clients="$2"
  DLOCK_BENCH_CLIENTS="$clients" DLOCK_BENCH_PAIRS="$pairs" DLOCK_BENCH_POSTGRES="$postgres_connection" \
    DLOCK_BENCH_MYSQL="$mysql_dsn" cargo test --profile "$profile" --quiet --lib "$test" -- \
    --exact --ignored --nocapture 2>&1 | grep -E '^raw|panicked'
}

for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$grpc_port") 2>/dev/null && break
  sleep 0.1
done
sleep 2
for store in postgresql mysql; do
  for clients in 1 50; do
    echo "== $store: raw statements, $clients clients"
    measure "raw, the store's pool" "$clients" "$store" raw "stores::$store::raw_bench::raw_pairs" "$clients"
    echo "== $store: dlock bench through dlockd, $clients clients"
    measure "dlock bench via dlockd" "$clients" "$store" \
      "$bin/dlock" bench --endpoint "127.0.0.1:$grpc_port" --store "$store" -c "$clients" -n "$pairs"
  done
done
echo "== PostgreSQL's statements over the whole run"
psql -F ' | ' -c "SELECT calls, left(regexp_replace(query, '\s+', ' ', 'g'), 110) FROM pg_stat_statements
  WHERE query NOT LIKE '%pg_stat_statements%' ORDER BY calls DESC LIMIT 6"

echo
printf '%-12s %-30s %7s %9s %8s %8s   %s\n' store path clients pairs/s "p50 ms" "p99 ms" "per pair"
printf '%s\n' "${rows[@]}"
