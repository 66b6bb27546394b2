# Sourced by scripts/test.sh and scripts/bench.sh, from the repository's root, after `say`
# is defined: starts every server the integration tests and the benchmarks use, each on a
# loopback port of its own (DLOCK_TEST_PORT_OFFSET moves them all), its data under
# target/test-servers, exports where each is (DLOCK_TEST_REDIS, DLOCK_TEST_ETCD, …), and
# stops them all on exit (its EXIT trap). The caller may set, before sourcing:
#   postgres_args  more arguments for postgres (e.g. -c shared_preload_libraries=…);
#   azurite_args   more arguments for Azurite (e.g. --debug FILE, to count its requests);
#   servers        where the servers keep their data (default target/test-servers).
# Tests that stop a server mid-test start a private one instead (they find the binaries
# through the DLOCK_TEST_*_SERVER variables).
servers="${servers:-$root/target/test-servers}"
# Two checkouts testing at once on one machine each set a different DLOCK_TEST_PORT_OFFSET.
offset="${DLOCK_TEST_PORT_OFFSET:-0}"
rm -rf "$servers" && mkdir -p "$servers"
pids=()
stop_servers() {
  for pidfile in "${pids[@]}"; do
    [[ -f "$pidfile" ]] || continue
    # PostgreSQL's TERM waits for its clients to leave; INT is its fast shutdown. It is
    # waited for, so the next run finds its port free.
    case "$pidfile" in
      */postgres.pid) kill -INT "$(cat "$pidfile")" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done ;;
      *) kill "$(cat "$pidfile")" 2>/dev/null || true ;;
    esac
  done
  # A server still shutting down after three seconds (Azurite can wait on idle connections)
  # is killed, so no run leaves one behind on its port.
  for pidfile in "${pids[@]}"; do
    [[ -f "$pidfile" ]] || continue
    pid="$(cat "$pidfile")"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}
trap stop_servers EXIT

# start_redis NAME PORT [ARGS…]: a redis-server in the background, data in target/test-servers/NAME.
start_redis() {
  local name="$1" port="$2"
  shift 2
  mkdir -p "$servers/$name"
  pids+=("$servers/$name/redis.pid")
  redis-server --port "$port" --bind 127.0.0.1 --dir "$servers/$name" --save "" \
    --appendonly no --daemonize yes --pidfile "$servers/$name/redis.pid" \
    --logfile "$servers/$name/redis.log" "$@"
  for _ in $(seq 50); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  say "redis-server $name did not start"
  cat "$servers/$name/redis.log" >&2
  exit 1
}

redis_port=$((16379 + offset))
say "redis-server on 127.0.0.1:$redis_port"
start_redis redis "$redis_port"
export DLOCK_TEST_REDIS="127.0.0.1:$redis_port"

cluster_ports=($((16381 + offset)) $((16382 + offset)) $((16383 + offset)))
say "Redis Cluster on 127.0.0.1:${cluster_ports[*]}"
cluster=()
for port in "${cluster_ports[@]}"; do
  start_redis "cluster-$port" "$port" --cluster-enabled yes --cluster-config-file nodes.conf \
    --cluster-node-timeout 2000
  cluster+=("127.0.0.1:$port")
done
redis-cli --cluster create "${cluster[@]}" --cluster-replicas 0 --cluster-yes >"$servers/cluster-create.log"
for port in "${cluster_ports[@]}"; do
  for _ in $(seq 100); do
    redis-cli -p "$port" cluster info | grep -q cluster_state:ok && break
    sleep 0.1
  done
  redis-cli -p "$port" cluster info | grep -q cluster_state:ok || { say "Redis Cluster did not form"; exit 1; }
done
DLOCK_TEST_REDIS_CLUSTER="$(IFS=,; echo "${cluster[*]}")"
export DLOCK_TEST_REDIS_CLUSTER

# Tests that stop a server, and the Sentinel and TLS tests, start private servers with these.
DLOCK_TEST_REDIS_SERVER="$(command -v redis-server)"
DLOCK_TEST_REDIS_CLI="$(command -v redis-cli)"
export DLOCK_TEST_REDIS_SERVER DLOCK_TEST_REDIS_CLI

# etcd: a single member. Its election timeout (600 ms) makes etcd's minimum lease one second
# (1.5 election timeouts, rounded up), which the suite's one-second expiries need; with etcd's
# default (1 s) the minimum is 2 s. The Debian package may also start a system etcd on 2379:
# it is never used.
etcd_port=$((12379 + offset))
etcd_peer_port=$((12380 + offset))
say "etcd on 127.0.0.1:$etcd_port"
mkdir -p "$servers/etcd"
pids+=("$servers/etcd/etcd.pid")
etcd --name dlock-test --data-dir "$servers/etcd/data" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster "dlock-test=http://127.0.0.1:$etcd_peer_port" \
  --heartbeat-interval 100 --election-timeout 600 --logger zap --log-level error \
  >"$servers/etcd/etcd.log" 2>&1 &
echo $! >"$servers/etcd/etcd.pid"
etcd_healthy() {
  ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$etcd_port" --dial-timeout 1s --command-timeout 1s \
    endpoint health >/dev/null 2>&1
}
for _ in $(seq 50); do
  etcd_healthy && break
  sleep 0.2
done
etcd_healthy || { say "etcd did not start"; cat "$servers/etcd/etcd.log" >&2; exit 1; }
export DLOCK_TEST_ETCD="127.0.0.1:$etcd_port"
DLOCK_TEST_ETCD_SERVER="$(command -v etcd)"
DLOCK_TEST_ETCDCTL="$(command -v etcdctl)"
export DLOCK_TEST_ETCD_SERVER DLOCK_TEST_ETCDCTL

# ZooKeeper, standalone, from Debian's package; a tick of 500 ms allows sessions down to 1 s.
zookeeper_port=$((12181 + offset))
say "zookeeper on 127.0.0.1:$zookeeper_port"
mkdir -p "$servers/zookeeper/data"
pids+=("$servers/zookeeper/zookeeper.pid")
cat >"$servers/zookeeper/zoo.cfg" <<EOF
tickTime=500
dataDir=$servers/zookeeper/data
clientPort=$zookeeper_port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=srvr,mntr
EOF
scripts/zookeeper-server.sh "$servers/zookeeper" >/dev/null 2>&1 &
echo $! >"$servers/zookeeper/zookeeper.pid"
# The server answers srvr with its mode once it serves. Every probe is bounded: a connection
# that is accepted but never answered (a server still starting, or a socket that connected to
# itself) must not hang the run, as a bare `cat` on the socket once did in CI.
zookeeper_serving() {
  local answer
  answer="$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$zookeeper_port && printf srvr >&3 && cat <&3" 2>/dev/null)" || true
  [[ "$answer" == *"Mode: "* ]]
}
deadline=$((SECONDS + 60))
until zookeeper_serving; do
  if ((SECONDS >= deadline)); then
    say "zookeeper did not start within 60 s"
    cat "$servers/zookeeper/zookeeper.log" >&2 || true
    exit 1
  fi
  sleep 0.1
done
export DLOCK_TEST_ZOOKEEPER="127.0.0.1:$zookeeper_port"
export DLOCK_TEST_ZOOKEEPER_SERVER="$root/scripts/zookeeper-server.sh"

# PostgreSQL refuses to run as root: initdb and postgres run as the `postgres` user that
# Debian's package creates, through setpriv, which execs (so the pid is postgres's own). The
# superuser is `dlock`, with a password, so tests can also give a wrong one.
pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
export DLOCK_TEST_POSTGRES_BIN="$pg_bin" DLOCK_TEST_POSTGRES_USER=postgres
export DLOCK_TEST_POSTGRES_PASSWORD=dlock-test
# as_postgres CMD…: runs CMD as the postgres user.
as_postgres() { setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@"; }
postgres_port=$((15432 + offset))
say "postgresql on 127.0.0.1:$postgres_port"
mkdir -p "$servers/postgres"
echo "$DLOCK_TEST_POSTGRES_PASSWORD" >"$servers/postgres/password"
chown -R postgres: "$servers/postgres"
as_postgres "$pg_bin/initdb" -D "$servers/postgres/data" -U dlock --pwfile="$servers/postgres/password" \
  -A scram-sha-256 --no-sync >"$servers/postgres/initdb.log" 2>&1 \
  || { say "initdb failed"; cat "$servers/postgres/initdb.log" >&2; exit 1; }
pids+=("$servers/postgres/postgres.pid")
# Not through as_postgres: a function in the background is a subshell, and $! its pid.
setpriv --reuid=postgres --regid=postgres --clear-groups -- "$pg_bin/postgres" -D "$servers/postgres/data" -p "$postgres_port" \
  -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c fsync=off \
  -c max_connections=400 ${postgres_args[@]+"${postgres_args[@]}"} >"$servers/postgres/postgres.log" 2>&1 &
echo $! >"$servers/postgres/postgres.pid"
for _ in $(seq 100); do
  "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$postgres_port" && break
  sleep 0.1
done
"$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$postgres_port" \
  || { say "postgresql did not start"; cat "$servers/postgres/postgres.log" >&2; exit 1; }
export DLOCK_TEST_POSTGRES="127.0.0.1:$postgres_port"

# MariaDB (Debian ships no MySQL), as the mysql user Debian's package creates; the user
# `dlock` has a password, so tests can also give a wrong one.
mariadb_port=$((13306 + offset))
say "mariadb on 127.0.0.1:$mariadb_port"
mkdir -p "$servers/mariadb"
chown mysql: "$servers/mariadb"
mariadb-install-db --user=mysql --datadir="$servers/mariadb/data" --auth-root-authentication-method=normal \
  --skip-test-db >"$servers/mariadb/install.log" 2>&1 \
  || { say "mariadb-install-db failed"; cat "$servers/mariadb/install.log" >&2; exit 1; }
pids+=("$servers/mariadb/mariadb.pid")
mariadbd --no-defaults --user=mysql --datadir="$servers/mariadb/data" --port="$mariadb_port" \
  --bind-address=127.0.0.1 --socket="$servers/mariadb/mariadb.sock" --skip-log-bin \
  --innodb-flush-log-at-trx-commit=0 --max-connections=400 \
  >"$servers/mariadb/mariadb.log" 2>&1 &
echo $! >"$servers/mariadb/mariadb.pid"
export DLOCK_TEST_MYSQL_PASSWORD=dlock-test
for _ in $(seq 100); do
  mariadb --no-defaults -S "$servers/mariadb/mariadb.sock" -u root -e 'SELECT 1' >/dev/null 2>&1 && break
  sleep 0.1
done
mariadb --no-defaults -S "$servers/mariadb/mariadb.sock" -u root -e "
  CREATE USER 'dlock'@'%' IDENTIFIED BY '$DLOCK_TEST_MYSQL_PASSWORD';
  GRANT ALL ON *.* TO 'dlock'@'%';" \
  || { say "mariadb did not start"; cat "$servers/mariadb/mariadb.log" >&2; exit 1; }
export DLOCK_TEST_MYSQL="127.0.0.1:$mariadb_port"
DLOCK_TEST_MARIADB_SERVER="$(command -v mariadbd)"
DLOCK_TEST_MARIADB_INSTALL="$(command -v mariadb-install-db)"
DLOCK_TEST_MARIADB_CLIENT="$(command -v mariadb)"
export DLOCK_TEST_MARIADB_SERVER DLOCK_TEST_MARIADB_INSTALL DLOCK_TEST_MARIADB_CLIENT

# Azurite, the Azure Storage emulator (its blob service only), from npm at a pinned version,
# installed under target/azurite once. It serves the account devstoreaccount1 with its
# well-known key; lock.azure.blobstorage signs its requests with that key, as with a real one.
azurite_version=3.37.0
azurite_dir="$root/target/azurite"
azurite_bin="$azurite_dir/node_modules/.bin/azurite-blob"
installed="$(node -p "require('$azurite_dir/node_modules/azurite/package.json').version" 2>/dev/null || true)"
if [[ "$installed" != "$azurite_version" ]]; then
  say "npm install azurite@$azurite_version"
  mkdir -p "$azurite_dir"
  npm install --prefix "$azurite_dir" --no-audit --no-fund --loglevel=error "azurite@$azurite_version" >&2
fi
azurite_port=$((10100 + offset))
say "azurite on 127.0.0.1:$azurite_port"
mkdir -p "$servers/azurite"
pids+=("$servers/azurite/azurite.pid")
# In memory: the suite leaves thousands of lock blobs, and Azurite saving its database to disk
# every few seconds stalls every request for longer the more there are. Tests that restart
# Azurite start a private one, which keeps its data on disk.
(cd "$servers/azurite" && exec "$azurite_bin" --blobHost 127.0.0.1 --blobPort "$azurite_port" \
  --inMemoryPersistence --silent ${azurite_args[@]+"${azurite_args[@]}"} >"$servers/azurite/azurite.log" 2>&1) &
echo $! >"$servers/azurite/azurite.pid"
# It accepts connections before it answers: ready once it answers HTTP (any status).
azurite_serving() {
  local answer
  answer="$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$azurite_port && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && head -c 5 <&3" 2>/dev/null)" || true
  [[ "$answer" == "HTTP/" ]]
}
for _ in $(seq 200); do
  azurite_serving && break
  sleep 0.1
done
azurite_serving || { say "azurite did not start"; cat "$servers/azurite/azurite.log" >&2; exit 1; }
export DLOCK_TEST_AZURITE="127.0.0.1:$azurite_port"
export DLOCK_TEST_AZURITE_SERVER="$azurite_bin"

