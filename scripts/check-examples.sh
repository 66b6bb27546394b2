#!/usr/bin/env bash
# Checks the deployment examples as far as this machine can without a service manager running,
# a container engine or a cluster (scripts/test.sh runs it in the full run):
#   - examples/systemd/dlockd.service passes `systemd-analyze verify` without a single warning
#     (verify exits 0 on unknown keys and bad values, so any output fails the check). verify
#     wants ExecStart's binary to exist, so a copy whose ExecStart names the dlockd built here
#     is verified instead;
#   - every YAML file under examples/kubernetes/, and each component file embedded in a
#     ConfigMap there, parses as YAML.
# The Dockerfile and the Kubernetes objects themselves are not built or applied by any test.
# Needs systemd-analyze (Debian: systemd) and PyYAML (Debian: python3-yaml).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { echo "check-examples.sh: $*" >&2; }

cargo build --locked --quiet --bin dlockd
dlockd="$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug/dlockd"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

unit=examples/systemd/dlockd.service
say "systemd-analyze verify $unit"
grep -q '^ExecStart=/usr/local/bin/dlockd ' "$unit" \
  || { say "$unit: expected ExecStart=/usr/local/bin/dlockd …"; exit 1; }
sed "s#^ExecStart=/usr/local/bin/dlockd #ExecStart=$dlockd #" "$unit" >"$scratch/dlockd.service"
if ! out="$(cd "$scratch" && systemd-analyze verify ./dlockd.service 2>&1)" || [[ -n "$out" ]]; then
  say "$unit does not verify cleanly:"
  echo "$out" >&2
  exit 1
fi

say "YAML syntax of examples/kubernetes/"
python3 - examples/kubernetes/*.yaml <<'PY'
import sys
import yaml

for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    if not docs:
        sys.exit(f"{path}: no YAML document")
    for doc in docs:
        if doc.get("kind") != "ConfigMap":
            continue
        for key, text in doc.get("data", {}).items():
            if key.endswith((".yaml", ".yml")):
                try:
                    list(yaml.safe_load_all(text))
                except yaml.YAMLError as e:
                    sys.exit(f"{path}: ConfigMap key {key}: {e}")
PY
