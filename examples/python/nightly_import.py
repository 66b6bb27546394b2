#!/usr/bin/env python3
"""The nightly import, run on every server of a cluster, but at most 3 at once: a semaphore.

Each run takes a place in the shared lock `nightly-import` with a limit of 3 through the
sidecar's HTTP API (`/dlock/v1/acquire`, mode SHARED), waiting while 3 others hold one; it
does its work, then gives its place back (`/dlock/v1/release`). A run that dies keeps its
place only until its expiry; the other runs keep theirs. Only Python's standard library is
used, as any HTTP client would call the sidecar: the same host and port as Dapr's HTTP API,
the same `dapr-api-token` header.

Run:   target/release/dlockd &      # an in-memory store named `lockstore`
       for i in 1 2 3 4 5; do python3 examples/python/nightly_import.py & done; wait
The fourth and fifth runs start only as earlier ones finish.

Environment: DAPR_HTTP_PORT (default 3500), DAPR_API_TOKEN (sent when set), LOCK_STORE (the
lock store's component name, default lockstore), and WORK_SECONDS (default 5), how long the
pretend import takes.
"""

import json
import os
import socket
import time
import urllib.error
import urllib.request

STORE = os.environ.get('LOCK_STORE', 'lockstore')
RESOURCE = 'nightly-import'
LIMIT = 3  # every run must ask for the same limit: another one is refused (ERR_LIMIT_MISMATCH)
OWNER = f'{socket.gethostname()}-{os.getpid()}'
EXPIRY_SECONDS = 600  # a run that dies holds its place at most this long
WAIT_MS = 3_600_000  # wait up to an hour for a place
SIDECAR = f"http://127.0.0.1:{os.environ.get('DAPR_HTTP_PORT', '3500')}"


def call(route, body):
    request = urllib.request.Request(
        f'{SIDECAR}/dlock/v1/{route}/{STORE}',
        data=json.dumps(body).encode(),
        headers={'content-type': 'application/json'},
        method='POST',
    )
    token = os.environ.get('DAPR_API_TOKEN')
    if token:
        request.add_header('dapr-api-token', token)
    try:
        with urllib.request.urlopen(request, timeout=WAIT_MS / 1000 + 10) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as error:
        # The sidecar's errors have Dapr's shape: {"errorCode": ..., "message": ...}.
        raise SystemExit(f'[{OWNER}] {route} failed: {error.code} {error.read().decode()}')


def main():
    place = call('acquire', {
        'resourceId': RESOURCE,
        'lockOwner': OWNER,
        'expiryInSeconds': EXPIRY_SECONDS,
        'waitTimeoutMs': WAIT_MS,
        'mode': 'SHARED',
        'limit': LIMIT,
    })
    if not place['acquired']:
        print(f'[{OWNER}] no place within the wait', flush=True)
        return 1
    print(f'START {OWNER} {time.time_ns() // 1_000_000}', flush=True)
    try:
        time.sleep(float(os.environ.get('WORK_SECONDS', '5')))
    finally:
        print(f'END {OWNER} {time.time_ns() // 1_000_000}', flush=True)
        released = call('release', {'resourceId': RESOURCE, 'lockOwner': OWNER})
        # status 0: released; 1: our place had expired; 2: never ours
        print(f"[{OWNER}] released: status {released['status']}", flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
