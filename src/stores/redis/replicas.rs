//! `waitReplicas`: a write counted only once replicas have it.
//!
//! Redis replicates asynchronously, so a master that answers a grant and dies before its
//! replicas have it takes the grant with it, and the replica promoted in its place grants the
//! lock again. With `waitReplicas: N` the grant script is followed by `WAIT N timeout`, which
//! answers how many replicas have every write the connection made so far; fewer than N and the
//! grant does not count (the store releases it and answers unavailable).
//!
//! The script and `WAIT` go out as one pipeline, so they travel on one connection: `WAIT`
//! counts the writes of the connection it is sent on, and a reconnect between the two would
//! have it count none and confirm at once.
//!
//! This narrows the window; it does not close it. Sentinel may still promote a replica that is
//! not among the N, and a replica that acknowledged a write may lose it in a restart without
//! persistence. `WAIT` proves the copies exist, not that a failover picks one of them.

use redis::{ErrorKind, FromRedisValue, RedisResult, ScriptInvocation, ServerErrorKind};

use super::connection::Handle;
use super::millis;
use super::settings::WaitReplicas;

/// Runs `invocation`, then `WAIT`; answers the script's answer and how many replicas have it.
pub(crate) async fn run_confirmed<T: FromRedisValue>(
    handle: &mut Handle,
    invocation: &ScriptInvocation<'_>,
    wait: WaitReplicas,
) -> RedisResult<(T, u32)> {
    let mut pipeline = redis::pipe();
    pipeline
        .invoke_script(invocation)
        .cmd("WAIT")
        .arg(wait.replicas)
        // Never 0, which would mean forever.
        .arg(millis(wait.timeout));
    match pipeline.query_async(handle).await {
        // The server does not know the script yet, so it did not run: load it and send again.
        Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            invocation.load_async(handle).await?;
            pipeline.query_async(handle).await
        }
        answer => answer,
    }
}

/// Why a write that fewer replicas than asked for acknowledged does not count.
pub(crate) fn shortfall(what: &str, acknowledged: u32, wait: WaitReplicas) -> String {
    format!(
        "{what} reached the master but only {acknowledged} of the {} replica(s) waitReplicas \
         asks for acknowledged it within {:?}",
        wait.replicas, wait.timeout
    )
}
