#!/usr/bin/env python3
"""A worker that takes a distributed lock through dlockd with the Dapr Python SDK.

It updates "process instance 42" only while it holds the lock `process-instance-42` in the
lock store `lockstore`, as an owner unique to this process (hostname + pid), for at most
30 s. If another worker holds the lock, it says so and retries a few times; once it has the
lock it does its work and unlocks, printing the unlock status. `try_lock` is used as a
context manager, so the lock is released even if the work raises.

Run:   target/release/dlockd &        # with no --resources-path it serves
                                      # an in-memory store named `lockstore`
       pip install dapr               # the official SDK (tested with dapr 1.19.0)
       python examples/python/lock_worker.py
Start two at once to see the second one wait for the first:
       python examples/python/lock_worker.py & python examples/python/lock_worker.py; wait

Environment, read by the SDK: DAPR_GRPC_PORT (default 50001) for the lock calls,
DAPR_HTTP_PORT (default 3500), where it first waits for /v1.0/healthz/outbound, and
DAPR_API_TOKEN, sent with every call when set.
"""

import os
import socket
import sys
import time
import warnings

from dapr.clients import DaprClient

STORE = 'lockstore'
RESOURCE = 'process-instance-42'
OWNER = f'{socket.gethostname()}-{os.getpid()}'  # unique per process: only this owner can unlock
EXPIRY_SECONDS = 30  # the store frees the lock by itself after this
ATTEMPTS = 5
RETRY_DELAY = 0.5  # seconds between attempts

# Every lock call warns that the lock API is "Alpha"; once is enough to know.
warnings.filterwarnings('ignore', message='The Distributed Lock API is an Alpha version')


def update_process_instance():
    print(f'[{OWNER}] updating process instance 42…', flush=True)
    time.sleep(1)


def main():
    with DaprClient() as client:
        for attempt in range(1, ATTEMPTS + 1):
            # The response is truthy when the lock was taken. As a context manager it unlocks
            # on leaving the block, if it was taken, even when the work raises.
            with client.try_lock(STORE, RESOURCE, OWNER, EXPIRY_SECONDS) as lock:
                if lock:
                    print(f'[{OWNER}] locked {RESOURCE} (attempt {attempt})', flush=True)
                    update_process_instance()
                    # The automatic unlock on exit throws its answer away. To see the status,
                    # unlock here; the automatic one then finds nothing of ours to release,
                    # which is harmless (an unlock never frees another owner's lock).
                    status = client.unlock(STORE, RESOURCE, OWNER).status
                    # success, lock_does_not_exist (e.g. it expired), lock_belongs_to_others
                    # or internal_error
                    print(f'[{OWNER}] unlocked {RESOURCE}: status {status.name}', flush=True)
                    return 0 if status.name == 'success' else 1
            if attempt < ATTEMPTS:
                print(f'[{OWNER}] {RESOURCE} is held by another worker; '
                      f'retrying in {RETRY_DELAY}s', flush=True)
                time.sleep(RETRY_DELAY)
    print(f'[{OWNER}] {RESOURCE} is still held by another worker after {ATTEMPTS} attempts; '
          'giving up', file=sys.stderr)
    return 1


if __name__ == '__main__':
    sys.exit(main())
