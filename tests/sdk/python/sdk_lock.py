#!/usr/bin/env python3
"""Real-SDK end-to-end check of dlockd with the official Dapr Python SDK (`dapr` on PyPI).

Why it exists: docs/contract.md promises that an unmodified Dapr SDK cannot tell dlockd from daprd
for the lock building block. This script drives the public `DaprClient` API (gRPC
TryLockAlpha1/UnlockAlpha1, after the SDK's own wait on HTTP /v1.0/healthz/outbound)
against a running sidecar and asserts on every answer.

Environment: DAPR_GRPC_PORT, DAPR_HTTP_PORT (sidecar on 127.0.0.1), DLOCK_STORE (e.g. lockstore).
Run:   target/sdk/venv/bin/python tests/sdk/python/sdk_lock.py
Prints one line per check; exits 0 only if every check passed.
"""

import os
import signal
import sys
import time
import uuid
import warnings

HARD_TIMEOUT_S = 60
failures = []


def check(name, ok, detail=''):
    print(f"{'PASS' if ok else 'FAIL'} python: {name}" + (f' ({detail})' if detail else ''), flush=True)
    if not ok:
        failures.append(name)


def on_timeout(*_):
    print(f'FAIL python: hard timeout of {HARD_TIMEOUT_S}s reached (sidecar hung?)', flush=True)
    os._exit(2)


def main():
    missing = [v for v in ('DAPR_GRPC_PORT', 'DAPR_HTTP_PORT', 'DLOCK_STORE') if not os.environ.get(v)]
    if missing:
        print(f'FAIL python: missing environment variables: {", ".join(missing)}')
        return 2
    signal.signal(signal.SIGALRM, on_timeout)
    signal.alarm(HARD_TIMEOUT_S)
    # The SDK reads these lazily from the environment: without them it waits 60 s for health
    # and puts no deadline on gRPC calls.
    os.environ.setdefault('DAPR_HEALTH_TIMEOUT', '15')
    os.environ.setdefault('DAPR_API_TIMEOUT_SECONDS', '10')
    warnings.filterwarnings('ignore', message='The Distributed Lock API is an Alpha version')

    import grpc
    from dapr.clients import DaprClient
    from dapr.clients.grpc._response import UnlockResponseStatus as St

    store = os.environ['DLOCK_STORE']
    res = f'sdk-py-{uuid.uuid4()}'
    a, b, c = (f'{n}-{uuid.uuid4()}' for n in 'abc')

    with DaprClient() as client:
        r = client.try_lock(store, res, a, 30)
        check('try_lock by owner A succeeds', bool(r) and r.success is True, f'success={r.success!r}')
        r = client.try_lock(store, res, b, 30)
        check('try_lock by owner B while A holds it fails', not r and r.success is False, f'success={r.success!r}')
        r = client.try_lock(store, res, a, 30)
        check('try_lock by owner A again fails (not reentrant)', not r, f'success={r.success!r}')

        for owner, name, want in (
            (b, 'unlock by owner B', St.lock_belongs_to_others),
            (a, 'unlock by owner A', St.success),
            (a, 'unlock again by owner A', St.lock_does_not_exist),
        ):
            st = client.unlock(store, res, owner).status
            check(f'{name} -> {want.name}', st == want, f'status={st!r}')

        with client.try_lock(store, res, a, 30) as lock:
            check('with try_lock(...) as lock: lock acquired', bool(lock), f'success={lock.success!r}')
            held = client.try_lock(store, res, b, 30)
            check('inside the with block another owner is refused', not held, f'success={held.success!r}')
        after = client.try_lock(store, res, b, 30)
        check('after the with block the lock is free (owner B takes it)', bool(after), f'success={after.success!r}')
        st = client.unlock(store, res, b).status
        check('owner B releases it -> success', st == St.success, f'status={st!r}')

        exp_res = f'{res}-expiry'
        first = client.try_lock(store, exp_res, a, 1)
        time.sleep(2.2)
        later = client.try_lock(store, exp_res, c, 5)
        check('a 1 s lock expires (another owner takes it after 2.2 s)',
              bool(first) and bool(later), f'first={first.success!r} later={later.success!r}')
        client.unlock(store, exp_res, c)

        bad = f'no-such-store-{uuid.uuid4().hex[:8]}'
        # daprd's text to the letter (the sidecar logs the stores there are).
        want = f'lock store {bad} not found'
        for op, call in (('try_lock', lambda: client.try_lock(bad, res, a, 30)),
                         ('unlock', lambda: client.unlock(bad, res, a))):
            try:
                got = call()
                check(f'{op} on unknown store raises', False, f'returned {got!r}')
            except grpc.RpcError as e:
                code, msg = e.code(), e.details()
                check(f'{op} on unknown store raises INVALID_ARGUMENT "{want}"',
                      code == grpc.StatusCode.INVALID_ARGUMENT and msg == want,
                      f'code={code} details={msg!r}')

    if failures:
        print(f'python: {len(failures)} check(s) FAILED: {"; ".join(failures)}')
        return 1
    print('python: all checks passed')
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except Exception as e:  # an unexpected error is a failure too, with its reason on one line
        why = f'{e.code()} {e.details()!r}' if hasattr(e, 'details') and callable(e.details) else e
        print(f'FAIL python: unexpected {type(e).__name__}: {why}', flush=True)
        sys.exit(1)
