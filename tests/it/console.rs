//! The console (issue 13, item 1) in a real headless Chromium, over WebDriver: locks taken
//! through the API appear with a countdown and their waiters, a force release clicked in the
//! page (admin token and confirmation) frees the lock, a stopped store shows as failing, the
//! feed shows what the sidecar saw, with an API token the page asks for it before it shows
//! any data, and without an admin token it offers no force release. It saves a screenshot of the page (see `screenshot`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use dlock::cli::http_client::HttpClient;
use serde_json::{json, Value};

use crate::support::api::{Api, Protocol, SUCCESS};
use crate::support::dlockd::{component, Dlockd, Options};
use crate::support::locks_http::inspected;
use crate::support::servers::{Outage, Redis};
use crate::support::webdriver::Browser;

const ADMIN_TOKEN: &str = "adm1n-t0ken";
/// The bound: a lock taken through the API shows in the page within 2 s.
const APPEARS_WITHIN: Duration = Duration::from_secs(2);
/// A generous bound for everything else the page shows.
const SOON: Duration = Duration::from_secs(15);

/// A script's first line: `r`, the page's table row of one lock (null while there is none).
fn row(store: &str, resource: &str) -> String {
    format!(
        "const r = document.querySelector('#locks tr[data-store=\"{store}\"][data-resource=\"{resource}\"]');"
    )
}

/// What the page's lock table shows for one lock, or null while it is not there.
fn lock_row(store: &str, resource: &str) -> String {
    format!(
        "{} return r && {{owner: r.cells[2].textContent, left: r.cells[3].textContent,
                       token: r.cells[4].textContent, waiting: r.cells[5].textContent}};",
        row(store, resource)
    )
}

/// Seconds from the countdown's text ("12.3 s", "1 m 05 s").
fn seconds_left(row: &Value) -> f64 {
    let text = row["left"].as_str().unwrap();
    let parts: Vec<f64> = text.split(' ').filter_map(|p| p.parse().ok()).collect();
    match parts.as_slice() {
        [s] => *s,
        [m, s] => m * 60.0 + s,
        _ => panic!("not a time left: {text}"),
    }
}

/// Where the screenshot goes: target/console.png, and also the path in
/// DLOCK_CONSOLE_SCREENSHOT when set (the README's is made with
/// `DLOCK_CONSOLE_SCREENSHOT=$PWD/docs/console.png scripts/test.sh console::`).
fn screenshot_paths() -> Vec<PathBuf> {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../console.png");
    let mut paths = vec![target];
    paths.extend(std::env::var_os("DLOCK_CONSOLE_SCREENSHOT").map(PathBuf::from));
    paths
}

#[tokio::test]
async fn the_console_shows_locks_live_force_releases_one_and_shows_a_failing_store() {
    let mut redis = Redis::start(&[]);
    let address = redis.address();
    let orders = component(
        "orders",
        "lock.redis",
        &[
            ("redisHost", &address),
            ("readTimeout", "1s"),
            ("dialTimeout", "1s"),
        ],
    );
    let jobs = component("jobs", "lock.in-memory", &[]);
    let mut options =
        Options::with_files("billing", &[("orders.yaml", orders), ("jobs.yaml", jobs)]);
    options
        .env
        .push(("DLOCK_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()));
    let sidecar = Dlockd::start(options);
    let api = Api::new(&sidecar).await;

    let browser = Browser::start().await;
    browser
        .goto(&format!("{}/dlock/console", sidecar.http))
        .await;
    let stores = "return document.querySelectorAll('#stores tbody tr').length === 2";
    browser.wait_for("both stores listed", stores, SOON).await;
    let store_row = "const r = document.querySelector('#stores tr[data-store=\"orders\"]');
               return r && Array.from(r.cells, c => c.textContent);";
    let cells = browser.wait_for("the orders store", store_row, SOON).await;
    assert_eq!(cells[1], "lock.redis", "{cells}");
    assert_eq!(cells[2], address.as_str(), "{cells}");
    assert_eq!(cells[4], "ok", "{cells}");

    // A lock taken through the API appears within 2 s, with its owner and fencing token.
    let taken = api
        .lock(Protocol::Http, "jobs", "invoice-7", "worker-1", 50)
        .await;
    assert_eq!(taken, Ok(true));
    let shown = browser
        .wait_for(
            "invoice-7 in the page",
            &lock_row("jobs", "invoice-7"),
            APPEARS_WITHIN,
        )
        .await;
    assert_eq!(shown["owner"], "worker-1", "{shown}");
    let first = seconds_left(&shown);
    assert!((1.0..=50.0).contains(&first), "{shown}");
    // Its countdown moves, between the page's polls too: sampled in the page every 50 ms for
    // 1.2 s, it shows more values than the one or two polls of that time would.
    let sample = format!(
        "window.samples = [];
         const sampling = setInterval(() => {{
           {} window.samples.push(r ? r.cells[3].textContent : null);
         }}, 50);
         setTimeout(() => {{ clearInterval(sampling); window.sampled = true; }}, 1200);",
        row("jobs", "invoice-7")
    );
    browser.run(&sample, json!([])).await;
    let samples = "return window.sampled && window.samples;";
    let samples = browser
        .wait_for("the countdown sampled", samples, SOON)
        .await;
    let samples: Vec<f64> = samples
        .as_array()
        .unwrap()
        .iter()
        .map(|text| seconds_left(&json!({ "left": text })))
        .collect();
    assert!(samples.windows(2).all(|w| w[1] <= w[0]), "{samples:?}");
    let mut distinct = samples.clone();
    distinct.dedup();
    assert!(
        distinct.len() >= 5,
        "the countdown moved only at polls: {samples:?}"
    );
    assert!(samples[0] <= first, "{samples:?} after {first}");

    // More locks on both stores, and a waiter, for a realistic page.
    for (store, resource, owner) in [
        ("orders", "order-1001", "checkout-a"),
        ("orders", "order-1002", "checkout-b"),
        ("jobs", "report-daily", "cron@host-2"),
    ] {
        let body = acquire(&api, store, resource, owner).await;
        assert_eq!(body["acquired"], true, "{body}");
    }
    // A lock taken and released, and one refused, for the feed.
    assert_eq!(
        api.lock(Protocol::Grpc, "jobs", "nightly-export", "cron@host-1", 60)
            .await,
        Ok(true)
    );
    assert_eq!(
        api.unlock(Protocol::Grpc, "jobs", "nightly-export", "cron@host-1")
            .await,
        Ok(SUCCESS)
    );
    assert_eq!(
        api.lock(Protocol::Grpc, "orders", "order-1001", "checkout-c", 60)
            .await,
        Ok(false)
    );
    let waiter = api.wait_in_background("jobs", "report-daily", "cron@host-3");
    let counted = format!(
        "{} return r && r.cells[5].textContent === '1';",
        row("jobs", "report-daily")
    );
    browser
        .wait_for("one waiter for report-daily", &counted, SOON)
        .await;
    let orders_token = browser
        .wait_for("order-1001", &lock_row("orders", "order-1001"), SOON)
        .await;
    assert_ne!(
        orders_token["token"], "–",
        "redis grants fencing tokens: {orders_token}"
    );
    // The feed, newest first: what this sidecar saw, in order.
    let feed = "const t = Array.from(document.querySelectorAll('#feed li'), l => l.textContent);
                return t.length > 0 && t[0].includes('orders/order-1001 refused to checkout-c') && t;";
    let feed = browser.wait_for("the events in the feed", feed, SOON).await;
    let feed: Vec<String> = serde_json::from_value(feed).unwrap();
    // Redis's tokens start from its clock (so a failover never repeats one): the feed shows
    // the ones the page shows for each lock, the later grant's larger.
    let token = |row: &Value| row["token"].as_str().unwrap_or_default().to_string();
    let later = browser
        .wait_for("order-1002", &lock_row("orders", "order-1002"), SOON)
        .await;
    let (first, second) = (token(&orders_token), token(&later));
    let number = |t: &str| {
        t.parse::<u64>()
            .unwrap_or_else(|_| panic!("not a token: {t}"))
    };
    assert!(number(&second) > number(&first), "{first} then {second}");
    let expected = [
        "orders/order-1001 refused to checkout-c".to_string(),
        "jobs/nightly-export released by cron@host-1".into(),
        "jobs/nightly-export granted to cron@host-1".into(),
        "jobs/report-daily granted to cron@host-2".into(),
        format!("orders/order-1002 granted to checkout-b (fencing token {second})"),
        format!("orders/order-1001 granted to checkout-a (fencing token {first})"),
        "jobs/invoice-7 granted to worker-1".into(),
    ];
    for (line, expected) in feed.iter().zip(&expected) {
        // Each line starts with the time, HH:MM:SS.
        assert!(
            line[8..].starts_with(expected),
            "{line:?} is not {expected:?}: {feed:?}"
        );
    }
    assert_eq!(feed.len(), expected.len(), "{feed:?}");
    for path in screenshot_paths() {
        browser.screenshot(&path).await;
    }

    // The search box keeps the locks whose resource ids start with what it holds.
    let shown = "const rows = Array.from(document.querySelectorAll('#locks tbody tr'), r => r.dataset.resource);
                 return rows.join(',') === arguments[0] && rows;";
    let prefix = browser.find("#prefix").await;
    browser.type_into(&prefix, "order-100").await;
    let only = shown.replace("arguments[0]", "'order-1001,order-1002'");
    browser
        .wait_for("the search for order-100", &only, SOON)
        .await;
    browser.type_into(&prefix, "").await;
    let all = shown.replace(
        "arguments[0]",
        "'invoice-7,report-daily,order-1001,order-1002'",
    );
    browser.wait_for("the search cleared", &all, SOON).await;

    // A force release clicked in the page, with the admin token and the confirmation.
    let button = "#locks tr[data-store=\"jobs\"][data-resource=\"invoice-7\"] button.force";
    browser.click(&browser.find(button).await).await;
    let asked = "const d = document.getElementById('force-dialog');
                 return d.open && document.getElementById('force-resource').textContent;";
    let asked = browser.wait_for("the confirmation", asked, SOON).await;
    assert_eq!(asked, "invoice-7");
    // A wrong token is refused, in the dialog, and the lock stays.
    browser
        .type_into(&browser.find("#admin-token").await, "wrong")
        .await;
    browser.click(&browser.find("#force-confirm").await).await;
    let refused = "return document.getElementById('force-error').textContent || null;";
    let refused = browser.wait_for("the refusal", refused, SOON).await;
    assert!(
        refused.as_str().unwrap().contains("admin token"),
        "{refused}"
    );
    let still = inspected(&inspect(&api, "jobs", "invoice-7").await);
    assert_eq!(still.map(|l| l.lock_owner).as_deref(), Some("worker-1"));
    browser
        .type_into(&browser.find("#admin-token").await, ADMIN_TOKEN)
        .await;
    browser.click(&browser.find("#force-confirm").await).await;
    let gone = "return !document.getElementById('force-dialog').open &&
                !document.querySelector('#locks tr[data-resource=\"invoice-7\"]');";
    browser
        .wait_for("invoice-7 gone from the page", gone, SOON)
        .await;
    assert_eq!(inspected(&inspect(&api, "jobs", "invoice-7").await), None);
    let forced =
        "return Array.from(document.querySelectorAll('#feed li[data-what=\"forceReleased\"]'))
                  .some(l => l.textContent.includes('jobs/invoice-7'));";
    browser
        .wait_for("the force release in the feed", forced, SOON)
        .await;

    // A semaphore's row shows its mode and limit, and each holder with its own countdown.
    for (owner, expiry) in [("night-1", 50), ("night-2", 20)] {
        let body = json!({"resourceId": "report-run", "lockOwner": owner,
                          "expiryInSeconds": expiry, "mode": "SHARED", "limit": 2});
        let answer = api.post("/dlock/v1/acquire/jobs", body.to_string()).await;
        assert_eq!(answer.unwrap()["acquired"], true);
    }
    let holders = format!(
        "{} return r && r.cells[2].children.length === 2 && {{
            owners: Array.from(r.cells[2].children, c => c.textContent),
            left: Array.from(r.cells[3].children, c => c.textContent),
            mode: r.cells[6].textContent}};",
        row("jobs", "report-run")
    );
    let shown = browser
        .wait_for("the semaphore's holders", &holders, APPEARS_WITHIN)
        .await;
    assert_eq!(shown["owners"], json!(["night-1", "night-2"]), "{shown}");
    assert_eq!(shown["mode"], "shared, limit 2", "{shown}");
    let left: Vec<f64> = shown["left"]
        .as_array()
        .unwrap()
        .iter()
        .map(|text| seconds_left(&json!({ "left": text })))
        .collect();
    assert!(left[0] > 40.0 && left[1] <= 20.0, "{shown}");

    // A multi-lock is one grant of two resources: each resource's line in the feed names the
    // other.
    let body = json!({"resourceIds": ["batch-b", "batch-a"], "lockOwner": "batch@host-5",
                      "expiryInSeconds": 60});
    let answer = api.post("/dlock/v1/acquire/jobs", body.to_string()).await;
    assert_eq!(answer.unwrap()["acquired"], true);
    let together = "const t = Array.from(document.querySelectorAll('#feed li'), l => l.textContent)
                        .filter(l => l.includes('granted to batch@host-5'));
                    return t.length === 2 && t;";
    let together = browser
        .wait_for("the multi-lock in the feed", together, SOON)
        .await;
    let together: Vec<String> = serde_json::from_value(together).unwrap();
    for (line, (resource, other)) in together
        .iter()
        .zip([("batch-b", "batch-a"), ("batch-a", "batch-b")])
    {
        assert!(
            line[8..].starts_with(&format!("jobs/{resource} granted to batch@host-5"))
                && line.ends_with(&format!(", one multi-lock with {other}")),
            "{line:?}: {together:?}"
        );
    }

    // A store stopped shows as failing, in the table and in the feed.
    redis.stop();
    let failing = "const r = document.querySelector('#stores tr[data-store=\"orders\"] td.health');
                   return r && r.classList.contains('failing') && r.textContent;";
    let failing = browser.wait_for("orders failing", failing, SOON).await;
    assert!(
        failing.as_str().unwrap().starts_with("failing since "),
        "{failing}"
    );
    let fed = "return !!document.querySelector('#feed li[data-what=\"storeFailing\"]');";
    browser.wait_for("the failure in the feed", fed, SOON).await;
    waiter.abort();
}

async fn acquire(api: &Api, store: &str, resource: &str, owner: &str) -> Value {
    let body = json!({"resourceId": resource, "lockOwner": owner, "expiryInSeconds": 120, "waitTimeoutMs": 0});
    api.post(&format!("/dlock/v1/acquire/{store}"), body.to_string())
        .await
        .unwrap()
}

async fn inspect(api: &Api, store: &str, resource: &str) -> Value {
    let body = json!({ "resourceId": resource });
    api.post(&format!("/dlock/v1/inspect/{store}"), body.to_string())
        .await
        .unwrap()
}

/// With DAPR_API_TOKEN set, the page loads without it (it holds no data), but no data call
/// answers without the token, and the page asks for it before it shows anything.
#[tokio::test]
async fn with_an_api_token_the_console_asks_for_it_and_shows_data_only_after() {
    let token = "s3cret-api-t0ken";
    let mut options = Options::in_memory();
    options.env.push(("DAPR_API_TOKEN".into(), token.into()));
    let sidecar = Dlockd::start(options);
    let anonymous = HttpClient::new(&sidecar.http, None);
    for file in [
        "/dlock/console",
        "/dlock/console/console.js",
        "/dlock/console/console.css",
    ] {
        let answer = anonymous.get(file).await.unwrap();
        assert_eq!(answer.status, 200, "{file}");
        assert!(!String::from_utf8_lossy(&answer.body).contains(token));
    }
    for path in ["/dlock/v1/stores", "/dlock/v1/events"] {
        assert_eq!(anonymous.get(path).await.unwrap().status, 401, "{path}");
    }
    let list = anonymous.post("/dlock/v1/list/store", "{}").await.unwrap();
    assert_eq!(list.status, 401);
    let trusted = HttpClient::new(&sidecar.http, Some(token.into()));
    let api = Api {
        grpc: sidecar.client().await,
        http: trusted,
    };
    let taken = api.lock(Protocol::Http, "store", "guarded", "o", 60).await;
    assert_eq!(taken, Ok(true));

    let browser = Browser::start().await;
    browser
        .goto(&format!("{}/dlock/console", sidecar.http))
        .await;
    let asked = "return document.getElementById('token-dialog').open;";
    browser.wait_for("the token asked for", asked, SOON).await;
    let data =
        "return document.querySelectorAll('#stores tbody tr, #locks tbody tr, #feed li').length;";
    assert_eq!(browser.run(data, json!([])).await, 0);

    browser
        .type_into(&browser.find("#api-token").await, "wrong")
        .await;
    browser.click(&browser.find("#api-token-ok").await).await;
    let refused = "return document.getElementById('token-dialog').open &&
                   document.getElementById('token-error').textContent;";
    let refused = browser
        .wait_for("the wrong token refused", refused, SOON)
        .await;
    assert!(refused.as_str().unwrap().contains("refused"), "{refused}");
    assert_eq!(browser.run(data, json!([])).await, 0);

    browser
        .type_into(&browser.find("#api-token").await, token)
        .await;
    browser.click(&browser.find("#api-token-ok").await).await;
    let shown = browser
        .wait_for(
            "the lock after the token",
            &lock_row("store", "guarded"),
            SOON,
        )
        .await;
    assert_eq!(shown["owner"], "o");
    let fed = "return Array.from(document.querySelectorAll('#feed li')).some(l => l.textContent.includes('store/guarded granted'));";
    browser
        .wait_for("the feed after the token", fed, SOON)
        .await;

    // This sidecar has no admin token: force release shows as unavailable, and asks nothing.
    let force = format!(
        "{} const b = r && r.querySelector('button.force');
         return b && {{disabled: b.disabled, title: b.title}};",
        row("store", "guarded")
    );
    let force = browser.wait_for("the force button", &force, SOON).await;
    assert_eq!(force["disabled"], true, "{force}");
    let title = force["title"].as_str().unwrap_or_default();
    assert!(title.contains("DLOCK_ADMIN_TOKEN"), "{force}");
    let stores = api.http.get("/dlock/v1/stores").await.unwrap().json();
    assert_eq!(stores["forceReleaseEnabled"], false, "{stores}");
}
