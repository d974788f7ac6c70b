//! CEL text: literals, and the duration grammar of `docs/annotations.md`
//! written as CEL over a string expression.
//!
//! CEL in the API server has no user-defined functions, so each helper
//! returns the expression text for one value, and the callers paste it
//! where the value is read. Every regular expression here avoids
//! backslashes (`[.]` for a dot), so the text stays readable in YAML.

/// A CEL string literal: single quotes, with backslashes, quotes and control
/// characters escaped (names from the command line can hold anything).
pub fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A hole in a text that [`concat()`] fills with a CEL expression: lets the
/// planner's own text functions (`planner::hook::drain_script`) write the
/// words once for both the webhook and the policies.
#[derive(Debug, Clone, Copy)]
pub struct Slot(pub usize);

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\u{0}{}\u{0}", self.0)
    }
}

/// A CEL string expression for `text`, with each [`Slot`] replaced by the
/// expression `slots[i]`: `'sleep ' + string(r.delay)`.
pub fn concat(text: &str, slots: &[&str]) -> String {
    let mut parts = Vec::new();
    for (i, piece) in text.split('\u{0}').enumerate() {
        if i % 2 == 0 {
            if !piece.is_empty() {
                parts.push(string(piece));
            }
        } else {
            let slot = piece.parse::<usize>().ok().and_then(|n| slots.get(n));
            parts.push(slot.map_or_else(|| string(piece), |e| (*e).to_string()));
        }
    }
    if parts.is_empty() {
        return "''".to_string();
    }
    parts.join(" + ")
}

/// A CEL list of string literals.
pub fn strings<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(string).collect();
    format!("[{}]", items.join(", "))
}

/// The pod's annotation `key` (a CEL string expression); only read after
/// `key in variables.annotations` holds.
pub fn annotation(key: &str) -> String {
    format!("variables.annotations[{key}]")
}

/// What gracehook accepts after trimming: a whole number of seconds, or
/// Go-style segments (a number, an optional fraction, a unit), after one
/// optional `+`. Zero segments is allowed: gracehook reads a lone `+` as 0.
const DURATION: &str = "^[+]?([0-9]+|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))*)$";
const BARE: &str = "^[+]?[0-9]+$";
/// The significant digits of a whole number, for the int64 bound.
const SIGNIFICANT: &str = "[1-9][0-9]*$";
const INT64_MAX: &str = "9223372036854775807";

/// Whether the string expression `value` is a duration gracehook accepts.
/// A Go-style value beyond int64 nanoseconds (about 292 years) passes here
/// and fails in [`seconds`] (`docs/policy.md`).
pub fn duration_ok(value: &str) -> String {
    let t = format!("{value}.trim()");
    let digits = format!("{t}.find({})", string(SIGNIFICANT));
    format!(
        "({t} != '' && {t}.matches({re}) && (!{t}.matches({bare}) || size({digits}) < 19 || (size({digits}) == 19 && {digits} <= {max})))",
        re = string(DURATION),
        bare = string(BARE),
        max = string(INT64_MAX),
    )
}

/// Whole seconds, rounded up, of a valid duration string expression `value`.
/// CEL's `duration()` is Go's `time.ParseDuration`; bare numbers (which it
/// refuses) go through `int()`.
pub fn seconds(value: &str) -> String {
    let t = format!("{value}.trim()");
    let d = format!("duration({t})");
    format!(
        "({t} == '+' ? 0 : {t}.matches({bare}) ? int({t}) : {d}.getSeconds() + ({d} > duration(string({d}.getSeconds()) + 's') ? 1 : 0))",
        bare = string(BARE),
    )
}

/// Why the string expression `value` is not a duration, in the words of
/// `planner::duration::DurationError`. The value is cut into runs of number
/// characters and of unit characters, as the parser reads it: segment `j`
/// is the number run `T[2j]` and the unit run `T[2j+1]`, and the first
/// segment that fails gives the reason. A value whose every segment reads
/// is too large.
pub fn duration_reason(value: &str) -> String {
    let t = format!("{value}.trim()");
    let s = format!("({t}.startsWith('+') ? {t}.substring(1) : {t})");
    let fraction = string("a number without a unit must be a whole number of seconds");
    let units = strings(["ns", "us", "µs", "μs", "ms", "s", "m", "h"]);
    let segment = format!(
        "T[2 * j].matches('^[.]([^0-9]|$)') ? 'expected a number at ' + strings.quote(T.slice(2 * j, size(T)).join('')) : \
         !T[2 * j].matches('^[0-9]*([.][0-9]*)?$') ? {fraction} : \
         2 * j + 1 == size(T) ? (T[2 * j].contains('.') ? {fraction} : 'missing unit after ' + strings.quote(T[2 * j]) + ' (use ns, us, ms, s, m or h)') : \
         !(T[2 * j + 1] in {units}) ? 'unknown unit ' + strings.quote(T[2 * j + 1]) + ' (use ns, us, ms, s, m or h)' : ''"
    );
    format!(
        "({t} == '' ? 'the value is empty' : {t}.startsWith('-') ? 'negative durations are not allowed' : \
         {s}.matches('^[0-9]+$') ? {too_large} : \
         [{s}.findAll('[0-9.]+|[^0-9.]+')].map(T, T[0].matches('^[^0-9.]') ? 'expected a number at ' + strings.quote(T.join('')) : \
         (lists.range((size(T) + 1) / 2).map(j, {segment}).filter(e, e != '') + [{too_large}])[0])[0])",
        too_large = string("the duration is too large"),
    )
}

/// gracehook's sentence for an invalid annotation (`AnnotationError`):
/// `invalid annotation KEY: "VALUE": REASON; a valid example is KEY: "EXAMPLE"`.
/// `key`, `value` and `reason` are CEL string expressions.
pub fn invalid(key: &str, value: &str, reason: &str, example: &str) -> String {
    format!(
        "'invalid annotation ' + {key} + ': ' + strings.quote({value}) + ': ' + {reason} + '; a valid example is ' + {key} + ': ' + {example}",
        example = string(&format!("\"{example}\"")),
    )
}

/// `text` cut to `max` characters with `...` at the cut, as
/// `planner::summary::truncate` cuts bytes (the same for ASCII).
pub fn truncate(text: &str, max: usize) -> String {
    format!(
        "(size({text}) <= {max} ? {text} : {text}.substring(0, {keep}) + '...')",
        keep = max.saturating_sub(3)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_what_cel_needs() {
        assert_eq!(string("web"), "'web'");
        assert_eq!(string("it's"), r"'it\'s'");
        assert_eq!(string(r"a\b"), r"'a\\b'");
        assert_eq!(string("a\nb\u{1}"), r"'a\nb\u0001'");
        assert_eq!(strings(["a", "b"]), "['a', 'b']");
        assert_eq!(strings([]), "[]");
    }

    #[test]
    fn concat_fills_the_slots() {
        let text = format!("sleep {}; {}", Slot(0), Slot(1));
        assert_eq!(
            concat(&text, &["string(r.delay)", "r.command"]),
            "'sleep ' + string(r.delay) + '; ' + r.command"
        );
        assert_eq!(concat(&Slot(0).to_string(), &["x"]), "x");
        assert_eq!(concat("", &[]), "''");
        assert_eq!(concat("it's", &[]), r"'it\'s'");
    }
}
