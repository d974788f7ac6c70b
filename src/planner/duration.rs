//! Go/kubectl-style durations, rounded up to whole seconds.
//!
//! Kubernetes users write `30s`, `1m30s` or `500ms` everywhere else, so the
//! annotations accept the same grammar as Go's `time.ParseDuration`, plus a bare
//! whole number meaning seconds. Fractions round *up*: a grace period that is a
//! little too long is harmless, one that is a little too short cuts requests.

use thiserror::Error;

/// Why a duration string was rejected. The messages are shown to users inside a
/// longer sentence that already names the annotation and the value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    /// An empty string.
    #[error("the value is empty")]
    Empty,
    /// A leading minus.
    #[error("negative durations are not allowed")]
    Negative,
    /// `1.5` without a unit.
    #[error("a number without a unit must be a whole number of seconds")]
    FractionWithoutUnit,
    /// A unit Go does not know.
    #[error("unknown unit {0:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit(String),
    /// A number after a unit, without its own unit.
    #[error("missing unit after {0:?} (use ns, us, ms, s, m or h)")]
    MissingUnit(String),
    /// Something that is not a number where one should be.
    #[error("expected a number at {0:?}")]
    ExpectedNumber(String),
    /// More seconds than Kubernetes can store (int64).
    #[error("the duration is too large")]
    Overflow,
}

/// A whole number of seconds, shown as `30s` (as the flags show their defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seconds(pub u64);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}s", self.0)
    }
}

const NANOS_PER_SECOND: u128 = 1_000_000_000;
/// More fraction digits than this cannot change the rounded-up result beyond
/// "there was something left", which is tracked separately.
const MAX_FRACTION_DIGITS: u32 = 18;
/// Kubernetes stores seconds as int64.
const MAX_SECONDS: u128 = i64::MAX as u128;

/// Parses `"30"`, `"30s"`, `"1m30s"`, `"1.5s"`, `"500ms"`, ... into whole seconds,
/// rounding any fraction up.
pub fn parse_seconds(input: &str) -> Result<u64, DurationError> {
    let (nanos, leftover) = parse_nanos(input)?;
    to_seconds(nanos, leftover)
}

/// The same grammar, exact to the nanosecond: for the server's own timings
/// (`--shutdown-delay 500ms`), where rounding up to seconds would be wrong.
pub fn parse_duration(input: &str) -> Result<std::time::Duration, DurationError> {
    let (nanos, _) = parse_nanos(input)?;
    to_seconds(nanos, false)?;
    let secs = u64::try_from(nanos / NANOS_PER_SECOND).map_err(|_| DurationError::Overflow)?;
    // Below one second: fits in u32.
    let sub = (nanos % NANOS_PER_SECOND) as u32;
    Ok(std::time::Duration::new(secs, sub))
}

/// Nanoseconds, and whether a fraction below one nanosecond was cut off.
fn parse_nanos(input: &str) -> Result<(u128, bool), DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.starts_with('-') {
        return Err(DurationError::Negative);
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let seconds: u128 = s.parse().map_err(|_| DurationError::Overflow)?;
        if seconds > MAX_SECONDS {
            return Err(DurationError::Overflow);
        }
        return Ok((seconds * NANOS_PER_SECOND, false));
    }

    let mut rest = s;
    let mut total_nanos: u128 = 0;
    // Set when a fraction had more precision than a nanosecond: the true value is
    // then strictly above `total_nanos`, which matters for rounding up.
    let mut leftover = false;
    while !rest.is_empty() {
        let (whole, after_whole) = split_digits(rest);
        let (fraction, after_fraction) = match after_whole.strip_prefix('.') {
            Some(r) => split_digits(r),
            None => ("", after_whole),
        };
        let has_dot = after_whole.starts_with('.');
        if whole.is_empty() && fraction.is_empty() {
            return Err(DurationError::ExpectedNumber(rest.to_string()));
        }
        let unit_len = after_fraction
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after_fraction.len());
        let (unit, after_unit) = after_fraction.split_at(unit_len);
        let unit_nanos = unit_nanos(unit, has_dot || !after_unit.is_empty(), rest)?;
        let whole_value = if whole.is_empty() {
            0
        } else {
            whole.parse::<u128>().map_err(|_| DurationError::Overflow)?
        };
        let part = whole_value
            .checked_mul(unit_nanos)
            .ok_or(DurationError::Overflow)?;
        let (fraction_nanos, fraction_leftover) = fraction_to_nanos(fraction, unit_nanos);
        leftover |= fraction_leftover;
        total_nanos = total_nanos
            .checked_add(part)
            .and_then(|t| t.checked_add(fraction_nanos))
            .ok_or(DurationError::Overflow)?;
        if total_nanos > MAX_SECONDS * NANOS_PER_SECOND {
            return Err(DurationError::Overflow);
        }
        rest = after_unit;
    }
    Ok((total_nanos, leftover))
}

/// Nanoseconds per `unit`. An empty unit is an error: a fraction or a number
/// followed by more (`more`) needs a unit, and so does the last number of
/// `rest` unless the whole input was a bare number.
fn unit_nanos(unit: &str, more: bool, rest: &str) -> Result<u128, DurationError> {
    Ok(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => NANOS_PER_SECOND,
        "m" => 60 * NANOS_PER_SECOND,
        "h" => 3_600 * NANOS_PER_SECOND,
        "" if more => return Err(DurationError::FractionWithoutUnit),
        "" => return Err(DurationError::MissingUnit(rest.to_string())),
        other => return Err(DurationError::UnknownUnit(other.to_string())),
    })
}

fn split_digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

/// `0.<fraction>` of one unit, in nanoseconds, and whether anything below a
/// nanosecond was cut off.
fn fraction_to_nanos(fraction: &str, unit_nanos: u128) -> (u128, bool) {
    let kept = fraction
        .get(..MAX_FRACTION_DIGITS as usize)
        .unwrap_or(fraction);
    let cut = fraction.get(kept.len()..).unwrap_or("");
    let mut leftover = cut.bytes().any(|b| b != b'0');
    if kept.is_empty() {
        return (0, leftover);
    }
    // Digits only (checked by split_digits) and at most 18 of them: fits in u128.
    let numerator = kept.parse::<u128>().unwrap_or(0) * unit_nanos;
    let denominator = 10u128.pow(kept.len() as u32);
    leftover |= !numerator.is_multiple_of(denominator);
    (numerator / denominator, leftover)
}

fn to_seconds(nanos: u128, leftover: bool) -> Result<u64, DurationError> {
    let mut seconds = nanos.div_ceil(NANOS_PER_SECOND);
    if leftover && nanos.is_multiple_of(NANOS_PER_SECOND) {
        seconds += 1;
    }
    if seconds > MAX_SECONDS {
        return Err(DurationError::Overflow);
    }
    u64::try_from(seconds).map_err(|_| DurationError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_whole_seconds_and_go_durations() {
        let cases = [
            ("0", 0),
            ("30", 30),
            (" 30 ", 30),
            ("+7", 7),
            ("0s", 0),
            ("30s", 30),
            ("1m30s", 90),
            ("1h", 3600),
            ("1h2m3s", 3723),
            ("1.5s", 2),
            ("1.0s", 1),
            (".5s", 1),
            ("5.s", 5),
            ("500ms", 1),
            ("1000ms", 1),
            ("1001ms", 2),
            ("2500us", 1),
            ("1µs", 1),
            ("1ns", 1),
            ("1.5m", 90),
            ("0.0000000000000000000001s", 1),
            ("1.0000000000000000000001s", 2),
            ("2.000000000000000000000s", 2),
            ("3s500ms", 4),
        ];
        for (input, want) in cases {
            assert_eq!(parse_seconds(input), Ok(want), "input {input:?}");
        }
    }

    #[test]
    fn rejects_bad_values_with_reasons() {
        use DurationError::*;
        let cases = [
            ("", Empty),
            ("   ", Empty),
            ("-5s", Negative),
            ("-0", Negative),
            ("1.5", FractionWithoutUnit),
            ("5 s", UnknownUnit(" s".into())),
            ("5sec", UnknownUnit("sec".into())),
            ("5d", UnknownUnit("d".into())),
            ("abc", ExpectedNumber("abc".into())),
            ("s", ExpectedNumber("s".into())),
            ("1s2", MissingUnit("2".into())),
            ("1.5s3.5", FractionWithoutUnit),
            ("1s.", ExpectedNumber(".".into())),
            ("99999999999999999999s", Overflow),
            ("99999999999999999999", Overflow),
            ("9999999999999999999999999999999999999999999h", Overflow),
            ("2562047788015216h", Overflow),
        ];
        for (input, want) in cases {
            assert_eq!(parse_seconds(input), Err(want), "input {input:?}");
        }
    }

    #[test]
    fn exact_durations_for_server_timings() {
        use std::time::Duration;
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30.5s"), Ok(Duration::from_millis(90_500)));
        assert_eq!(parse_duration("25"), Ok(Duration::from_secs(25)));
        assert_eq!(parse_duration("-1s"), Err(DurationError::Negative));
    }

    #[test]
    fn largest_kubernetes_value_is_accepted() {
        assert_eq!(parse_seconds("9223372036854775807"), Ok(i64::MAX as u64));
        assert_eq!(
            parse_seconds("9223372036854775808"),
            Err(DurationError::Overflow)
        );
    }
}
