#!/usr/bin/env bash
# The scale benchmark (tests/it/scale.rs): K sidecars × W clients all waiting in the blocking
# acquire for one key, at K = 1 (32 clients on one sidecar) and K = 8 (4 on each), for each
# store given (all by default). Per run it prints grants/s, each sidecar's grants against its
# fair share, the spread per client, the longest wait, and the store's own operations per grant
# (Redis INFO commandstats, PostgreSQL's pg_stat_database, MariaDB's status counters, etcd's and
# ZooKeeper's metrics), then the ratio of grants at K = 8 to K = 1. The servers are the ones
# scripts/test.sh starts; each store runs alone, so its counters count this run only.
#   scripts/bench-scale.sh [STORE…]   STORE: redis redis_cluster postgresql mysql etcd
#                                            zookeeper azure_blob
#   DLOCK_SCALE_SECONDS=N             the length of each run (10 s by default)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
stores=("$@")
((${#stores[@]})) || stores=(redis redis_cluster postgresql mysql etcd zookeeper azure_blob)
for store in "${stores[@]}"; do
  scripts/test.sh "scale::$store" --exact --ignored --nocapture 2>&1 | grep '^scale:'
done
