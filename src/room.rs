//! Handing back the room a collection grew to in a burst. Rust's maps and heaps keep their
//! capacity when entries leave, so a sidecar that once held 50,000 locks would keep the room
//! for 50,000 however few it holds after; every collection that follows the locks held asks
//! here, after it sheds what expired, whether to shrink.

/// Room a collection keeps however empty it gets: small ones are not worth shrinking and
/// growing again.
const MIN_ROOM: usize = 32;

/// The capacity a collection holding `len` entries in room for `capacity` should shrink to:
/// once it is three quarters empty, room for twice what it holds, so the next few inserts
/// don't grow it at once; `None` while it is fuller than that.
pub(crate) fn shrink_to(len: usize, capacity: usize) -> Option<usize> {
    (capacity > 4 * len.max(MIN_ROOM)).then_some(2 * len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_mostly_empty_collection_shrinks() {
        assert_eq!(shrink_to(0, MIN_ROOM * 4), None);
        assert_eq!(shrink_to(0, MIN_ROOM * 4 + 1), Some(0));
        assert_eq!(shrink_to(100, 400), None);
        assert_eq!(shrink_to(100, 401), Some(200));
        assert_eq!(shrink_to(10_000, 65_536), Some(20_000));
    }
}
