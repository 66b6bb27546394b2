#!/usr/bin/env bash
# Installs the official Dapr SDKs used by the real-SDK end-to-end tests (tests/sdk/):
#   - Python `dapr` (tests/sdk/python/requirements.txt) into the venv target/sdk/venv
#   - JavaScript `@dapr/dapr` (tests/sdk/js/package-lock.json) into tests/sdk/js/node_modules
# Why: those tests prove an unmodified SDK talks to dlockd as it would to daprd; they need
# pinned SDKs installed the same way on any machine. Needs python3 (with venv) and node/npm.
# Idempotent: a stamp file holding the hash of each pin file skips work already done.
# node_modules/ under tests/sdk/js is ignored by .gitignore. Progress goes to stderr; the only stdout line is `sdk: python=<venv python> node=<node>`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log() { echo "install-sdks: $*" >&2; }

sdk_dir="$root/target/sdk"
venv="$sdk_dir/venv"
req="tests/sdk/python/requirements.txt"
js_dir="tests/sdk/js"
mkdir -p "$sdk_dir"

# --- Python --------------------------------------------------------------------------
py_stamp="$sdk_dir/python.stamp"
py_hash="$(sha256sum "$req" | cut -d' ' -f1) $(python3 --version 2>&1)"
if [[ -x "$venv/bin/python" && -f "$py_stamp" && "$(cat "$py_stamp")" == "$py_hash" ]]; then
  log "python SDK up to date ($venv)"
else
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    log "python3 has no venv/ensurepip module: apt-get install -y python3-venv"
    apt-get update -q >&2
    apt-get install -y python3-venv >&2
  fi
  log "creating venv $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  log "pip install -r $req"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req" >&2
  "$venv/bin/python" -c 'import dapr.clients' # fail here, not in the test, if it does not import
  echo "$py_hash" > "$py_stamp"
fi

# --- JavaScript ----------------------------------------------------------------------
js_stamp="$sdk_dir/js.stamp"
js_hash="$(cat "$js_dir/package.json" "$js_dir/package-lock.json" | sha256sum | cut -d' ' -f1) $(node --version)"
if [[ -d "$js_dir/node_modules/@dapr/dapr" && -f "$js_stamp" && "$(cat "$js_stamp")" == "$js_hash" ]]; then
  log "js SDK up to date ($js_dir/node_modules)"
else
  log "npm ci in $js_dir"
  (cd "$js_dir" && npm ci --no-audit --no-fund >&2)
  (cd "$js_dir" && node --input-type=module -e 'await import("@dapr/dapr")' >&2)
  echo "$js_hash" > "$js_stamp"
fi

echo "sdk: python=$venv/bin/python node=$(command -v node)"
