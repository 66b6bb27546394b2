//! Mutated YAML for the loaders' property tests: a valid file with a few characters deleted,
//! inserted or swapped, or a line repeated or dropped, which is how hand-edited files go wrong.
//! One strategy, so the component and Configuration loaders are tried the same way.

use proptest::prelude::*;

/// One edit at a position (an index into the text's characters, or its lines).
#[derive(Debug, Clone)]
enum Edit {
    Delete(prop::sample::Index, usize),
    Insert(prop::sample::Index, String),
    RepeatLine(prop::sample::Index),
    DropLine(prop::sample::Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    let index = any::<prop::sample::Index>;
    prop_oneof![
        (index(), 1usize..4).prop_map(|(at, n)| Edit::Delete(at, n)),
        // YAML's punctuation, quotes, indentation, and a little of everything else.
        (
            index(),
            "[-:{}\\[\\],#&*!|>'\"% \t\na-zA-Z0-9.\u{feff}]{1,4}"
        )
            .prop_map(|(at, text)| Edit::Insert(at, text)),
        index().prop_map(Edit::RepeatLine),
        index().prop_map(Edit::DropLine),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    match edit {
        Edit::Delete(at, n) if !chars.is_empty() => {
            let start = at.index(chars.len());
            chars.drain(start..(start + n).min(chars.len()));
        }
        Edit::Insert(at, inserted) => {
            let at = at.index(chars.len() + 1);
            chars.splice(at..at, inserted.chars());
        }
        Edit::RepeatLine(at) if !lines.is_empty() => {
            let at = at.index(lines.len());
            lines.insert(at, lines[at]);
            return lines.concat();
        }
        Edit::DropLine(at) if !lines.is_empty() => {
            lines.remove(at.index(lines.len()));
            return lines.concat();
        }
        _ => {}
    }
    chars.into_iter().collect()
}

/// `text` with one to four edits.
pub(crate) fn mutated(text: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(edit(), 1..5)
        .prop_map(move |edits| edits.iter().fold(text.to_string(), |t, e| apply(&t, e)))
}
