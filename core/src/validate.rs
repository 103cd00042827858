//! The one check of what users hand pilot: counts, rates, names and engines, from flags and
//! from files alike.
//!
//! Why one module: the same quantity arrives by several roads (`--users 0`, a scenario CSV's
//! `users` cell, a demand [`Load`](crate::load::Load) built by a library caller), and each
//! road used to coerce on its own (`-5 as u32` is 0, `2.7 as u32` is 2,
//! `"inf".parse::<f64>()` succeeds). Every road now calls these functions, so a value is
//! either what the user meant or an error that names the value, the problem and the fix, with
//! the file's line number where there is one.
//!
//! - counts (users, batch sizes, GPUs, tokens): finite, whole, at least 1, at most `u32::MAX`;
//! - rates: finite and positive (a fraction of a request per second is a real load);
//! - names: at most [`MAX_NAME_CHARS`] long, checked before any fuzzy matching (whose cost
//!   grows with the length), and shortened by [`shorten`] wherever an error echoes them;
//! - engines: a name in the engine table ([`crate::engine`]) or one a trained predictor has
//!   measured, else an error that suggests the closest known names.

use crate::units::RequestsPerSec;
use std::fmt;

/// A value pilot refuses, with where it came from and how to fix it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct InvalidValue {
    /// What the value is (`--users`, `users`, `engine`), as the user wrote it.
    pub what: String,
    /// The value as given, shortened by [`shorten`].
    pub value: String,
    /// What is wrong and what to write instead.
    pub reason: String,
    /// The file line the value is on (the header is line 1), when it came from a file.
    pub line: Option<u64>,
}

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        write!(f, "{} '{}': {}", self.what, self.value, self.reason)
    }
}

impl InvalidValue {
    fn new(what: &str, value: &str, reason: impl Into<String>) -> InvalidValue {
        InvalidValue {
            what: what.to_string(),
            value: shorten(value),
            reason: reason.into(),
            line: None,
        }
    }

    /// The same error, located on a file line.
    pub fn at_line(mut self, line: u64) -> InvalidValue {
        self.line = Some(line);
        self
    }
}

/// The longest model, GPU or engine name pilot looks up. Real names are under 100 characters;
/// fuzzy matching costs time in proportion to the length, so a runaway cell (a whole file
/// pasted into a name) must stop here, not after minutes of closest-name scoring.
pub const MAX_NAME_CHARS: usize = 256;

/// The most characters of a user's value an error message repeats.
const ECHO_CHARS: usize = 64;

/// `text` as an error may repeat it: whole when short, else its start and its length, so that
/// a huge value costs one line of stderr, not megabytes.
pub fn shorten(text: &str) -> String {
    if text.len() <= ECHO_CHARS {
        return text.to_string();
    }
    let n = text.chars().count();
    if n <= ECHO_CHARS {
        return text.to_string();
    }
    let head: String = text.chars().take(ECHO_CHARS).collect();
    format!("{head}... ({n} characters)")
}

/// Checks that a name is short enough to look up; returns it unchanged.
pub fn name<'a>(what: &str, text: &'a str) -> Result<&'a str, InvalidValue> {
    if text.len() > MAX_NAME_CHARS && text.chars().count() > MAX_NAME_CHARS {
        return Err(InvalidValue::new(
            what,
            text,
            format!(
                "{} characters is longer than any name pilot knows (at most {MAX_NAME_CHARS}); check the value or the file's columns",
                text.chars().count()
            ),
        ));
    }
    Ok(text)
}

/// A count (users, batch size, GPUs, tokens): a whole number of at least 1.
pub fn count(what: &str, value: f64) -> Result<u32, InvalidValue> {
    count_of(what, &value.to_string(), value)
}

/// What a count should look like, for errors.
const COUNT_HINT: &str = "write a whole number of at least 1, e.g. 1, 8 or 64";
/// What a rate should look like, for errors.
const RATE_HINT: &str = "write a positive rate in requests per second, e.g. 10/s or 0.5";

/// The number `text` holds, or an error with `hint`.
fn number(what: &str, text: &str, hint: &str) -> Result<f64, InvalidValue> {
    text.trim()
        .parse::<f64>()
        .map_err(|_| InvalidValue::new(what, text, format!("not a number; {hint}")))
}

/// [`count`] of a number as written (a CLI flag or a file cell).
pub fn count_text(what: &str, text: &str) -> Result<u32, InvalidValue> {
    count_of(what, text, number(what, text, COUNT_HINT)?)
}

fn count_of(what: &str, text: &str, value: f64) -> Result<u32, InvalidValue> {
    let reason = if !value.is_finite() {
        "not finite"
    } else if value < 1.0 {
        "below 1"
    } else if value.fract() != 0.0 {
        "not whole"
    } else if value > f64::from(u32::MAX) {
        "too large to count"
    } else {
        return Ok(value as u32);
    };
    Err(InvalidValue::new(
        what,
        text,
        format!("{reason}; {COUNT_HINT}"),
    ))
}

/// A request rate: finite and positive.
pub fn rate(what: &str, value: f64) -> Result<RequestsPerSec, InvalidValue> {
    rate_of(what, &value.to_string(), value)
}

/// [`rate`] of a rate as written: `10/s`, `10rps` or `10`, requests per second.
pub fn rate_text(what: &str, text: &str) -> Result<RequestsPerSec, InvalidValue> {
    let digits = text.trim().trim_end_matches("/s").trim_end_matches("rps");
    let value = number(what, digits, RATE_HINT).map_err(|e| InvalidValue {
        value: shorten(text),
        ..e
    })?;
    rate_of(what, text, value)
}

fn rate_of(what: &str, text: &str, value: f64) -> Result<RequestsPerSec, InvalidValue> {
    if value.is_finite() && value > 0.0 {
        return Ok(RequestsPerSec(value));
    }
    let reason = if value.is_finite() {
        "not positive"
    } else {
        "not finite"
    };
    Err(InvalidValue::new(
        what,
        text,
        format!("{reason}; {RATE_HINT}"),
    ))
}

/// A serving engine's canonical (lower-case) name: a name or alias in the engine table
/// ([`crate::engine::known_names`]) or one of `measured` (engines a trained predictor has seen,
/// which may carry a user's own label). An unknown name is an error with the closest known
/// names, because a typo (`vlmm`) would otherwise be predicted as an engine nothing is known
/// about and silently change the answer.
///
/// An alias stays as written (`text-generation-inference` is not turned into `tgi`): rows and
/// trained predictors carry the label the user measured under, and
/// [`crate::engine::traits`] finds the engine's traits by either.
pub fn engine(text: &str, measured: &[String]) -> Result<String, InvalidValue> {
    let wanted = name("engine", text.trim())?.to_ascii_lowercase();
    let mut known: Vec<&str> = crate::engine::known_names().collect();
    for m in measured {
        if !m.is_empty() && !known.iter().any(|k| k.eq_ignore_ascii_case(m)) {
            known.push(m);
        }
    }
    if let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(&wanted)) {
        return Ok(k.to_ascii_lowercase());
    }
    let mut scored: Vec<(usize, &str)> = known
        .iter()
        .map(|k| {
            (
                strsim::damerau_levenshtein(&wanted, &k.to_ascii_lowercase()),
                *k,
            )
        })
        .collect();
    scored.sort();
    // A suggestion must share most of the name; otherwise it only adds noise.
    let close: Vec<&str> = scored
        .iter()
        .filter(|(d, k)| *d <= k.len().max(wanted.len()) / 2)
        .take(3)
        .map(|(_, k)| *k)
        .collect();
    let hint = if close.is_empty() {
        String::new()
    } else {
        format!("did you mean {}? ", close.join(", "))
    };
    Err(InvalidValue::new(
        "engine",
        text,
        format!(
            "not an engine pilot knows; {hint}known engines: {}",
            known.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_whole_finite_and_at_least_one() {
        assert_eq!(count_text("users", "64"), Ok(64));
        assert_eq!(count_text("users", " 8 "), Ok(8));
        assert_eq!(count("users", 3.0), Ok(3));
        for bad in [
            "0", "-5", "2.7", "NaN", "inf", "-inf", "1e10", "many", "", "0.5",
        ] {
            let e = count_text("users", bad).unwrap_err();
            assert!(
                e.to_string().contains("at least 1") && e.to_string().contains("users"),
                "{bad}: {e}"
            );
        }
        let e = count_text("gpu_count", "2.7").unwrap_err().at_line(4);
        assert_eq!(e.line, Some(4));
        let text = e.to_string();
        assert!(
            text.starts_with("line 4: gpu_count '2.7'") && text.contains("whole"),
            "{text}"
        );
    }

    #[test]
    fn rates_are_finite_and_positive() {
        assert_eq!(rate_text("--rate", "10/s"), Ok(RequestsPerSec(10.0)));
        assert_eq!(rate_text("--rate", "0.5rps"), Ok(RequestsPerSec(0.5)));
        assert_eq!(rate("rate_rps", 2.5), Ok(RequestsPerSec(2.5)));
        for bad in ["inf/s", "inf", "NaN", "-3", "0", "lots", "1e400"] {
            let e = rate_text("--rate", bad).unwrap_err().to_string();
            assert!(e.contains("--rate") && e.contains("10/s"), "{bad}: {e}");
        }
    }

    #[test]
    fn long_names_are_refused_and_echoed_short() {
        let huge = "x".repeat(5_000_000);
        let t = std::time::Instant::now();
        let e = name("model", &huge).unwrap_err().to_string();
        assert!(t.elapsed().as_secs_f64() < 1.0);
        assert!(e.len() < 400, "{} bytes of error", e.len());
        assert!(e.contains("5000000 characters"), "{e}");
        assert_eq!(name("model", "mistral-7b"), Ok("mistral-7b"));
        assert_eq!(shorten("short"), "short");
        let s = shorten(&"é".repeat(100));
        assert!(s.ends_with("(100 characters)"), "{s}");
    }

    #[test]
    fn engines_are_known_or_suggested() {
        assert_eq!(engine("vLLM", &[]).unwrap(), "vllm");
        assert_eq!(engine("TGIS", &[]).unwrap(), "tgis");
        let e = engine("vlmm", &[]).unwrap_err().to_string();
        assert!(e.contains("did you mean vllm"), "{e}");
        let e = engine("tensorrt", &[]).unwrap_err().to_string();
        assert!(e.contains("did you mean tensorrt-llm"), "{e}");
        // A predictor trained on a user's own label knows it.
        assert!(engine("my-fork", &[]).is_err());
        assert_eq!(engine("My-Fork", &["my-fork".into()]).unwrap(), "my-fork");
        assert!(engine(&"v".repeat(10_000), &[]).is_err());
    }
}
