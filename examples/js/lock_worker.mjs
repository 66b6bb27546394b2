// A worker that takes a distributed lock through dlockd with the Dapr JavaScript SDK (over HTTP).
//
// It updates "process instance 42" only while it holds the lock `process-instance-42` in the
// lock store `lockstore`, as an owner unique to this process (hostname + pid), for at most
// 30 s. If another worker holds the lock, it says so and retries a few times; once it has the
// lock it does its work and unlocks (in a `finally`, so also when the work throws), printing
// the unlock status.
//
// Run:   target/release/dlockd &        # with no --resources-path it serves
//                                       # an in-memory store named `lockstore`
//        npm install @dapr/dapr@3.18.0  # in this file's folder or a parent of it
//        node lock_worker.mjs
// Start two at once to see the second one wait for the first:
//        node lock_worker.mjs & node lock_worker.mjs; wait
//
// Environment, read by the SDK: DAPR_HTTP_PORT (default 3500); DAPR_API_TOKEN, sent with every
// call when set. Before its first call the SDK waits for the sidecar's GET /v1.0/metadata.

import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { DaprClient, LogLevel } from "@dapr/dapr";

const STORE = "lockstore";
const RESOURCE = "process-instance-42";
const OWNER = `${hostname()}-${process.pid}`; // unique per process: only this owner can unlock
const EXPIRY_SECONDS = 30; // the store frees the lock by itself after this
const ATTEMPTS = 5;
const RETRY_DELAY_MS = 500;

// The values of the SDK's LockStatus enum (which the package root does not export).
const STATUS_NAMES = ["Success", "LockDoesNotExist", "LockBelongsToOthers", "InternalError"];

async function updateProcessInstance() {
  console.log(`[${OWNER}] updating process instance 42…`);
  await sleep(1000);
}

// HTTP is the default protocol; the port and token come from the environment.
const client = new DaprClient({ logger: { level: LogLevel.Warn } });

let exitCode = 1;
try {
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    // A refusal is a normal answer, { success: false }, not an exception.
    const { success } = await client.lock.lock(STORE, RESOURCE, OWNER, EXPIRY_SECONDS);
    if (success) {
      console.log(`[${OWNER}] locked ${RESOURCE} (attempt ${attempt})`);
      try {
        await updateProcessInstance();
      } finally {
        // LockDoesNotExist here would mean the lock expired while we were working.
        const { status } = await client.lock.unlock(STORE, RESOURCE, OWNER);
        console.log(`[${OWNER}] unlocked ${RESOURCE}: status ${STATUS_NAMES[status] ?? status}`);
        exitCode = status === 0 ? 0 : 1;
      }
      break;
    }
    if (attempt === ATTEMPTS) {
      console.error(
        `[${OWNER}] ${RESOURCE} is still held by another worker after ${ATTEMPTS} attempts; giving up`,
      );
    } else {
      console.log(`[${OWNER}] ${RESOURCE} is held by another worker; retrying in ${RETRY_DELAY_MS} ms`);
      await sleep(RETRY_DELAY_MS);
    }
  }
} finally {
  await client.stop();
}
process.exitCode = exitCode;
