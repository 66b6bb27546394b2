#!/usr/bin/env bash
# A worker that takes a distributed lock through dlockd's HTTP API, using nothing but curl.
#
# It updates "process instance 42" only while it holds the lock `process-instance-42` in the
# lock store `lockstore`, as an owner unique to this process (hostname + pid), for at most
# 30 s. If another worker holds the lock, it says so and retries a few times; once it has the
# lock it does its work and unlocks, printing the unlock status.
#
# Run:   target/release/dlockd &          # with no --resources-path it
#                                         # serves an in-memory store named `lockstore`
#        examples/curl.sh
# Start two at once to see the second one wait for the first:
#        examples/curl.sh & examples/curl.sh; wait
#
# Environment: DAPR_HTTP_PORT (default 3500); DAPR_API_TOKEN, sent as the `dapr-api-token`
# header when set. Needs only bash and curl (no jq).
set -euo pipefail

STORE=lockstore
RESOURCE=process-instance-42
OWNER="${HOSTNAME:-$(uname -n)}-$$" # unique per process: only this owner can unlock
EXPIRY_SECONDS=30                   # the store frees the lock by itself after this
ATTEMPTS=5
RETRY_DELAY=0.5                     # seconds between attempts

BASE="http://127.0.0.1:${DAPR_HTTP_PORT:-3500}/v1.0-alpha1"
headers=(-H 'Content-Type: application/json')
if [[ -n ${DAPR_API_TOKEN:-} ]]; then
  headers+=(-H "dapr-api-token: $DAPR_API_TOKEN")
fi

# post lock|unlock JSON: POSTs JSON to /v1.0-alpha1/<lock|unlock>/$STORE and prints the
# response body; fails, with the sidecar's error body on stderr, unless it answers 200.
post() {
  local out code
  out=$(curl -sS -X POST "$BASE/$1/$STORE" "${headers[@]}" -d "$2" -w '\n%{http_code}') ||
    { echo "cannot reach the sidecar at $BASE" >&2; return 1; }
  code=${out##*$'\n'} # -w put the status code on the last line
  out=${out%$'\n'*}
  if [[ $code != 200 ]]; then
    echo "$1 failed: HTTP $code $out" >&2 # e.g. {"errorCode":"ERR_LOCK_STORE_NOT_FOUND",…}
    return 1
  fi
  printf '%s\n' "$out"
}

lock_body="{\"resourceId\":\"$RESOURCE\",\"lockOwner\":\"$OWNER\",\"expiryInSeconds\":$EXPIRY_SECONDS}"
unlock_body="{\"resourceId\":\"$RESOURCE\",\"lockOwner\":\"$OWNER\"}"

# 1. Try to take the lock. The answer is {"success":true} or {"success":false}: a refusal is
#    a normal 200 answer, not an error.
for ((attempt = 1; ; attempt++)); do
  answer=$(post lock "$lock_body")
  if grep -Eq '"success" *: *true' <<<"$answer"; then
    echo "[$OWNER] locked $RESOURCE (attempt $attempt)"
    break
  fi
  if ((attempt == ATTEMPTS)); then
    echo "[$OWNER] $RESOURCE is still held by another worker after $ATTEMPTS attempts; giving up" >&2
    exit 1
  fi
  echo "[$OWNER] $RESOURCE is held by another worker; retrying in ${RETRY_DELAY}s"
  sleep "$RETRY_DELAY"
done

# 2. Do the work while holding the lock. Ctrl-C still releases the lock on the way out.
trap 'post unlock "$unlock_body" >/dev/null; exit 130' INT TERM
echo "[$OWNER] updating process instance 42…"
sleep 1

# 3. Unlock. The answer is {"status":N}: 0 SUCCESS, 1 LOCK_DOES_NOT_EXIST (e.g. it expired),
#    2 LOCK_BELONGS_TO_OTHERS, 3 INTERNAL_ERROR.
trap - INT TERM
answer=$(post unlock "$unlock_body")
status=$(sed -E 's/.*"status" *: *([0-9]+).*/\1/' <<<"$answer")
names=(SUCCESS LOCK_DOES_NOT_EXIST LOCK_BELONGS_TO_OTHERS INTERNAL_ERROR)
echo "[$OWNER] unlocked $RESOURCE: status $status (${names[$status]:-unknown})"
[[ $status == 0 ]]
