//! A holder cut off from its store by a partition: its sidecar runs in a network namespace of
//! the test's own (`support/netns.rs`), the link is set down while `dlock KEY 3 -- CMD` holds a
//! renewed lock through it. The holder must be told (dlock exits 4) strictly before another
//! owner, through a sidecar outside, is granted the lock; that owner gets it within the expiry
//! plus the store's detection time; and once the link is back the cut-off sidecar serves again.

use std::time::{Duration, Instant};

use super::history::History;
use super::{contend, detection, figures, server_ports, Holder, APP, SLACK, TTL};
use crate::support::api::{Api, Protocol, SUCCESS};
use crate::support::backend::{unique, Backend};
use crate::support::dlockd::{Dlockd, Options, DLOCK};
use crate::support::netns::Netns;

pub async fn holder_is_told_first(backend: Backend) {
    let Some(netns) = Netns::create(&server_ports(backend)) else {
        return;
    };
    let inside = Dlockd::start(Options {
        netns: Some(netns.name.clone()),
        ..Options::with_component(APP, backend.component("store", None))
    });
    let outside = backend.sidecar(APP, &[("store", None)]);
    let locks = outside.locks().await;
    let key = unique("partition");
    let history = History::default();

    let mut holder = Holder::start(netns.command(DLOCK), &inside.grpc, &key, "holder");
    let token = holder.token();
    // A renewal or two go through before the cut.
    tokio::time::sleep(TTL / 2).await;
    assert!(
        contend(&locks, &key, "other", Duration::ZERO)
            .await
            .is_none(),
        "granted to another owner while held"
    );

    let cut = Instant::now();
    netns.cut();
    let granted = contend(&locks, &key, "other", TTL + detection(backend) + SLACK).await;
    let Some(granted) = granted else {
        panic!(
            "no other owner got the lock in {:?} after the cut",
            cut.elapsed()
        );
    };
    let Some((told, status)) = holder.exited(SLACK) else {
        panic!(
            "the partitioned holder was not told of its loss:\n{}",
            holder.output()
        );
    };
    assert_eq!(status.code(), Some(4), "{}", holder.output());
    assert!(
        told < granted.sent,
        "the holder was told {:?} after the cut, not before another owner was granted the lock \
         ({:?} after the cut, at the latest)\n{}",
        told - cut,
        granted.sent - cut,
        holder.output()
    );
    history.record(&holder.owner, token, holder.started, told);
    let api = Api::new(&outside).await;
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &key, "other").await,
        Ok(SUCCESS)
    );
    history.record("other", granted.token, granted.sent, Instant::now());

    let healed = Instant::now();
    netns.heal();
    let served = serves_again(&netns, &inside);
    history.check();
    figures(
        backend,
        "partition",
        &[
            ("holder_told", told - cut),
            ("other_granted", granted.sent - cut),
            ("serves_again", served - healed),
        ],
    );
}

/// When the sidecar inside first served again: a `dlock -n` run inside that took a lock of
/// its own, ran its command and released it. Panics after a minute.
fn serves_again(netns: &Netns, inside: &Dlockd) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        let run = netns
            .command(DLOCK)
            .args(["--endpoint", &inside.grpc, "--store", "store", "-n"])
            .args([&unique("after-partition"), "3", "--", "true"])
            .env_remove("DAPR_API_TOKEN")
            .output()
            .unwrap();
        if run.status.success() {
            return Instant::now();
        }
        last = String::from_utf8_lossy(&run.stderr).into_owned();
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "the cut-off sidecar did not serve again within a minute of the link's return: {last}\n{}",
        inside.logs()
    );
}
