#!/usr/bin/env bash
# Runs one ZooKeeper server in the foreground, from Debian's `zookeeper` package, for the tests
# (scripts/test.sh and tests/it/support/servers.rs). DIR holds its zoo.cfg, written by the
# caller (data directory, client port, ensemble members); the server logs to DIR/zookeeper.log,
# never to the terminal. The script becomes the java process (exec), so the caller's pid is the
# server's.
set -euo pipefail
dir="${1:?usage: zookeeper-server.sh DIR (a folder holding zoo.cfg)}"
exec java -Xms32m -Xmx256m -XX:+UseSerialGC \
  -cp /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar \
  -Dorg.slf4j.simpleLogger.logFile="$dir/zookeeper.log" \
  -Dorg.slf4j.simpleLogger.showDateTime=true \
  org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg" </dev/null
