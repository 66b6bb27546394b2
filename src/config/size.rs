//! Sizes as daprd's `--max-body-size` takes them: Kubernetes quantities such as `4Mi`, `512Ki`,
//! `10M`, or a plain number of bytes.

/// Parses a size into bytes.
pub(crate) fn parse(text: &str) -> Result<usize, String> {
    let bad = || format!("'{text}' is not a size (examples: 4Mi, 512Ki, 10M, 1048576)");
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits].parse().map_err(|_| bad())?;
    let multiplier: u64 = match &text[digits..] {
        "" => 1,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return Err(bad()),
    };
    number
        .checked_mul(multiplier)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse("4Mi"), Ok(4 << 20));
        assert_eq!(parse("512Ki"), Ok(512 << 10));
        assert_eq!(parse("10M"), Ok(10_000_000));
        assert_eq!(parse("1048576"), Ok(1 << 20));
        assert!(parse("4MB").is_err());
        assert!(parse("").is_err());
    }
}

/// Property tests: every quantity reads exactly, an overflow is refused, no text panics.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    const SUFFIXES: &[(&str, u64)] = &[
        ("", 1),
        ("k", 1_000),
        ("K", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn a_quantity_is_its_number_times_its_suffix(
            n in any::<u64>(),
            suffix in 0..SUFFIXES.len(),
            padding in "[ \t]{0,2}",
        ) {
            let (name, multiplier) = SUFFIXES[suffix];
            let text = format!("{padding}{n}{name}{padding}");
            let expected = n.checked_mul(multiplier).and_then(|n| usize::try_from(n).ok());
            prop_assert_eq!(parse(&text).ok(), expected, "{}", text);
        }

        #[test]
        fn another_suffix_or_a_sign_is_refused(
            n in any::<u32>(),
            suffix in "[a-zA-Z]{1,3}|[-+.][0-9]",
        ) {
            prop_assume!(!SUFFIXES.iter().any(|(name, _)| *name == suffix));
            let text = format!("{n}{suffix}");
            prop_assert!(parse(&text).is_err(), "{}", text);
            let negative = format!("-{n}");
            prop_assert!(parse(&negative).is_err(), "{}", negative);
        }

        #[test]
        fn any_text_is_read_or_refused_never_a_panic(text in any::<String>()) {
            let _ = parse(&text);
        }
    }
}
