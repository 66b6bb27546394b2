//! `GET /dlock/v1/events`: what this sidecar saw (`lock/events.rs`) as server-sent events, the
//! console's feed. The recent events come first, then each new one as it happens, one JSON
//! object per `data:` line. A reader that falls too far behind is told how many it missed
//! (`{"what":"missed","count":N}`) and goes on. It is a plain GET under `/dlock/v1/`, so the
//! API token guards it like every data call; a browser reads it with `fetch`, which can send
//! the token, where `EventSource` cannot.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::State;
use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::StreamExt;

use super::ApiState;
use crate::lock::events::{self, ComponentChange, Event, What};
use crate::lock::OwnerChecked;

/// A comment line this often keeps proxies from closing a quiet feed, and lets the server
/// notice a reader that went away.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(crate) fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/dlock/v1/events", get(feed))
}

async fn feed(State(state): State<Arc<ApiState>>) -> Response {
    // Subscribed before the backlog is read, so nothing falls in between; an event in both
    // is sent once, from the backlog (the backlog's events stay alive here, so no new
    // event can take one's address).
    let live = events::subscribe();
    let backlog = events::recent();
    let sent: HashSet<usize> = backlog.iter().map(|e| Arc::as_ptr(e).addr()).collect();
    let first = tokio_stream::iter(backlog.clone()).map(|e| json_of(&e));
    let then = futures_util::stream::unfold((live, sent, backlog), |state| async move {
        let (mut live, sent, backlog) = state;
        loop {
            match live.recv().await {
                Ok(event) if sent.contains(&Arc::as_ptr(&event).addr()) => continue,
                Ok(event) => return Some((json_of(&event), (live, sent, backlog))),
                Err(RecvError::Lagged(count)) => {
                    let missed = json!({ "what": "missed", "count": count });
                    return Some((missed, (live, sent, backlog)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let stream = first
        .chain(then)
        .map(|value| Ok::<_, Infallible>(Sse::default().data(value.to_string())));
    // A feed never ends by itself: it ends when the sidecar shuts down, so an open console
    // does not hold the shutdown until its grace period runs out.
    let shutting_down = async move { state.locks.shutting_down().await };
    let stream = futures_util::StreamExt::take_until(stream, shutting_down);
    axum::response::Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// One event as the feed sends it: 64-bit numbers as strings (§6a of the contract), the
/// fields of `what` beside the common ones.
fn json_of(event: &Event) -> Value {
    let at = event
        .at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut value = json!({
        "atUnixMs": at.to_string(),
        "store": event.store,
        "resourceId": event.resource,
        "lockOwner": event.owner,
    });
    let millis = |d: &Duration| d.as_millis().to_string();
    let (what, details) = match &event.what {
        What::Granted {
            fencing_token,
            waited,
            mode,
            with,
        } => {
            let mut details = json!({
                "fencingToken": fencing_token.unwrap_or(0).to_string(),
                "waitedMs": waited.as_ref().map(millis),
                "mode": mode.name(),
            });
            if !with.is_empty() {
                details["with"] = json!(with);
            }
            ("granted", details)
        }
        What::Refused { waited, mode } => (
            "refused",
            json!({ "waitedMs": waited.as_ref().map(millis), "mode": mode.name() }),
        ),
        What::Released { outcome } => {
            let outcome = match outcome {
                OwnerChecked::Applied => "released",
                OwnerChecked::NotHeld => "not held",
                OwnerChecked::HeldByOther => "held by another owner",
            };
            ("released", json!({ "outcome": outcome }))
        }
        What::Expired => ("expired", json!({})),
        What::Lost { reason } => ("lost", json!({ "reason": reason })),
        What::ForceReleased => ("forceReleased", json!({})),
        What::StoreFailing { error } => ("storeFailing", json!({ "error": error })),
        What::StoreRecovered {
            after,
            failed_calls,
        } => (
            "storeRecovered",
            json!({ "afterMs": millis(after), "failedCalls": failed_calls.to_string() }),
        ),
        What::Component { change } => {
            let (change, reason) = match change {
                ComponentChange::Added => ("added", None),
                ComponentChange::Changed => ("changed", None),
                ComponentChange::Removed => ("removed", None),
                ComponentChange::Rejected { reason } => ("rejected", Some(reason)),
            };
            ("component", json!({ "change": change, "reason": reason }))
        }
    };
    value["what"] = what.into();
    if let (Some(object), Value::Object(details)) = (value.as_object_mut(), details) {
        object.extend(details.into_iter().filter(|(_, v)| !v.is_null()));
    }
    value
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::lock::Mode;

    fn event(what: What) -> Event {
        Event {
            at: UNIX_EPOCH + Duration::from_millis(1_796_197_201_123),
            store: "orders".into(),
            resource: "r".into(),
            owner: "o".into(),
            what,
        }
    }

    #[test]
    fn events_as_the_feed_sends_them() {
        let granted = What::Granted {
            fencing_token: Some(17),
            waited: None,
            mode: Mode::Shared,
            with: Vec::new(),
        };
        assert_eq!(
            json_of(&event(granted)),
            json!({"atUnixMs": "1796197201123", "store": "orders", "resourceId": "r",
                   "lockOwner": "o", "what": "granted", "fencingToken": "17", "mode": "SHARED"})
        );
        let one_of_a_multi_lock = What::Granted {
            fencing_token: None,
            waited: Some(Duration::from_millis(40)),
            mode: Mode::Exclusive,
            with: vec!["s".into(), "t".into()],
        };
        assert_eq!(
            json_of(&event(one_of_a_multi_lock)),
            json!({"atUnixMs": "1796197201123", "store": "orders", "resourceId": "r",
                   "lockOwner": "o", "what": "granted", "fencingToken": "0", "waitedMs": "40",
                   "mode": "EXCLUSIVE", "with": ["s", "t"]})
        );
        let recovered = What::StoreRecovered {
            after: Duration::from_millis(2500),
            failed_calls: 4,
        };
        let recovered = json_of(&event(recovered));
        assert_eq!(recovered["what"], "storeRecovered");
        assert_eq!(recovered["afterMs"], "2500");
        assert_eq!(recovered["failedCalls"], "4");
        let rejected = What::Component {
            change: ComponentChange::Rejected {
                reason: "orders.yaml: field spec.type".into(),
            },
        };
        let rejected = json_of(&event(rejected));
        assert_eq!(rejected["change"], "rejected");
        assert_eq!(rejected["reason"], "orders.yaml: field spec.type");
        let before_epoch = Event {
            at: SystemTime::UNIX_EPOCH - Duration::from_secs(1),
            ..event(What::Expired)
        };
        assert_eq!(json_of(&before_epoch)["atUnixMs"], "0");
    }
}
