// Real-SDK end-to-end check of dlockd with the official Dapr JavaScript SDK (@dapr/dapr).
//
// Why it exists: docs/contract.md promises that an unmodified Dapr SDK cannot tell dlockd from
// daprd for the lock building block. This script runs the same checks as
// tests/sdk/python/sdk_lock.py through `client.lock.lock/unlock`, once over HTTP and once over gRPC
// (the SDK first waits for GET /v1.0/metadata resp. gRPC GetMetadata to answer).
//
// Environment: DAPR_HTTP_PORT, DAPR_GRPC_PORT (sidecar on 127.0.0.1), DLOCK_STORE.
// Run:   (cd tests/sdk/js && node sdk_lock.mjs)     after scripts/install-sdks.sh
// Prints one line per check; exits 0 only if every check passed; never runs longer than 60 s.

import { randomUUID } from "node:crypto";
import { CommunicationProtocolEnum, DaprClient, LogLevel } from "@dapr/dapr";

const HARD_TIMEOUT_MS = 60_000;
setTimeout(() => {
  console.log(`FAIL js: hard timeout of ${HARD_TIMEOUT_MS / 1000}s reached (sidecar hung?)`);
  process.exit(2);
}, HARD_TIMEOUT_MS); // not unref'd: every normal path ends in process.exit()

// Values of LockStatus in @dapr/dapr/types/lock/UnlockResponse (not exported from the package
// root). Both the HTTP and the gRPC implementation map the sidecar's numeric status onto it, and
// map anything unknown (including a missing "status") to InternalError.
const LockStatus = { Success: 0, LockDoesNotExist: 1, LockBelongsToOthers: 2, InternalError: 3 };
const statusName = (s) => Object.keys(LockStatus).find((k) => LockStatus[k] === s) ?? String(s);
const GRPC_INVALID_ARGUMENT = 3; // ConnectError.code for gRPC status INVALID_ARGUMENT

const failures = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function runChecks(protocol) {
  const tag = `js/${protocol.toLowerCase()}`;
  const check = (name, ok, detail = "") => {
    console.log(`${ok ? "PASS" : "FAIL"} ${tag}: ${name}${detail ? ` (${detail})` : ""}`);
    if (!ok) failures.push(`${tag}: ${name}`);
  };
  const store = process.env.DLOCK_STORE;
  const client = new DaprClient({
    daprHost: "127.0.0.1",
    daprPort: protocol === "HTTP" ? process.env.DAPR_HTTP_PORT : process.env.DAPR_GRPC_PORT,
    communicationProtocol: CommunicationProtocolEnum[protocol],
    logger: { level: LogLevel.Warn },
  });
  const res = `sdk-js-${protocol.toLowerCase()}-${randomUUID()}`;
  const [a, b, c] = ["a", "b", "c"].map((n) => `${n}-${randomUUID()}`);
  const lock = (owner, r = res, expiry = 30) => client.lock.lock(store, r, owner, expiry);
  const unlock = (owner, r = res) => client.lock.unlock(store, r, owner);
  try {
    let r = await lock(a);
    check("lock by owner A succeeds", r.success === true, `success=${JSON.stringify(r.success)}`);
    r = await lock(b);
    check("lock by owner B while A holds it fails", r.success === false, `success=${JSON.stringify(r.success)}`);
    r = await lock(a);
    check("lock by owner A again fails (not reentrant)", r.success === false, `success=${JSON.stringify(r.success)}`);

    for (const [owner, name, want] of [
      [b, "unlock by owner B", LockStatus.LockBelongsToOthers],
      [a, "unlock by owner A", LockStatus.Success],
      [a, "unlock again by owner A", LockStatus.LockDoesNotExist],
    ]) {
      const { status } = await unlock(owner);
      check(`${name} -> ${statusName(want)}`, status === want, `status=${statusName(status)}`);
    }

    // The JS SDK has no context manager; this is the try/finally an app would write instead.
    const got = await lock(a);
    try {
      check("scoped lock: acquired", got.success === true, `success=${JSON.stringify(got.success)}`);
      const held = await lock(b);
      check("scoped lock: another owner is refused inside the scope", held.success === false,
        `success=${JSON.stringify(held.success)}`);
    } finally {
      if (got.success) await unlock(a);
    }
    const after = await lock(b);
    check("after the scope the lock is free (owner B takes it)", after.success === true,
      `success=${JSON.stringify(after.success)}`);
    const { status } = await unlock(b);
    check("owner B releases it -> Success", status === LockStatus.Success, `status=${statusName(status)}`);

    const expRes = `${res}-expiry`;
    const first = await lock(a, expRes, 1);
    await sleep(2200);
    const later = await lock(c, expRes, 5);
    check("a 1 s lock expires (another owner takes it after 2.2 s)",
      first.success === true && later.success === true, `first=${first.success} later=${later.success}`);
    await unlock(c, expRes);

    const bad = `no-such-store-${randomUUID().slice(0, 8)}`;
    // daprd's text to the letter (the sidecar logs the stores there are).
    const want = `lock store ${bad} not found`;
    for (const [op, call] of [
      ["lock", () => client.lock.lock(bad, res, a, 30)],
      ["unlock", () => client.lock.unlock(bad, res, a)],
    ]) {
      try {
        const out = await call();
        check(`${op} on unknown store throws`, false, `returned ${JSON.stringify(out)}`);
      } catch (e) {
        if (protocol === "HTTP") {
          // HTTPClient throws Error(JSON.stringify({error, error_msg: <raw body>, status})).
          let info = {}, body = {};
          try { info = JSON.parse(e.message); body = JSON.parse(info.error_msg); } catch { /* checked below */ }
          check(`${op} on unknown store throws 400 ERR_LOCK_STORE_NOT_FOUND "${want}"`,
            info.status === 400 && body.errorCode === "ERR_LOCK_STORE_NOT_FOUND" && body.message === want,
            `status=${info.status} body=${info.error_msg ?? e.message}`);
        } else {
          const msg = e.rawMessage ?? e.message;
          check(`${op} on unknown store throws INVALID_ARGUMENT "${want}"`,
            e.code === GRPC_INVALID_ARGUMENT && String(msg).includes(want), `code=${e.code} message=${msg}`);
        }
      }
    }
  } catch (e) {
    check("no unexpected error", false, `${e?.name}: ${e?.message}`);
  } finally {
    await client.stop();
  }
}

const missing = ["DAPR_HTTP_PORT", "DAPR_GRPC_PORT", "DLOCK_STORE"].filter((v) => !process.env[v]);
if (missing.length) {
  console.log(`FAIL js: missing environment variables: ${missing.join(", ")}`);
  process.exit(2);
}
await runChecks("HTTP");
await runChecks("GRPC");
if (failures.length) {
  console.log(`js: ${failures.length} check(s) FAILED: ${failures.join("; ")}`);
  process.exit(1);
}
console.log("js: all checks passed");
process.exit(0); // the gRPC transport keeps an HTTP/2 session open and client.stop() does not close it
