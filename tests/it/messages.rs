//! What dlockd and dlock tell a user outside the lock calls (issue 10, items 7 and 8): the
//! ready line says where each store points, never with credentials; a server on the Redis port
//! that is not Redis is named as such; the help texts say what is true.

use std::process::Command;

use crate::support::backend::Backend;
use crate::support::dlockd::{component, Dlockd, Options, DLOCK, DLOCKD};
use crate::support::servers::Redis;

#[tokio::test]
async fn the_ready_line_shows_each_stores_type_and_servers_without_credentials() {
    let redis = Redis::start(&["--requirepass", "s3cret-pw"]);
    let redis_file = component(
        "orders",
        "lock.redis",
        &[
            ("redisHost", &redis.address()),
            ("redisPassword", "s3cret-pw"),
        ],
    );
    let sidecar = Dlockd::start(Options::with_files(
        "app",
        &[
            ("memory.yaml", component("local", "lock.in-memory", &[])),
            ("redis.yaml", redis_file),
            ("etcd.yaml", Backend::Etcd.component("jobs", None)),
            ("zk.yaml", Backend::Zookeeper.component("tree", None)),
        ],
    ));
    let logs = sidecar.logs();
    let ready = logs.lines().find(|l| l.contains("dlockd ready")).unwrap();
    let etcd = &Backend::Etcd.connection()[0].1;
    let zookeeper = &Backend::Zookeeper.connection()[0].1;
    for part in [
        "jobs (lock.etcd at ".to_string() + etcd + ")",
        "local (lock.in-memory, in process)".to_string(),
        format!("orders (lock.redis at {})", redis.address()),
        "tree (lock.zookeeper at ".to_string() + zookeeper + ")",
    ] {
        assert!(ready.contains(&part), "'{part}' missing from: {ready}");
    }
    assert!(!logs.contains("s3cret-pw"), "{logs}");
}

#[tokio::test]
async fn a_server_on_the_redis_port_that_is_not_redis_is_named() {
    // Another sidecar's HTTP port: it answers, but not as Redis does.
    let other = Dlockd::start(Options::in_memory());
    let address = other.http.trim_start_matches("http://").to_string();
    let file = component("store", "lock.redis", &[("redisHost", &address)]);
    let failed = Dlockd::start_fails(Options::with_component("app", file));
    let said = format!(
        "can't connect to Redis at {address}: it did not answer as Redis (is another kind of \
         server on that port?)"
    );
    assert!(failed.output.contains(&said), "{}", failed.output);
    assert!(!failed.output.contains("Parse error"), "{}", failed.output);
}

fn help(binary: &str) -> String {
    let run = Command::new(binary).arg("--help").output().unwrap();
    assert!(run.status.success(), "{run:?}");
    String::from_utf8_lossy(&run.stdout).to_string()
}

#[test]
fn the_help_texts_say_what_is_true() {
    // Without --resources-path dlockd reads no folder; ./components is not a default.
    let dlockd = help(DLOCKD)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        dlockd.contains("Without any, no folder is read (not even ./components)"),
        "{dlockd}"
    );
    assert!(!dlockd.contains("./components is read"), "{dlockd}");
    // dlock's own calls are dlockd's: it does not claim daprd serves them.
    let dlock = help(DLOCK).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(!dlock.contains("(or daprd)"), "{dlock}");
    assert!(dlock.contains("which daprd does not serve"), "{dlock}");
    assert!(dlock.contains("status"), "{dlock}");
    // The sample component says the same as dlockd's help.
    let sample = include_str!("../../components/lockstore.yaml");
    assert!(
        sample.contains("reads no folder (not ./components"),
        "{sample}"
    );
}
