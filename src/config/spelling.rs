//! Near misses: how far a name someone wrote is from one we know, so a typo (`kind:
//! Componet`, `keyPrefx`) can be told from something else and answered with "did you mean".

/// Levenshtein distance: the fewest single-character insertions, deletions and substitutions
/// that turn `a` into `b`.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The known name closest to `written` (case aside), when it is close enough to be a typo of
/// it: within a third of its length, and at least one edit.
pub(crate) fn closest<'a>(
    written: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let written = written.to_lowercase();
    let limit = (written.chars().count() / 3).max(1);
    known
        .into_iter()
        .map(|name| (edit_distance(&written, &name.to_lowercase()), name))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_and_the_closest_name() {
        assert_eq!(edit_distance("componet", "component"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        let known = ["keyPrefix", "redisHost", "redisPassword"];
        assert_eq!(closest("keyPrefx", known), Some("keyPrefix"));
        assert_eq!(closest("REDISPASWORD", known), Some("redisPassword"));
        assert_eq!(closest("somethingElse", known), None);
    }
}
