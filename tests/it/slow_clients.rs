//! Slow, idle and many clients are bounded (`--http-header-read-timeout`,
//! `--http-idle-timeout`, `--max-connections`), and the application's own calls are still
//! answered among them.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::api::{Api, Protocol};
use crate::support::dlockd::{Dlockd, Options};

fn sidecar(flags: &[&str]) -> Dlockd {
    Dlockd::start(Options {
        extra_args: flags.iter().map(|f| f.to_string()).collect(),
        ..Options::in_memory()
    })
}

fn http_address(sidecar: &Dlockd) -> String {
    sidecar.http.trim_start_matches("http://").to_string()
}

/// Waits until the server closes `conn` (a read sees the end), at most `within`.
async fn closed_within(conn: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 256];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut byte)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Lets this process hold a thousand client connections (the soft limit is often 1,024).
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[tokio::test]
async fn a_request_sent_a_byte_at_a_time_is_cut_off() {
    let sidecar = sidecar(&["--http-header-read-timeout", "1s"]);
    let address = http_address(&sidecar);
    let request = b"POST /v1.0-alpha1/lock/store HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n\r\n";
    let mut trickles = Vec::new();
    for _ in 0..100 {
        let mut conn = TcpStream::connect(&address).await.unwrap();
        conn.write_all(&request[..1]).await.unwrap();
        trickles.push(conn);
    }
    // One more byte each every 200 ms: each connection is busy, never idle, never done.
    let started = Instant::now();
    let mut sent = 1;
    let mut open = trickles.len();
    while open > 0 && started.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        open = 0;
        for conn in &mut trickles {
            if conn.write_all(&request[sent..sent + 1]).await.is_ok() && conn.flush().await.is_ok()
            {
                open += 1;
            }
        }
        sent = (sent + 1).min(request.len() - 1);
    }
    let mut closed = 0;
    for conn in &mut trickles {
        if closed_within(conn, Duration::from_secs(2)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 100, "closed of 100 after {:?}", started.elapsed());
    // A body that trickles is cut off the same way.
    let mut conn = TcpStream::connect(&address).await.unwrap();
    conn.write_all(request).await.unwrap();
    conn.write_all(b"{").await.unwrap();
    assert!(closed_within(&mut conn, Duration::from_secs(4)).await);
}

#[tokio::test]
async fn an_idle_connection_is_closed_but_a_waiting_request_is_not() {
    let sidecar = sidecar(&[
        "--http-idle-timeout",
        "1s",
        "--http-header-read-timeout",
        "1s",
    ]);
    let address = http_address(&sidecar);
    // Never a byte.
    let mut silent = TcpStream::connect(&address).await.unwrap();
    // One request answered, then nothing.
    let mut kept_alive = TcpStream::connect(&address).await.unwrap();
    kept_alive
        .write_all(b"GET /v1.0/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 512];
    let n = kept_alive.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 204"));
    assert!(closed_within(&mut silent, Duration::from_secs(3)).await);
    assert!(closed_within(&mut kept_alive, Duration::from_secs(3)).await);

    // A blocking acquire waits 2.5 s on one connection, longer than both timeouts: it is
    // served to the end.
    let api = Api::new(&sidecar).await;
    assert_eq!(
        api.lock(Protocol::Grpc, "store", "busy", "holder", 2).await,
        Ok(true)
    );
    let started = Instant::now();
    let acquired = api
        .post(
            "/dlock/v1/acquire/store",
            r#"{"resourceId":"busy","lockOwner":"waiter","expiryInSeconds":5,"waitTimeoutMs":10000}"#
                .to_string(),
        )
        .await;
    assert!(
        started.elapsed() > Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let acquired = acquired.unwrap();
    assert_eq!(acquired["acquired"], true, "{acquired}");
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_and_the_app_is_still_answered() {
    raise_open_file_limit();
    let sidecar = sidecar(&["--max-connections", "1000"]);
    let address = http_address(&sidecar);
    let api = Api::new(&sidecar).await;
    // The Api client's own connections count too: fill the rest with idle and slow ones.
    let mut held = Vec::new();
    for i in 0..990 {
        let mut conn = TcpStream::connect(&address).await.unwrap();
        if i % 2 == 0 {
            conn.write_all(b"POST /v1.0-alpha1/lock/store HTTP/1.1\r\n")
                .await
                .unwrap();
        }
        held.push(conn);
    }
    let started = Instant::now();
    assert_eq!(
        api.lock(Protocol::Http, "store", "among-many", "o", 5)
            .await,
        Ok(true)
    );
    println!(
        "answered among 990 idle or slow connections in {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    // Over the cap: accepted and closed at once.
    let mut over = Vec::new();
    for _ in 0..20 {
        over.push(TcpStream::connect(&address).await.unwrap());
    }
    let mut closed = 0;
    for conn in &mut over {
        if closed_within(conn, Duration::from_secs(2)).await {
            closed += 1;
        }
    }
    assert!(closed >= 10, "only {closed} of 20 over the cap were closed");
    // Places come back as connections close.
    held.clear();
    over.clear();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut conn = TcpStream::connect(&address).await.unwrap();
        conn.write_all(b"GET /v1.0/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 64];
        if matches!(conn.read(&mut answer).await, Ok(n) if answer[..n].starts_with(b"HTTP/1.1 204"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no place came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
