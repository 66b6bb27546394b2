//! A holder cut off from its store by a partition: its sidecar runs in a network namespace of
//! the test's own (`support/netns.rs`), the link is set down while `dlock KEY 3 -- CMD` holds a
//! renewed lock through it. The holder must be told (dlock exits 4) strictly before another
//! owner, through a sidecar outside, is granted the lock; that owner gets it within the expiry
//! plus the store's detection time; and once the link is back the cut-off sidecar serves again.
//! The same holds for one permit of a semaphore: the cut-off holder of one of two places is
//! told before its place goes to anyone else, while the holder of the other place keeps it.

use std::time::{Duration, Instant};

use super::history::History;
use super::{
    contend, contend_for_a_place, detection, figures, server_ports, Granted, Holder, APP, SLACK,
    TTL,
};
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
    let told = told_first(&mut holder, &granted, cut);
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

/// A semaphore of two places: one holder inside the partition, one outside. Once the link is
/// cut, the holder inside is told (dlock exits 4) before a third owner gets its place; the
/// holder outside keeps its place throughout.
pub async fn permit_holder_is_told_first(backend: Backend) {
    let Some(netns) = Netns::create(&server_ports(backend)) else {
        return;
    };
    let inside = Dlockd::start(Options {
        netns: Some(netns.name.clone()),
        ..Options::with_component(APP, backend.component("store", None))
    });
    let outside = backend.sidecar(APP, &[("store", None)]);
    let locks = outside.locks().await;
    let key = unique("permit-partition");
    let semaphore = |mut command: std::process::Command| {
        command.args(["--limit", "2"]);
        command
    };
    let mut cut_off = Holder::start(
        semaphore(netns.command(DLOCK)),
        &inside.grpc,
        &key,
        "inside",
    );
    let mut kept = Holder::start(
        semaphore(std::process::Command::new(DLOCK)),
        &outside.grpc,
        &key,
        "outside",
    );
    tokio::time::sleep(TTL / 2).await;
    let full = contend_for_a_place(&locks, &key, "third", 2, Duration::ZERO).await;
    assert!(
        full.is_none(),
        "a third place was granted under a limit of two"
    );

    let cut = Instant::now();
    netns.cut();
    let within = TTL + detection(backend) + SLACK;
    let Some(granted) = contend_for_a_place(&locks, &key, "third", 2, within).await else {
        panic!(
            "nobody got the cut-off holder's place in {:?}",
            cut.elapsed()
        );
    };
    let told = told_first(&mut cut_off, &granted, cut);
    assert!(
        kept.exited(Duration::ZERO).is_none(),
        "the holder outside lost its place:\n{}",
        kept.output()
    );
    kept.stop();
    netns.heal();
    figures(
        backend,
        "permit_partition",
        &[
            ("holder_told", told - cut),
            ("other_granted", granted.sent - cut),
        ],
    );
}

/// When the partitioned `holder` was told of its loss (dlock exits 4), checked to be strictly
/// before another owner's grant was asked for.
fn told_first(holder: &mut Holder, granted: &Granted, cut: Instant) -> Instant {
    let Some((told, status)) = holder.exited(SLACK) else {
        panic!(
            "the partitioned holder was not told of its loss:\n{}",
            holder.output()
        );
    };
    assert_eq!(status.code(), Some(4), "{}", holder.output());
    assert!(
        told < granted.sent,
        "the holder was told {:?} after the cut, not before another owner was granted its \
         place ({:?} after the cut, at the latest)\n{}",
        told - cut,
        granted.sent - cut,
        holder.output()
    );
    told
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
