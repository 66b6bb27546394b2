//! The API log (daprd's `--enable-api-logging`): one info line per call of the lock API, with
//! the method, store, resource id, owner, outcome and duration. It is written here, in the core
//! every door calls, so a call logs alike whether it came over HTTP or gRPC, through Dapr's API
//! or dlock's own, and no handler can forget it. Its target stays at info whatever
//! `--log-level` says, as daprd's API log does.

use std::time::Instant;

use super::{ApiError, Grant, HeldLock, OwnerChecked, TryLockOutcome};

/// The log target of the API log lines.
pub const TARGET: &str = "dlock::api_calls";

/// One call being served while the API log is on.
pub(crate) struct Call {
    method: &'static str,
    store: String,
    resource: String,
    owner: String,
    started: Instant,
}

impl Call {
    /// A call starting: Some when the API log is on. `method` is the gRPC method's name, which
    /// the HTTP routes mirror.
    pub(crate) fn begin(
        on: bool,
        method: &'static str,
        store: &str,
        resource: &str,
        owner: &str,
    ) -> Option<Call> {
        on.then(|| Call {
            method,
            store: store.to_string(),
            resource: resource.to_string(),
            owner: owner.to_string(),
            started: Instant::now(),
        })
    }

    /// Logs how the call ended, if it is logged, and hands its result on.
    pub(crate) fn end<T: Outcome>(
        call: Option<Call>,
        result: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        if let Some(call) = call {
            let outcome = match &result {
                Ok(answer) => answer.outcome(),
                Err(error) => format!("error: {error}"),
            };
            let duration = call.started.elapsed().as_secs_f64() * 1000.0;
            tracing::info!(
                target: TARGET,
                method = call.method,
                store = call.store,
                resource = call.resource,
                owner = call.owner,
                outcome,
                duration_ms = format_args!("{duration:.3}"),
                "API call"
            );
        }
        result
    }
}

/// A call's answer, as the API log shows it.
pub(crate) trait Outcome {
    fn outcome(&self) -> String;
}

impl Outcome for TryLockOutcome {
    fn outcome(&self) -> String {
        match self {
            TryLockOutcome::Granted(_) => "granted",
            TryLockOutcome::Held => "held by another owner",
            TryLockOutcome::Refused(_) => "refused",
        }
        .into()
    }
}

impl Outcome for crate::lock::Released {
    fn outcome(&self) -> String {
        format!("{}, {} holds left", self.outcome.outcome(), self.holds_left)
    }
}

/// Unlock and renew, in the words of Dapr's unlock statuses.
impl Outcome for OwnerChecked {
    fn outcome(&self) -> String {
        match self {
            OwnerChecked::Applied => "success",
            OwnerChecked::NotHeld => "lock does not exist",
            OwnerChecked::HeldByOther => "lock belongs to others",
        }
        .into()
    }
}

/// A blocking acquire.
impl Outcome for Option<Grant> {
    fn outcome(&self) -> String {
        match self {
            Some(_) => "acquired",
            None => "timed out",
        }
        .into()
    }
}

/// An inspection.
impl Outcome for Option<HeldLock> {
    fn outcome(&self) -> String {
        match self {
            Some(held) => format!("held by {}", held.owner),
            None => "free".into(),
        }
    }
}

/// A listing.
impl Outcome for Vec<HeldLock> {
    fn outcome(&self) -> String {
        format!("{} held", self.len())
    }
}

/// A force release.
impl Outcome for bool {
    fn outcome(&self) -> String {
        if *self { "released" } else { "not held" }.into()
    }
}
