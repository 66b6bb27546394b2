//! lock.etcd when etcd runs a write but its answer never reaches the sidecar: the connection
//! breaks between the two. The sidecar talks to etcd through a relay that, once armed, lets
//! each of etcd's answers through only while the lock key is as it was, and cuts the
//! connection instead of passing the first answer that follows the write; the sidecar's second
//! endpoint is etcd itself, where a copy of the write sent again would land. The answer to the
//! client must be what the first write did, not what a second copy found. (Multi-threaded:
//! the relay runs while the test waits on dlockd's start-up.)

use std::sync::{Arc, Mutex};

use dlock::proto::etcd::etcdserverpb::{kv_client::KvClient, RangeRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::Channel;

use crate::support::api::{Api, Protocol, SUCCESS};
use crate::support::backend::unique;
use crate::support::dlockd::{component, Dlockd, Options};
use crate::support::locks::{inspect, try_acquire};
use crate::support::servers::Etcd;

/// When armed: the lock key, and whether it exists before the write.
type Armed = Arc<Mutex<Option<(Vec<u8>, bool)>>>;

/// A TCP relay to one etcd member that can lose the answer to a write.
struct Relay {
    address: String,
    armed: Armed,
}

impl Relay {
    async fn start(etcd: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let armed: Armed = Arc::default();
        let kv = KvClient::new(
            Channel::from_shared(format!("http://{etcd}"))
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
        let (etcd, rules) = (etcd.to_string(), armed.clone());
        tokio::spawn(async move {
            loop {
                let (client, _) = listener.accept().await.unwrap();
                let upstream = TcpStream::connect(&etcd).await.unwrap();
                tokio::spawn(relay(client, upstream, rules.clone(), kv.clone()));
            }
        });
        Relay { address, armed }
    }

    /// Loses the first answer etcd sends once the key's existence is no longer `before`.
    fn arm(&self, key: &[u8], before: bool) {
        *self.armed.lock().unwrap() = Some((key.to_vec(), before));
    }

    fn fired(&self) -> bool {
        self.armed.lock().unwrap().is_none()
    }
}

async fn relay(client: TcpStream, upstream: TcpStream, armed: Armed, mut kv: KvClient<Channel>) {
    let (mut client_reads, mut client_writes) = client.into_split();
    let (mut etcd_reads, mut etcd_writes) = upstream.into_split();
    let requests = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_reads, &mut etcd_writes).await;
    });
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = match etcd_reads.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let rule = armed.lock().unwrap().clone();
        if let Some((key, before)) = rule {
            let exists = kv
                .range(RangeRequest {
                    key,
                    count_only: true,
                    ..RangeRequest::default()
                })
                .await
                .unwrap()
                .into_inner()
                .count
                > 0;
            if exists != before {
                // The write ran: this answer, and the connection, are lost.
                *armed.lock().unwrap() = None;
                break;
            }
        }
        if client_writes.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    requests.abort();
}

/// A sidecar whose first etcd endpoint is the relay and whose second is etcd itself.
async fn sidecar(etcd: &Etcd) -> (Dlockd, Relay) {
    let relay = Relay::start(&etcd.address()).await;
    let endpoints = format!("{},{}", relay.address, etcd.address());
    let file = component("store", "lock.etcd", &[("endpoints", &endpoints)]);
    (Dlockd::start(Options::with_component("bpm", file)), relay)
}

async fn key_exists(etcd: &Etcd, key: &[u8]) -> Option<i64> {
    let channel = Channel::from_shared(format!("http://{}", etcd.address()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    KvClient::new(channel)
        .range(RangeRequest {
            key: key.to_vec(),
            ..RangeRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .kvs
        .pop()
        .map(|kv| kv.lease)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlock_whose_answer_was_lost_is_answered_by_what_it_did() {
    let etcd = Etcd::start(&[]);
    let (sidecar, relay) = sidecar(&etcd).await;
    let locks = sidecar.locks().await;
    let api = Api::new(&sidecar).await;
    let resource = unique("lost-unlock");
    let key = format!("dlock/lock||bpm||{resource}").into_bytes();
    assert!(try_acquire(&locks, &resource, "a", 30).await.is_some());

    relay.arm(&key, true);
    // The delete ran, and its answer was lost: the unlock succeeded, it is not "not held".
    assert_eq!(
        api.unlock(Protocol::Grpc, "store", &resource, "a").await,
        Ok(SUCCESS)
    );
    assert!(relay.fired(), "the relay lost no answer");
    assert_eq!(key_exists(&etcd, &key).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_whose_answer_was_lost_is_granted() {
    let etcd = Etcd::start(&[]);
    let (sidecar, relay) = sidecar(&etcd).await;
    let locks = sidecar.locks().await;
    let resource = unique("lost-grant");
    let key = format!("dlock/lock||bpm||{resource}").into_bytes();

    relay.arm(&key, false);
    // The put ran, and its answer was lost: the lock is granted, held, and on its lease.
    let token = try_acquire(&locks, &resource, "a", 30).await;
    assert!(relay.fired(), "the relay lost no answer");
    assert!(
        token.is_some(),
        "a grant that landed was answered as refused"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(key_exists(&etcd, &key)
        .await
        .is_some_and(|lease| lease != 0));
    let held = inspect(&locks, &resource).await.expect("the lock is held");
    assert_eq!(
        (held.lock_owner.as_str(), Some(held.fencing_token)),
        ("a", token)
    );
}
