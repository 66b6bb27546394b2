//! The storage service's clock, as this sidecar knows it. Every lock deadline is a time by the
//! service's clock, so that sidecars on machines whose clocks disagree agree on when a lock
//! expires. The service tells its time in each response's `Date` header, but only to the
//! second, and a one-second lock needs better.
//!
//! So the store keeps bounds on the offset between the service's clock and this machine's
//! monotonic clock. A response dated `D`, sent at local `s` and received at `r`, says the
//! service's time was in `[D, D + 1 s)` at some instant between `s` and `r`; each response
//! narrows the bounds, and a response whose date ticked over since the previous one narrows them
//! to about a round trip. `calibrate` asks quickly until that happens. The bounds widen by a
//! generous clock drift (100 ppm) as they age, and reset if a response contradicts them (the
//! service's clock was stepped).
//!
//! Deadlines are set by the latest time the service may have now, and a lock counts as expired
//! only once the earliest time it may have now has passed its deadline: a lock lasts at least
//! its TTL, and at most its TTL plus the width of the bounds.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Widening per elapsed millisecond, as a divisor: 1/10,000 is 100 ppm.
const DRIFT_DIVISOR: i64 = 10_000;

pub(crate) struct ServiceClock {
    anchor: Instant,
    bounds: Mutex<Bounds>,
}

/// The offset (service ms since the epoch minus local ms since `anchor`) is in `[lo, hi]`, as
/// of local time `at`.
#[derive(Clone, Copy)]
struct Bounds {
    lo: i64,
    hi: i64,
    at: i64,
}

impl Bounds {
    /// The bounds at local time `now`, widened by the drift since they were set.
    fn aged(self, now: i64) -> Bounds {
        let drift = (now - self.at).max(0) / DRIFT_DIVISOR;
        Bounds {
            lo: self.lo.saturating_sub(drift),
            hi: self.hi.saturating_add(drift),
            at: now,
        }
    }
}

impl ServiceClock {
    /// A clock that knows nothing yet: until the first response, it trusts this machine's
    /// wall clock to within a minute.
    pub(crate) fn new() -> ServiceClock {
        let anchor = Instant::now();
        let wall = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        ServiceClock {
            anchor,
            bounds: Mutex::new(Bounds {
                lo: wall - 60_000,
                hi: wall + 60_000,
                at: 0,
            }),
        }
    }

    fn local(&self, at: Instant) -> i64 {
        at.saturating_duration_since(self.anchor).as_millis() as i64
    }

    fn bounds(&self) -> Bounds {
        let bounds = *self.bounds.lock().unwrap_or_else(|e| e.into_inner());
        bounds.aged(self.local(Instant::now()))
    }

    /// Learns from a response dated `date` (whole seconds) to a request sent at `sent` and
    /// answered at `received`.
    pub(crate) fn observe(&self, sent: Instant, received: Instant, date: SystemTime) {
        let Ok(date) = date.duration_since(SystemTime::UNIX_EPOCH) else {
            return;
        };
        let date = date.as_millis() as i64;
        let (sent, received) = (self.local(sent), self.local(received));
        let sample = Bounds {
            lo: date - received,
            hi: date + 999 - sent,
            at: received,
        };
        let mut bounds = self.bounds.lock().unwrap_or_else(|e| e.into_inner());
        let aged = bounds.aged(received);
        let narrowed = Bounds {
            lo: aged.lo.max(sample.lo),
            hi: aged.hi.min(sample.hi),
            at: received,
        };
        *bounds = if narrowed.lo > narrowed.hi {
            sample
        } else {
            narrowed
        };
    }

    /// The earliest time the service's clock may show now, in ms since the epoch.
    pub(crate) fn earliest_now(&self) -> i64 {
        self.local(Instant::now()) + self.bounds().lo
    }

    /// The latest time the service's clock may show now, in ms since the epoch.
    pub(crate) fn latest_now(&self) -> i64 {
        self.local(Instant::now()) + self.bounds().hi
    }

    /// How uncertain the clock is.
    pub(crate) fn uncertainty(&self) -> Duration {
        let bounds = self.bounds();
        Duration::from_millis((bounds.hi - bounds.lo).max(0) as u64)
    }

    /// The local instant by which the service's clock has surely passed `deadline` (service ms).
    pub(crate) fn when_past(&self, deadline: i64) -> Instant {
        let local = deadline.saturating_sub(self.bounds().lo).max(0) as u64;
        self.anchor + Duration::from_millis(local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(clock: &ServiceClock, ms: u64) -> Instant {
        clock.anchor + Duration::from_millis(ms)
    }

    fn date(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn a_ticking_date_narrows_the_bounds_to_a_round_trip() {
        let clock = ServiceClock::new();
        // The service's clock is local + 5,000,000,400 ms.
        let offset = 5_000_000_400u64;
        let seen = |sent: u64, received: u64| {
            let service = sent + (received - sent) / 2 + offset;
            clock.observe(
                at(&clock, sent),
                at(&clock, received),
                date(service / 1000 * 1000),
            );
        };
        seen(0, 10);
        let one = clock.bounds();
        assert!(one.hi - one.lo <= 1000 + 10);
        for sent in (20..700).step_by(20) {
            seen(sent, sent + 4);
        }
        let bounds = clock.bounds();
        assert!(bounds.hi - bounds.lo <= 30, "{} {}", bounds.lo, bounds.hi);
        assert!(bounds.lo <= offset as i64 && offset as i64 <= bounds.hi);
    }

    #[test]
    fn a_contradiction_resets_the_bounds() {
        let clock = ServiceClock::new();
        clock.observe(at(&clock, 0), at(&clock, 5), date(1_000_000_000));
        // The service's clock was stepped back an hour.
        clock.observe(
            at(&clock, 10),
            at(&clock, 15),
            date(1_000_000_000 - 3_600_000),
        );
        let bounds = clock.bounds();
        assert!(bounds.hi < 1_000_000_000 - 3_000_000);
    }
}
