//! The mark an entry into a key's line leaves on the key's node. Its own file because both the
//! tree, which makes it, and this sidecar's grants, which keep it, need it, and neither should
//! have to import the other for it.

/// The key's node as an entry into its line left it: which node it is (its czxid: ZooKeeper
/// reaps an emptied container node, and one made again starts over at version 0) and the
/// version its data had after the entry's write, which every entry moves on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LineMark {
    pub(crate) czxid: i64,
    pub(crate) version: i32,
}
