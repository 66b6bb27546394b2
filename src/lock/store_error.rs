//! Why a store could not answer, in the words callers see and with the error underneath.
//!
//! The words are what the API answers, the health page shows and the log prints, so each
//! store chooses them (an outage's cause, the database's own message and code) and keeps
//! secrets out of them. The error they came from rides along as the error's `source()`, for
//! code that wants to look at it; since the words already say what it said, a log prints the
//! error (`{error}`), not its chain of sources, which would say it twice.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// Why a store could not answer. The sidecar turns every variant into ERR_TRY_LOCK /
/// ERR_UNLOCK on Dapr's API; the variants let callers that retry tell an outage from a refusal.
/// Built by `StoreError::unavailable` or `StoreError::failed`, with `with_source` where an
/// error underneath was the cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The store could not be reached or did not answer in time; retrying may help.
    Unavailable(Cause),
    /// The store cannot do this at all (see `Capabilities`).
    Unsupported(&'static str),
    /// The store answered with something it should not have.
    Failed(Cause),
}

/// What went wrong: the store's words, and the error it came from where there was one.
#[derive(Debug, Clone)]
pub struct Cause {
    message: String,
    /// Shared, so that a `StoreError` stays cheap to clone.
    source: Option<Arc<dyn Error + Send + Sync>>,
}

impl StoreError {
    /// An outage: `message` says what could not be reached or what did not answer in time.
    pub(crate) fn unavailable(message: impl Into<String>) -> StoreError {
        StoreError::Unavailable(Cause::new(message))
    }

    /// A wrong answer: `message` says what the store answered that it should not have.
    pub(crate) fn failed(message: impl Into<String>) -> StoreError {
        StoreError::Failed(Cause::new(message))
    }

    /// The same error, caused by `source`: the message says what it said, in the store's
    /// words. An `Unsupported` error is never caused by another, and stays as it is.
    pub(crate) fn with_source(self, source: impl Error + Send + Sync + 'static) -> StoreError {
        let caused = |cause: Cause| Cause {
            source: Some(Arc::new(source)),
            ..cause
        };
        match self {
            StoreError::Unavailable(cause) => StoreError::Unavailable(caused(cause)),
            StoreError::Failed(cause) => StoreError::Failed(caused(cause)),
            unsupported @ StoreError::Unsupported(_) => unsupported,
        }
    }
}

impl Cause {
    fn new(message: impl Into<String>) -> Cause {
        Cause {
            message: message.into(),
            source: None,
        }
    }
}

/// Two causes are the same when they say the same: what the source said is in the words, and
/// errors underneath can't be compared. The contract tests compare whole answers this way.
impl PartialEq for Cause {
    fn eq(&self, other: &Cause) -> bool {
        self.message == other.message
    }
}

impl Eq for Cause {}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(cause) => write!(f, "lock store unavailable: {cause}"),
            StoreError::Unsupported(what) => write!(f, "not supported by this lock store: {what}"),
            StoreError::Failed(cause) => write!(f, "{cause}"),
        }
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            StoreError::Unavailable(cause) | StoreError::Failed(cause) => {
                cause.source.as_deref().map(|source| source as _)
            }
            StoreError::Unsupported(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_caused_by_another_says_the_same_and_gives_its_source() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error =
            StoreError::unavailable(format!("no connection: {refused}")).with_source(refused);
        assert_eq!(
            error.to_string(),
            "lock store unavailable: no connection: refused"
        );
        let source = error.source().expect("the cause is the source");
        let io = source
            .downcast_ref::<std::io::Error>()
            .expect("an io::Error");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
        // A clone shares the source.
        assert!(error.clone().source().is_some());

        let failed = StoreError::failed("bad answer").with_source(fmt::Error);
        assert_eq!(failed.to_string(), "bad answer");
        assert!(failed.source().unwrap().is::<fmt::Error>());
    }

    #[test]
    fn an_error_of_words_alone_has_no_source() {
        let error = StoreError::failed("the table holds a foreign row");
        assert_eq!(error.to_string(), "the table holds a foreign row");
        assert!(error.source().is_none());
        let unsupported = StoreError::Unsupported("listing").with_source(fmt::Error);
        assert_eq!(
            unsupported.to_string(),
            "not supported by this lock store: listing"
        );
        assert!(unsupported.source().is_none());
    }
}
