//! Go-style durations (`5s`, `1m30s`, `250ms`), the format Dapr's component files use.

use std::time::Duration;

/// Parses a Go duration: a sequence of decimal numbers each with a unit (ns, us, µs, ms, s, m,
/// h). Negative durations are refused; a bare `0` is zero. Counted in whole nanoseconds, as Go
/// counts (a fraction of a nanosecond is dropped), so `4661h14937ms` is exact.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("'{text}' is not a duration (examples: 5s, 1m30s, 250ms)");
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(bad());
    }
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (whole, fraction) = rest[..number_len]
            .split_once('.')
            .unwrap_or((&rest[..number_len], ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(bad());
        }
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = total
            .checked_add(nanos(whole, fraction, nanos_per_unit).ok_or_else(bad)?)
            .ok_or_else(bad)?;
    }
    let seconds = u64::try_from(total / 1_000_000_000).map_err(|_| bad())?;
    Ok(Duration::new(seconds, (total % 1_000_000_000) as u32))
}

/// `whole.fraction` units of `nanos_per_unit` nanoseconds, in whole nanoseconds; `None` when
/// too large.
fn nanos(whole: &str, fraction: &str, nanos_per_unit: u128) -> Option<u128> {
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut total = whole.checked_mul(nanos_per_unit)?;
    // A fraction's digits past a nanosecond's worth change nothing.
    let mut scale = nanos_per_unit;
    for digit in fraction.bytes() {
        scale /= 10;
        if scale == 0 {
            break;
        }
        total = total.checked_add(u128::from(digit - b'0') * scale)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        // Found by the property test below, when the sum was a float.
        assert_eq!(
            parse("4661h14937ms"),
            Ok(Duration::from_secs(4661 * 3600) + Duration::from_millis(14937))
        );
        assert_eq!(parse("1.5ns"), Ok(Duration::from_nanos(1)));
        assert!(parse("5").is_err());
        assert!(parse("-5s").is_err());
        assert!(parse("5 seconds").is_err());
        assert!(parse("").is_err());
    }
}

/// Property tests: every Go duration made of whole units reads exactly, and no text panics.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    const UNITS: &[(&str, Duration)] = &[
        ("h", Duration::from_secs(3600)),
        ("m", Duration::from_secs(60)),
        ("s", Duration::from_secs(1)),
        ("ms", Duration::from_millis(1)),
        ("us", Duration::from_micros(1)),
        ("µs", Duration::from_micros(1)),
        ("ns", Duration::from_nanos(1)),
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn whole_units_add_up_exactly(
            parts in prop::collection::vec((0u32..100_000, 0..UNITS.len()), 1..4),
            padding in "[ \t]{0,2}",
        ) {
            let mut text = padding.clone();
            let mut expected = Duration::ZERO;
            for (n, unit) in parts {
                let (name, length) = UNITS[unit];
                text.push_str(&format!("{n}{name}"));
                expected += length * n;
            }
            text.push_str(&padding);
            prop_assert_eq!(parse(&text), Ok(expected), "{}", text);
        }

        #[test]
        fn a_half_unit_is_half(n in 0u32..100_000, unit in 0..3usize) {
            let (name, length) = UNITS[unit];
            let text = format!("{n}.5{name}");
            prop_assert_eq!(parse(&text), Ok(length * n + length / 2), "{}", text);
        }

        #[test]
        fn no_text_panics_and_no_sign_or_bare_number_passes(text in "[-+0-9.a-zµ ]{0,12}") {
            let read = parse(&text);
            let trimmed = text.trim();
            if trimmed.starts_with(['-', '+']) || (trimmed != "0" && trimmed.parse::<f64>().is_ok()) {
                prop_assert!(read.is_err(), "{}: {:?}", text, read);
            }
        }

        #[test]
        fn any_text_is_read_or_refused_never_a_panic(text in any::<String>()) {
            let _ = parse(&text);
        }
    }
}
