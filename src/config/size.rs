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
