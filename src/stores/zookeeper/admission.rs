//! Which of a key's nodes hold it, for every kind of lock: ZooKeeper's read/write recipe, with
//! a limit. The nodes stand in line by sequence number; an exclusive node holds the key when
//! it is first, and a shared node when no exclusive node is ahead of it and fewer than its
//! limit (0: any number) of shared nodes are. An owner holds a key through one node: a second
//! node of the same owner behind the first never holds it (two sidecars taking the key for one
//! owner at once both enter; the later one gives way).
//!
//! Why this is safe without a lock around the decision: nodes only ever join at the end of the
//! line, so every node ahead of a holder now was there when that holder looked; it counted
//! them all, so no more than the limit hold at once, and none beside an exclusive holder. A
//! node that looked and was not admitted withdraws; until it has, others count it too, which
//! may refuse them once more than needed, never admit one too many.
//!
//! These are pure functions over nodes already read (and expired ones removed): `kinds.rs`
//! and `tree.rs` do the reading.

use super::record::Contender;
use crate::lock::{Conflict, Kind, Mode};

/// What a request may do behind the nodes ahead of it.
#[derive(Debug)]
pub(crate) enum Decision {
    /// A node of this request holds the key.
    Granted,
    /// The key is held in a way this request must wait for (or it asked again, not
    /// reentrantly).
    Held,
    /// The request does not fit the key's holders: waiting would not change it.
    Refused(Conflict),
    /// The owner holds the key through this node already, and asked reentrantly: one more
    /// hold there.
    Reenter(Contender),
}

/// What a request of `kind` by `owner` may do behind the live nodes `ahead`, in line order.
pub(crate) fn decide(ahead: &[Contender], owner: &str, kind: Kind) -> Decision {
    let Some(at) = ahead.iter().position(|node| node.owner == owner) else {
        return admits(ahead, kind);
    };
    let own = &ahead[at];
    let holds = !own.waiting && matches!(admits(&ahead[..at], own.kind()), Decision::Granted);
    if !kind.reentrant || !holds {
        return Decision::Held;
    }
    if own.mode != kind.mode {
        return Decision::Refused(Conflict::ModeConflict { held: own.mode });
    }
    Decision::Reenter(own.clone())
}

/// Whether a node of `kind` behind `ahead`, none of them its owner's, holds the key.
fn admits(ahead: &[Contender], kind: Kind) -> Decision {
    if kind.mode == Mode::Exclusive {
        return if ahead.is_empty() {
            Decision::Granted
        } else {
            Decision::Held
        };
    }
    if ahead.iter().any(|node| node.mode == Mode::Exclusive) {
        return Decision::Held;
    }
    if let Some(other) = ahead.iter().find(|node| node.limit != kind.limit) {
        return Decision::Refused(Conflict::LimitMismatch { held: other.limit });
    }
    if kind.limit != 0 && ahead.len() >= kind.limit as usize {
        return Decision::Held;
    }
    Decision::Granted
}

/// The holders among a key's live nodes `line`, in line order. A first node still waiting
/// counts: it is a grant on its way.
pub(crate) fn holders(line: &[Contender]) -> Vec<Contender> {
    let mut found = Vec::new();
    for (at, node) in line.iter().enumerate() {
        if at > 0 && node.mode == Mode::Exclusive {
            break; // no node behind it holds the key
        }
        if let Decision::Granted = decide(&line[..at], &node.owner, node.kind()) {
            found.push(node.clone());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use zookeeper_client::Stat;

    use super::*;
    use crate::stores::zookeeper::record;

    const TTL: Duration = Duration::from_secs(10);

    fn node(owner: &str, kind: Kind) -> Contender {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let stat = Stat {
            czxid: 1,
            mzxid: 1,
            pzxid: 1,
            ctime: now_ms,
            mtime: now_ms,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 1,
            data_length: 0,
            num_children: 0,
        };
        let data = record::kind_data(owner, TTL, kind);
        Contender::parse(&format!("/k/{owner}"), &data, stat).unwrap()
    }

    fn owners(nodes: &[Contender]) -> Vec<&str> {
        nodes.iter().map(|n| n.owner.as_str()).collect()
    }

    #[test]
    fn a_limit_admits_that_many_and_no_one_behind_an_exclusive_node() {
        let three = Kind::shared(3);
        let line: Vec<_> = ["a", "b", "c", "d"].map(|o| node(o, three)).into();
        assert_eq!(owners(&holders(&line)), ["a", "b", "c"]);
        assert!(matches!(decide(&line[..3], "d", three), Decision::Held));
        assert!(matches!(decide(&line[..2], "c", three), Decision::Granted));
        let writer = node("w", Kind::PLAIN);
        let line = vec![node("a", three), writer.clone(), node("b", three)];
        assert_eq!(owners(&holders(&line)), ["a"]);
        assert!(matches!(decide(&line, "r", three), Decision::Held));
        assert!(matches!(
            decide(&line[..1], "w", Kind::PLAIN),
            Decision::Held
        ));
        assert_eq!(owners(&holders(&[writer])), ["w"]);
        let unlimited: Vec<_> = ["a", "b", "c", "d"]
            .map(|o| node(o, Kind::shared(0)))
            .into();
        assert_eq!(holders(&unlimited).len(), 4);
    }

    #[test]
    fn another_limit_is_refused() {
        let line = vec![node("a", Kind::shared(2))];
        for limit in [0, 3] {
            assert!(matches!(
                decide(&line, "b", Kind::shared(limit)),
                Decision::Refused(Conflict::LimitMismatch { held: 2 })
            ));
        }
    }

    #[test]
    fn the_owner_holds_through_one_node_and_reenters_it_in_its_mode_only() {
        let read = Kind::shared(0);
        let line = vec![node("o", read), node("p", read), node("o", read)];
        assert_eq!(owners(&holders(&line)), ["o", "p"]);
        assert!(matches!(decide(&line, "o", read), Decision::Held));
        let reentered = decide(&line, "o", read.reentrant());
        assert!(matches!(reentered, Decision::Reenter(n) if n.path == line[0].path));
        assert!(matches!(
            decide(&line, "o", Kind::PLAIN.reentrant()),
            Decision::Refused(Conflict::ModeConflict { held: Mode::Shared })
        ));
        // A node of the owner that does not hold the key is no hold to count up.
        let line = vec![node("w", Kind::PLAIN), node("o", Kind::PLAIN)];
        assert!(matches!(
            decide(&line, "o", Kind::PLAIN.reentrant()),
            Decision::Held
        ));
    }
}
