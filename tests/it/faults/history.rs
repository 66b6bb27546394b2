//! The history checker: every critical section a fault test saw, as (owner, fencing token,
//! start, end) on one monotonic clock, and the check that no two overlap and that fencing
//! tokens strictly increase in grant order.
//!
//! A section is recorded wide, never narrow: its start no later than the grant (the moment the
//! granting call was sent, or before) and its end no sooner than its owner stopped believing
//! it held the lock (when it released, or when its `dlock` was seen to have exited). Two wide
//! sections that do not overlap are two real ones that did not; so a pass is a proof, and a
//! failure may only be a section recorded too wide, which the message shows.

use std::sync::Mutex;
use std::time::Instant;

/// One critical section.
#[derive(Debug, Clone)]
pub struct Section {
    pub owner: String,
    /// The grant's fencing token, where the store gives one.
    pub token: Option<u64>,
    pub start: Instant,
    pub end: Instant,
}

/// The sections of one lock, from every owner, in any order.
#[derive(Default)]
pub struct History {
    sections: Mutex<Vec<Section>>,
}

impl History {
    pub fn record(&self, owner: &str, token: Option<u64>, start: Instant, end: Instant) {
        assert!(start <= end, "{owner}'s section ends before it starts");
        self.sections.lock().unwrap().push(Section {
            owner: owner.to_string(),
            token,
            start,
            end,
        });
    }

    /// Panics, showing the history, unless every section ends strictly before the next one
    /// starts and the tokens (where given) strictly increase in that order.
    pub fn check(&self) {
        let mut sections = self.sections.lock().unwrap().clone();
        sections.sort_by_key(|s| s.start);
        if let Err(problem) = check(&sections) {
            let origin = sections.first().map(|s| s.start);
            let shown: Vec<String> = sections
                .iter()
                .map(|s| {
                    let at = |t: Instant| t - origin.unwrap();
                    format!(
                        "  {} token {:?}: {:?} .. {:?}",
                        s.owner,
                        s.token,
                        at(s.start),
                        at(s.end)
                    )
                })
                .collect();
            panic!("{problem}; the history:\n{}", shown.join("\n"));
        }
    }
}

/// The checks, on sections sorted by start.
fn check(sections: &[Section]) -> Result<(), String> {
    for pair in sections.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.start <= a.end {
            return Err(format!(
                "{} was granted the lock {:?} before {} stopped holding it",
                b.owner,
                a.end - b.start,
                a.owner
            ));
        }
    }
    let tokens: Vec<(u64, &str)> = sections
        .iter()
        .filter_map(|s| Some((s.token?, s.owner.as_str())))
        .collect();
    for pair in tokens.windows(2) {
        if pair[1].0 <= pair[0].0 {
            return Err(format!(
                "fencing token {} ({}) after {} ({}): tokens must strictly increase",
                pair[1].0, pair[1].1, pair[0].0, pair[0].1
            ));
        }
    }
    Ok(())
}

#[test]
fn the_checker_finds_an_overlap_and_a_token_that_goes_back() {
    use std::time::Duration;
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let section = |owner: &str, token, start, end| Section {
        owner: owner.into(),
        token,
        start: ms(start),
        end: ms(end),
    };
    let good = [section("a", Some(1), 0, 10), section("b", Some(2), 11, 20)];
    assert_eq!(check(&good), Ok(()));
    let overlap = [section("a", Some(1), 0, 10), section("b", Some(2), 10, 20)];
    assert!(check(&overlap).unwrap_err().contains("before a stopped"));
    let back = [section("a", Some(2), 0, 10), section("b", Some(2), 11, 20)];
    assert!(check(&back).unwrap_err().contains("strictly increase"));
    let untokened = [section("a", None, 0, 10), section("b", None, 11, 20)];
    assert_eq!(check(&untokened), Ok(()));
}
