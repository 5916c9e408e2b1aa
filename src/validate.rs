//! Configuration errors and the field validators every part of the
//! configuration shares: the one mapping of serde errors, the one way to find
//! and report a repeated item, and the checks of header names, upstream names,
//! realms, percents and numeric ranges.
//!
//! A leaf: it uses no other module of the crate, so the top-level
//! configuration and every auth mode can validate their fields with it.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;

use serde::de::DeserializeOwned;

/// A configuration error: the field path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

// ---------------------------------------------------------------------------
// serde
// ---------------------------------------------------------------------------

/// Deserializes a JSON document; an error names the field path serde was at
/// (`canaries[0].percent: invalid type: ...`). Anything but whitespace after
/// the document is an error too (`trailing characters`), as in
/// `serde_json::from_slice`: a configuration that was cut and pasted twice
/// must not pass because its first half does.
pub fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigError::new(path, strip_position(&e.inner().to_string()))
    })?;
    de.end()
        .map_err(|e| ConfigError::new("", strip_position(&e.to_string())))?;
    Ok(value)
}

/// serde_json appends " at line L column C"; the field path says more.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) if msg.len() > i => msg.get(..i).unwrap_or(msg).to_string(),
        _ => msg.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Repeated items
// ---------------------------------------------------------------------------

/// Finds repeated items in a list, one item at a time, so that a caller that
/// checks each item in turn still reports the first problem of the list,
/// whatever it is. The error names the repeat: its path, and a message that
/// gets the index of the first occurrence.
pub struct Unique<K> {
    first: HashMap<K, usize>,
}

impl<K: Eq + Hash> Default for Unique<K> {
    fn default() -> Self {
        Self {
            first: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash> Unique<K> {
    /// Notes item `index`, keyed by `key`. If an earlier item had the same
    /// key: the error at `path(index)` saying `message(key, earlier index)`.
    pub fn check(
        &mut self,
        index: usize,
        key: K,
        path: impl FnOnce(usize) -> String,
        message: impl FnOnce(&K, usize) -> String,
    ) -> Result<(), ConfigError> {
        if let Some(&first) = self.first.get(&key) {
            return Err(ConfigError::new(path(index), message(&key, first)));
        }
        self.first.insert(key, index);
        Ok(())
    }
}

/// [`Unique`] over a whole list: `path(i)` names the repeated item `i`,
/// `message(item, j)` says it repeats item `j`.
pub fn unique<K: Eq + Hash>(
    items: impl IntoIterator<Item = K>,
    path: impl Fn(usize) -> String,
    message: impl Fn(&K, usize) -> String,
) -> Result<(), ConfigError> {
    let mut seen = Unique::default();
    for (i, item) in items.into_iter().enumerate() {
        seen.check(i, item, &path, &message)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Field validators
// ---------------------------------------------------------------------------

/// A value that must not be empty.
pub fn non_empty(path: &str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(ConfigError::new(path, "must not be empty"));
    }
    Ok(())
}

/// A header name: an RFC 9110 token, stored lowercase (Envoy's header maps are lowercase).
pub fn header_name(path: &str, name: &str) -> Result<String, ConfigError> {
    non_empty(path, name)?;
    let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !name.chars().all(is_tchar) {
        return Err(ConfigError::new(
            path,
            format!("\"{}\" is not a valid header name", name.escape_debug()),
        ));
    }
    let lower = name.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "host" | "content-length" | "transfer-encoding" | "connection"
    ) {
        return Err(ConfigError::new(
            path,
            format!("\"{lower}\" is reserved by HTTP and cannot be used"),
        ));
    }
    Ok(lower)
}

/// An upstream name is written into the route header and used in metric names:
/// visible ASCII, no spaces.
pub fn upstream_name(path: &str, name: &str) -> Result<(), ConfigError> {
    non_empty(path, name)?;
    if !name.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ConfigError::new(
            path,
            format!(
                "\"{}\" is not a valid header value (visible ASCII only, no spaces)",
                name.escape_debug()
            ),
        ));
    }
    Ok(())
}

/// A realm is quoted inside `WWW-Authenticate`; keep it printable and quote-free.
pub fn realm(path: &str, realm: &str) -> Result<String, ConfigError> {
    non_empty(path, realm)?;
    if !realm
        .chars()
        .all(|c| (c.is_ascii_graphic() || c == ' ') && c != '"' && c != '\\')
    {
        return Err(ConfigError::new(
            path,
            "must be printable ASCII without quotes or backslashes",
        ));
    }
    Ok(realm.to_string())
}

/// Percent (0..=100, at most two decimals) to basis points (hundredths of a percent).
pub fn basis_points(path: &str, percent: f64) -> Result<u32, ConfigError> {
    if !percent.is_finite() || !(0.0..=100.0).contains(&percent) {
        return Err(ConfigError::new(
            path,
            format!("{percent} is not between 0 and 100"),
        ));
    }
    let scaled = percent * 100.0;
    let rounded = scaled.round();
    if (scaled - rounded).abs() > 1e-6 {
        return Err(ConfigError::new(
            path,
            format!("{percent} has more than two decimals"),
        ));
    }
    // In range 0..=10000 by the checks above.
    Ok(rounded as u32)
}

/// Formats basis points as a percent without trailing zeros: 12050 -> "120.5".
pub fn format_bp(bp: u32) -> String {
    let (whole, frac) = (bp / 100, bp % 100);
    match frac {
        0 => whole.to_string(),
        f if f % 10 == 0 => format!("{whole}.{}", f / 10),
        f => format!("{whole}.{f:02}"),
    }
}

/// An integer setting within `min..=max`.
pub fn in_range(path: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::new(
            path,
            format!("{value} is not between {min} and {max}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_path_then_message_or_message_alone() {
        assert_eq!(ConfigError::new("a.b", "bad").to_string(), "a.b: bad");
        assert_eq!(ConfigError::new("", "bad").to_string(), "bad");
    }

    #[test]
    fn serde_errors_name_the_path_without_the_position() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Doc {
            a: Vec<u32>,
        }
        let e = from_json::<Doc>(br#"{"a":[1,"x"]}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a[1]: invalid type: string \"x\", expected u32"
        );
        let e = from_json::<Doc>(b"nope").unwrap_err();
        assert_eq!(e.to_string(), "expected ident");
        // Found by the `config` fuzz target: a document followed by more text
        // was accepted for its first part.
        let e = from_json::<Doc>(br#"{"a":[1]}]}}"#).unwrap_err();
        assert_eq!(e.to_string(), "trailing characters");
        let e = from_json::<Doc>(br#"{"a":[1]} {"a":[2]}"#).unwrap_err();
        assert_eq!(e.to_string(), "trailing characters");
        assert!(from_json::<Doc>(b" {\"a\":[1]}\n\t ").is_ok());
        assert_eq!(strip_position("oops at line 1 column 2"), "oops");
    }

    #[test]
    fn the_first_repeat_is_reported_with_both_indexes() {
        let e = unique(
            ["a", "b", "a", "b"],
            |i| format!("list[{i}]"),
            |item, j| format!("\"{item}\" is also list[{j}]"),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "list[2]: \"a\" is also list[0]");
        assert_eq!(
            unique(["a", "b"], |_| String::new(), |_, _| String::new()),
            Ok(())
        );

        let mut seen = Unique::default();
        let path = |i| format!("n[{i}]");
        let said = |_: &u8, j| format!("same as n[{j}]");
        assert_eq!(seen.check(0, 7u8, path, said), Ok(()));
        assert_eq!(seen.check(1, 8u8, path, said), Ok(()));
        let e = seen.check(2, 8u8, path, said).unwrap_err();
        assert_eq!(e.to_string(), "n[2]: same as n[1]");
    }

    #[test]
    fn format_bp_trims_zeros() {
        assert_eq!(format_bp(12000), "120");
        assert_eq!(format_bp(10050), "100.5");
        assert_eq!(format_bp(10001), "100.01");
    }
}
