//! lock.etcd beyond the conformance suite: what it writes in etcd and what that costs, a
//! three-member cluster that loses a member, authentication (a wrong password, a token that
//! expires), locks shorter than etcd's minimum lease, the lock of a sidecar that died,
//! metadata errors, and a removed store's release watch closing with it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dlock::cli::connect::Locks;
use dlock::cli::http_client::HttpClient;
use dlock::proto::dlock::hold_event::Event;
use dlock::proto::dlock::LockInfo;
use dlock::proto::etcd::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    kv_client::KvClient,
    lease_client::LeaseClient,
    request_op::Request as Op,
    Compare, DeleteRangeRequest, LeaseGrantRequest, LeaseTimeToLiveRequest, PutRequest,
    RangeRequest, RequestOp, TxnRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

use crate::support::api::{Api, Protocol, LOCK_BELONGS_TO_OTHERS, SUCCESS};
use crate::support::backend::{unique, Backend};
use crate::support::dlockd::{component, Dlockd, Options};
use crate::support::locks::{acquire, inspect, list, request, try_acquire, Session};
use crate::support::servers::{Etcd, Outage};

async fn channel(address: &str) -> Channel {
    Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// The store's current revision.
async fn revision(kv: &mut KvClient<Channel>) -> i64 {
    kv.range(RangeRequest {
        key: b"dlock/".to_vec(),
        count_only: true,
        ..RangeRequest::default()
    })
    .await
    .unwrap()
    .into_inner()
    .header
    .unwrap()
    .revision
}

/// The Raft proposals etcd has committed: every write, lease grants and revokes included.
async fn proposals(etcd: &Etcd) -> u64 {
    metric(etcd, "etcd_server_proposals_committed_total").await
}

/// The sum of a metric's samples in etcd's `/metrics`.
async fn metric(etcd: &Etcd, name: &str) -> u64 {
    let metrics = HttpClient::new(&format!("http://{}", etcd.address()), None)
        .get("/metrics")
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn lease_ttl(leases: &mut LeaseClient<Channel>, id: i64) -> (i64, i64) {
    let lease = leases
        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: false })
        .await
        .unwrap()
        .into_inner();
    (lease.granted_ttl, lease.ttl)
}

#[tokio::test]
async fn a_lock_is_a_key_with_its_deadline_on_a_lease_the_sidecar_shares() {
    // A private etcd, so the revisions and proposals counted are this test's alone.
    let etcd = Etcd::start(&[]);
    let channel = channel(&etcd.address()).await;
    let mut kv = KvClient::new(channel.clone());
    let mut leases = LeaseClient::new(channel);
    let file = component("store", "lock.etcd", &[("endpoints", &etcd.address())]);
    let sidecar = Dlockd::start(Options::with_component("bpm", file));
    let locks = sidecar.locks().await;
    let api = Api::new(&sidecar).await;
    let resource = unique("layout");
    let path = format!("dlock/lock||bpm||{resource}").into_bytes();
    let reader = kv.clone();
    let read = |path: Vec<u8>| {
        let mut kv = reader.clone();
        async move {
            kv.range(RangeRequest {
                key: path,
                ..RangeRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
            .kvs
            .pop()
        }
    };

    let asked = SystemTime::now();
    let token = try_acquire(&locks, &resource, "server-1", 30)
        .await
        .expect("granted");
    let record = read(path.clone()).await.expect("the key exists");
    // The owner after its deadline in Unix milliseconds, behind the byte 0xFF; the creating
    // revision is the token.
    let value = String::from_utf8_lossy(&record.value[1..]).into_owned();
    assert_eq!(record.value[0], 0xff);
    let (millis, owner) = value.split_once(' ').unwrap();
    let deadline = UNIX_EPOCH + Duration::from_millis(millis.parse().unwrap());
    let expiry = deadline.duration_since(asked).unwrap();
    assert!(
        (Duration::from_secs(30)..Duration::from_secs(31)).contains(&expiry),
        "{expiry:?}"
    );
    assert_eq!(owner, "server-1");
    assert_eq!(record.create_revision as u64, token);
    assert_eq!(
        inspect(&locks, &resource).await.unwrap().fencing_token,
        token
    );
    // On the lease of its bucket, which outlasts it: twice the power of two above 30 s.
    let (granted, left) = lease_ttl(&mut leases, record.lease).await;
    assert_eq!(granted, 64);
    assert!(left > 31, "{left}");
    // Another lock of about the same expiry rides on the same lease.
    let other = unique("layout");
    assert!(try_acquire(&locks, &other, "server-2", 20).await.is_some());
    let other_path = format!("dlock/lock||bpm||{other}").into_bytes();
    assert_eq!(read(other_path).await.unwrap().lease, record.lease);

    // A renewal writes the new deadline: one revision, the token kept.
    let before = revision(&mut kv).await;
    assert_eq!(
        crate::support::locks::renew(&locks, &resource, "server-1", 30).await,
        SUCCESS
    );
    assert_eq!(revision(&mut kv).await - before, 1);
    assert_eq!(
        read(path.clone()).await.unwrap().create_revision,
        record.create_revision
    );
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &resource, "server-1")
            .await,
        Ok(SUCCESS)
    );
    assert_eq!(read(path).await, None);
    // The shared lease stays for the sidecar's next locks.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(lease_ttl(&mut leases, record.lease).await.1 > 0);

    // An uncontended lock and unlock pair: two writes in all, the put and the delete, with no
    // lease granted or revoked.
    let before = proposals(&etcd).await;
    for _ in 0..10 {
        let key = unique("pair");
        assert!(try_acquire(&locks, &key, "server-1", 30).await.is_some());
        assert_eq!(
            api.unlock(Protocol::Grpc, "store", &key, "server-1").await,
            Ok(SUCCESS)
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(proposals(&etcd).await - before, 20);
}

#[tokio::test]
async fn a_release_on_another_sidecar_wakes_a_waiter_at_once() {
    let holder = Backend::Etcd.sidecar("app", &[("store", None)]);
    let waiter = Backend::Etcd.sidecar("app", &[("store", None)]);
    let api = Api::new(&holder).await;
    let locks = waiter.locks().await;
    let key = unique("watch");
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &key, "holder", 60).await,
        Ok(true)
    );
    let waiting = {
        let key = key.clone();
        tokio::spawn(async move {
            let granted = acquire(&locks, &key, "waiter", 60, Duration::from_secs(10)).await;
            (granted.unwrap().is_some(), Instant::now())
        })
    };
    // Long enough for the waiter's polls to have backed off to 200 ms apart.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let released = Instant::now();
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &key, "holder").await,
        Ok(SUCCESS)
    );
    let (granted, at) = waiting.await.unwrap();
    assert!(granted);
    // The watch's deletion event, not the next poll, woke it.
    assert!(
        at - released < Duration::from_millis(100),
        "{:?}",
        at - released
    );
}

#[tokio::test]
async fn locks_keep_working_when_a_cluster_member_stops() {
    let mut members = Etcd::cluster(3);
    let endpoints: Vec<String> = members.iter().map(Etcd::address).collect();
    let file = component(
        "store",
        "lock.etcd",
        &[("endpoints", &endpoints.join(",")), ("dialTimeout", "1s")],
    );
    let sidecar = Dlockd::start(Options::with_component("app", file));
    let locks = sidecar.locks().await;
    let api = Api::new(&sidecar).await;
    let held = unique("cluster");
    let first = try_acquire(&locks, &held, "a", 60).await.expect("granted");

    // The member listed first, which the sidecar talks to, goes away.
    members[0].stop();
    let started = Instant::now();
    let key = unique("cluster");
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &key, "b", 60).await,
        Ok(true)
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The lock taken before is still held, and still only its owner's to release.
    assert_eq!(
        api.lock(Protocol::Http, "store", &held, "b", 60).await,
        Ok(false)
    );
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &held, "b").await,
        Ok(LOCK_BELONGS_TO_OTHERS)
    );
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &held, "a").await,
        Ok(SUCCESS)
    );
    // The next holder's token is larger, and a waiter is woken by a release.
    let next = try_acquire(&locks, &held, "c", 1).await.expect("granted");
    assert!(next > first);
    let waited = Instant::now();
    assert!(acquire(&locks, &held, "d", 60, Duration::from_secs(5))
        .await
        .unwrap()
        .is_some());
    assert!(
        waited.elapsed() < Duration::from_secs(3),
        "{:?}",
        waited.elapsed()
    );

    // The member comes back, and the leader goes: the election is ridden out.
    members[0].resume();
    let leader = members.iter().position(Etcd::is_leader).expect("a leader");
    members[leader].stop();
    api.smoke("store").await;
}

const PASSWORD: &str = "hunter2-correct-horse";

/// A private etcd with authentication on: user `bpm` may read and write under `dlock/`.
fn etcd_with_auth(extra: &[&str]) -> Etcd {
    let etcd = Etcd::start(extra);
    etcd.etcdctl(&["user", "add", "root:root-secret"]);
    etcd.etcdctl(&["user", "add", &format!("bpm:{PASSWORD}")]);
    etcd.etcdctl(&["role", "add", "locks"]);
    etcd.etcdctl(&[
        "role",
        "grant-permission",
        "locks",
        "readwrite",
        "dlock/",
        "--prefix=true",
    ]);
    etcd.etcdctl(&["user", "grant-role", "bpm", "locks"]);
    etcd.etcdctl(&["auth", "enable"]);
    etcd
}

fn auth_component(etcd: &Etcd, password: &str) -> String {
    component(
        "store",
        "lock.etcd",
        &[
            ("endpoints", &etcd.address()),
            ("username", "bpm"),
            ("password", password),
        ],
    )
}

#[tokio::test]
async fn authentication_names_the_field_and_hides_the_password() {
    // Simple tokens expire after one idle second here (five minutes by default).
    let etcd = etcd_with_auth(&["--auth-token-ttl", "1"]);

    let wrong = auth_component(&etcd, "hunter2-wrong-guess");
    let failed = Dlockd::start_fails(Options::with_component("app", wrong)).output;
    assert!(
        failed.contains("field spec.metadata 'password'"),
        "{failed}"
    );
    assert!(failed.contains("etcd refused user 'bpm'"), "{failed}");
    assert!(!failed.contains("hunter2"), "{failed}");

    let right = auth_component(&etcd, PASSWORD);
    let sidecar = Dlockd::start(Options::with_component("app", right));
    let api = Api::new(&sidecar).await;
    let key = unique("auth");
    assert_eq!(
        api.lock(Protocol::Grpc, "store", &key, "a", 60).await,
        Ok(true)
    );
    // Idle past the token's life: the next call authenticates again by itself.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        api.lock(Protocol::Http, "store", &key, "b", 60).await,
        Ok(false)
    );
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &key, "a").await,
        Ok(SUCCESS)
    );
    let (_, logs) = sidecar.terminate();
    assert!(!logs.contains("hunter2"), "{logs}");
}

/// A private etcd with etcd's default election timeout (1 s), whose shortest lease is 2 s.
fn etcd_with_a_two_second_minimum_lease() -> Etcd {
    Etcd::start(&["--election-timeout", "1000"])
}

/// Waits, with a wait of `within`, until `owner` is granted `key` for `expiry`; answers how
/// long after `since` that was.
async fn granted_after(
    locks: &Locks,
    key: &str,
    owner: &str,
    expiry: i32,
    since: Instant,
    within: Duration,
) -> Duration {
    let granted = acquire(locks, key, owner, expiry, within).await.unwrap();
    assert!(granted.is_some(), "{owner} was not granted {key}");
    since.elapsed()
}

#[tokio::test]
async fn a_lock_shorter_than_etcds_minimum_lease_frees_at_its_expiry() {
    let etcd = etcd_with_a_two_second_minimum_lease();
    let file = component("store", "lock.etcd", &[("endpoints", &etcd.address())]);
    let sidecar = Dlockd::start(Options::with_component("app", file));
    let locks = sidecar.locks().await;
    let key = unique("short");
    assert!(
        sidecar.logs().contains("grants no lease shorter than 2s"),
        "{}",
        sidecar.logs()
    );
    // A fact of the cluster's settings, said once at info: no warning at every start.
    let logs = sidecar.logs();
    let noted: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("grants no lease"))
        .collect();
    assert!(noted.len() == 1 && noted[0].contains("INFO"), "{logs}");

    // a's one-second lock frees when its second is over, not when etcd's two-second lease
    // would end (which cannot be before 2 s after the grant): b, waiting in etcd's line, is
    // granted then, and its own one-second lock, taken from the line, frees the same way.
    let asked = Instant::now();
    assert!(try_acquire(&locks, &key, "a", 1).await.is_some());
    let wait = Duration::from_secs(5);
    let b_granted = granted_after(&locks, &key, "b", 1, asked, wait).await;
    assert!(
        (Duration::from_secs(1)..Duration::from_millis(1800)).contains(&b_granted),
        "a's 1 s lock freed after {b_granted:?}"
    );
    let b_asked = Instant::now();
    let c_granted = granted_after(&locks, &key, "c", 30, b_asked, wait).await;
    assert!(
        c_granted < Duration::from_millis(1800),
        "b's 1 s lock freed after {c_granted:?}"
    );
}

#[tokio::test]
async fn a_renewed_short_lock_outlives_its_first_expiry() {
    let etcd = etcd_with_a_two_second_minimum_lease();
    let file = component("store", "lock.etcd", &[("endpoints", &etcd.address())]);
    let sidecar = Dlockd::start(Options::with_component("app", file));
    let locks = sidecar.locks().await;
    let key = unique("renewed");
    // A held session renews its one-second lock every third of a second; each renewal moves
    // the deadline, so no earlier deadline's timer frees it.
    let mut session = Session::open(&locks, request(&key, "a", 1, Duration::ZERO)).await;
    assert!(matches!(
        session.next(Duration::from_secs(5)).await,
        Event::Acquired(_)
    ));
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(try_acquire(&locks, &key, "b", 30).await, None);
        assert_eq!(
            inspect(&locks, &key).await.map(|lock| lock.lock_owner),
            Some("a".to_string())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    session.release().await;
    assert!(matches!(
        session.next(Duration::from_secs(5)).await,
        Event::Released(_)
    ));
    assert!(try_acquire(&locks, &key, "b", 30).await.is_some());
}

#[tokio::test]
async fn a_dead_sidecars_lock_frees_at_its_expiry_while_its_lease_lives_on() {
    let etcd = etcd_with_a_two_second_minimum_lease();
    let channel = channel(&etcd.address()).await;
    let mut leases = LeaseClient::new(channel.clone());
    let file = component("store", "lock.etcd", &[("endpoints", &etcd.address())]);
    let holder = Dlockd::start(Options::with_component("app", file.clone()));
    let other = Dlockd::start(Options::with_component("app", file));
    let locks = other.locks().await;
    let key = unique("crashed");
    let asked = Instant::now();
    let first = try_acquire(&holder.locks().await, &key, "a", 3)
        .await
        .expect("granted");
    let record = KvClient::new(channel)
        .range(RangeRequest {
            key: format!("dlock/lock||app||{key}").into_bytes(),
            ..RangeRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .kvs
        .pop()
        .expect("the key exists");
    holder.kill();

    // Past its three seconds, inspection and listing no longer show it, by the deadline it
    // carries, and a waiter on another sidecar is granted it then, with a larger token,
    // though the dead sidecar's lease, which nobody keeps alive any more, lasts longer.
    let waiting = {
        let (locks, key) = (locks.clone(), key.clone());
        tokio::spawn(async move {
            let granted = acquire(&locks, &key, "b", 30, Duration::from_secs(6)).await;
            (granted.unwrap(), asked.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(3050).saturating_sub(asked.elapsed())).await;
    let owner = |lock: LockInfo| lock.lock_owner;
    assert_ne!(inspect(&locks, &key).await.map(owner), Some("a".into()));
    let listed: Vec<String> = list(&locks, &key).await.into_iter().map(owner).collect();
    assert!(!listed.contains(&"a".to_string()), "{listed:?}");
    let (token, b_granted) = waiting.await.unwrap();
    assert!(
        (Duration::from_secs(3)..Duration::from_millis(3600)).contains(&b_granted),
        "a dead holder's 3 s lock freed after {b_granted:?}"
    );
    let token = token.expect("b was granted");
    assert!(token > first, "{token} after {first}");
    assert!(
        lease_ttl(&mut leases, record.lease).await.1 > 0,
        "the dead sidecar's lease is gone already"
    );
}

#[tokio::test]
async fn metadata_errors_name_the_field_and_hide_the_password() {
    let cases = [
        (vec![("keyPrefixPath", "locks")], "endpoints"),
        (vec![("endpoints", "127.0.0.1")], "endpoints"),
        (
            vec![("endpoints", "127.0.0.1:1"), ("tlsEnable", "true")],
            "ca",
        ),
        (
            vec![
                ("endpoints", "127.0.0.1:1"),
                ("requestTimeout", "3 seconds"),
            ],
            "requestTimeout",
        ),
        (
            vec![("endpoints", "127.0.0.1:1"), ("password", PASSWORD)],
            "username",
        ),
    ];
    for (metadata, field) in cases {
        crate::support::dlockd::refused_component("lock.etcd", &metadata, field, "hunter2");
    }
    // A user name for an etcd without authentication.
    let file = component(
        "store",
        "lock.etcd",
        &[
            (
                "endpoints",
                &crate::support::servers::shared("DLOCK_TEST_ETCD"),
            ),
            ("username", "bpm"),
            ("password", PASSWORD),
        ],
    );
    let failed = Dlockd::start_fails(Options::with_component("app", file)).output;
    assert!(
        failed.contains("field spec.metadata 'username'"),
        "{failed}"
    );
    assert!(failed.contains("authentication turned off"), "{failed}");
    assert!(!failed.contains("hunter2"), "{failed}");
    // Unreachable etcd: a clear error naming the address, within the request timeout.
    let file = component(
        "store",
        "lock.etcd",
        &[
            ("endpoints", "127.0.0.1:1"),
            ("username", "bpm"),
            ("password", PASSWORD),
            ("requestTimeout", "500ms"),
        ],
    );
    let failed = Dlockd::start_fails(Options::with_component("app", file)).output;
    assert!(
        failed.contains("can't reach etcd at 127.0.0.1:1"),
        "{failed}"
    );
    assert!(!failed.contains("hunter2"), "{failed}");
}

#[tokio::test]
async fn tls_works_with_an_inline_ca_and_needs_a_client_certificate() {
    let certificates = crate::support::certs::Certs::new();
    let etcd = Etcd::start_tls(&certificates);
    let ca = std::fs::read_to_string(&certificates.ca).unwrap();
    let (cert, key) = &certificates.client;
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    // The CA inline as PEM text (as Dapr's etcd component takes it, here with its line breaks
    // escaped for YAML), the client certificate and key as file paths.
    let ca_inline = ca.replace('\n', "\\n");
    let file = component(
        "store",
        "lock.etcd",
        &[
            ("endpoints", &etcd.address()),
            ("tlsEnable", "true"),
            ("ca", &ca_inline),
            ("cert", &cert),
            ("key", &key),
        ],
    );
    let sidecar = Dlockd::start(Options::with_component("app", file));
    let api = Api::new(&sidecar).await;
    api.smoke("store").await;

    // Without a client certificate etcd refuses the connection: start-up says so.
    let file = component(
        "store",
        "lock.etcd",
        &[
            ("endpoints", &etcd.address()),
            ("tlsEnable", "true"),
            ("ca", &certificates.ca.display().to_string()),
            ("requestTimeout", "1s"),
        ],
    );
    let failed = Dlockd::start_fails(Options::with_component("app", file)).output;
    assert!(failed.contains("can't reach etcd at"), "{failed}");
}

/// The watchers open on a member, from its metrics.
async fn watchers(etcd: &Etcd) -> u64 {
    let mut stream = tokio::net::TcpStream::connect(etcd.address())
        .await
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut metrics = String::new();
    stream.read_to_string(&mut metrics).await.unwrap();
    let gauge = metrics
        .lines()
        .find_map(|line| line.strip_prefix("etcd_debugging_mvcc_watcher_total "))
        .unwrap_or_else(|| panic!("no watcher count in etcd's metrics:\n{metrics}"));
    gauge.trim().parse::<f64>().unwrap() as u64
}

/// A store removed by a reload closes its release watch at once, without waiting for a
/// deletion to arrive on it (none ever does here).
#[tokio::test]
async fn a_removed_store_closes_its_release_watch() {
    let etcd = Etcd::start(&[]);
    let file = component("store", "lock.etcd", &[("endpoints", &etcd.address())]);
    let sidecar = Dlockd::start(Options::with_component("bpm", file));
    let deadline = Instant::now() + Duration::from_secs(10);
    while watchers(&etcd).await != 1 {
        assert!(Instant::now() < deadline, "the release watch never opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resources = sidecar.resources.clone().unwrap();
    std::fs::remove_file(resources.join("store.yaml")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while watchers(&etcd).await != 0 {
        assert!(
            Instant::now() < deadline,
            "the removed store's release watch is still open\n{}",
            sidecar.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        sidecar.logs().contains("component removed"),
        "{}",
        sidecar.logs()
    );
}

/// What etcd counted between `before` and `after`, per pair, by counter.
fn per_pair(before: &[(&str, u64)], after: &[(&str, u64)], pairs: usize) -> String {
    let figures: Vec<String> = before
        .iter()
        .zip(after)
        .map(|((name, b), (_, a))| format!("{name} {:.2}", (a - b) as f64 / pairs as f64))
        .collect();
    figures.join(", ")
}

/// etcd's counters of writes: Raft proposals (every write, lease grants and revokes
/// included), WAL fsyncs, and the key-value operations by kind.
async fn writes(etcd: &Etcd) -> Vec<(&'static str, u64)> {
    let mut counted = Vec::new();
    for (label, name) in [
        ("proposals", "etcd_server_proposals_committed_total"),
        ("fsyncs", "etcd_disk_wal_fsync_duration_seconds_count"),
        ("txns", "etcd_mvcc_txn_total"),
        ("puts", "etcd_mvcc_put_total"),
        ("deletes", "etcd_mvcc_delete_total"),
    ] {
        counted.push((label, metric(etcd, name).await));
    }
    counted
}

/// What a lock costs etcd, counted by etcd itself: per uncontended lock+unlock pair of
/// `dlock bench` through dlockd, per hand-over from a holder on one sidecar to a waiter on
/// another, and a bare client's put-on-a-lease and delete (etcd's `concurrency.Mutex` on its
/// session lease, at its floor) beside `dlock bench`'s pairs per second. A benchmark that
/// prints figures, not a test; run it alone:
///
/// `scripts/test.sh etcd::cost --ignored --nocapture 2>&1 | grep 'etcd cost'`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run alone, see its documentation"]
async fn cost() {
    const PAIRS: usize = 500;
    let etcd = Etcd::start(&[]);
    let file = component("store", "lock.etcd", &[("endpoints", &etcd.address())]);
    let holder = Dlockd::start(Options::with_component("app", file.clone()));
    let waiter = Dlockd::start(Options::with_component("app", file));
    let (holder_locks, waiter_locks) = (holder.locks().await, waiter.locks().await);
    let (api, waiter_api) = (Api::new(&holder).await, Api::new(&waiter).await);
    // The shared leases of `dlock bench`'s expiry, granted once per sidecar, before counting.
    for locks in [&holder_locks, &waiter_locks] {
        assert!(try_acquire(locks, &unique("warm"), "o", 10).await.is_some());
    }

    for clients in [1, 50] {
        let before = writes(&etcd).await;
        let rate = crate::support::bench::dlock_bench(&holder, "store", clients, PAIRS);
        let after = writes(&etcd).await;
        let channel = channel(&etcd.address()).await;
        let lease = LeaseClient::new(channel.clone())
            .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
            .await
            .unwrap()
            .into_inner()
            .id;
        let raw = crate::support::bench::raw_pairs(clients, PAIRS, move |n| {
            let mut kv = KvClient::new(channel.clone());
            async move {
                let key = format!("raw/{n}").into_bytes();
                let put = PutRequest {
                    key: key.clone(),
                    value: b"o".to_vec(),
                    lease,
                    prev_kv: false,
                };
                let absent = Compare {
                    result: CompareResult::Equal as i32,
                    target: CompareTarget::Create as i32,
                    key: key.clone(),
                    target_union: Some(TargetUnion::CreateRevision(0)),
                    range_end: Vec::new(),
                };
                let txn = TxnRequest {
                    compare: vec![absent],
                    success: vec![RequestOp {
                        request: Some(Op::RequestPut(put)),
                    }],
                    failure: Vec::new(),
                };
                assert!(kv.txn(txn).await.unwrap().into_inner().succeeded);
                kv.delete_range(DeleteRangeRequest {
                    key,
                    ..DeleteRangeRequest::default()
                })
                .await
                .unwrap();
            }
        })
        .await;
        eprintln!(
            "etcd cost: {clients} clients: dlock bench {rate:.0} pairs/s, bare put+delete \
             {raw:.0} pairs/s ({:.0}%); per dlock bench pair: {}",
            rate / raw * 100.0,
            per_pair(&before, &after, PAIRS)
        );
    }

    const HAND_OVERS: usize = 20;
    let mut counted = None;
    for _ in 0..HAND_OVERS {
        let key = unique("hand-over");
        assert!(try_acquire(&holder_locks, &key, "a", 30).await.is_some());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = writes(&etcd).await;
        let waiting = {
            let (locks, key) = (waiter_locks.clone(), key.clone());
            tokio::spawn(
                async move { acquire(&locks, &key, "b", 30, Duration::from_secs(10)).await },
            )
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            api.unlock(Protocol::Grpc, "store", &key, "a").await,
            Ok(SUCCESS)
        );
        assert!(waiting.await.unwrap().unwrap().is_some());
        // The waiter's own lease is revoked in the background.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = writes(&etcd).await;
        let sums = counted.get_or_insert_with(|| vec![0; after.len()]);
        for (sum, ((_, b), (_, a))) in sums.iter_mut().zip(before.iter().zip(&after)) {
            *sum += a - b;
        }
        assert_eq!(
            waiter_api.unlock(Protocol::Grpc, "store", &key, "b").await,
            Ok(SUCCESS)
        );
    }
    let names = writes(&etcd).await;
    let zero: Vec<(&str, u64)> = names.iter().map(|(name, _)| (*name, 0)).collect();
    let sums: Vec<(&str, u64)> = names
        .iter()
        .zip(counted.unwrap())
        .map(|((name, _), sum)| (*name, sum))
        .collect();
    eprintln!(
        "etcd cost: per hand-over (the waiter's try, its place in the line, the holder's \
         unlock, the waiter's grant): {}",
        per_pair(&zero, &sums, HAND_OVERS)
    );
}
