//! Generators shared by the fuzz targets: JSON values and strings biased
//! towards the names and values the code under test looks for, so that
//! structure-aware inputs get past the parsers into the checks behind them.

use arbitrary::{Result, Unstructured};
use base64::Engine;
use serde_json::{Map, Number, Value};

/// base64url without padding, as JOSE writes it.
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Standard base64 with padding, as HTTP Basic writes it.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One of `words` most of the time, else arbitrary text.
pub fn string(u: &mut Unstructured, words: &[&str]) -> Result<String> {
    if !words.is_empty() && u.ratio(3, 4)? {
        Ok((*u.choose(words)?).to_string())
    } else {
        u.arbitrary()
    }
}

/// An arbitrary number, with the edge cases the validators care about.
pub fn number(u: &mut Unstructured) -> Result<Value> {
    Ok(match u.int_in_range(0..=4)? {
        0 => Value::from(u.arbitrary::<i64>()?),
        1 => Value::from(u.arbitrary::<u64>()?),
        2 => Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        3 => Value::from(u.int_in_range(0..=10_001u32)? as f64 / 100.0),
        _ => Value::from(*u.choose(&[0u64, 1, 59, 60, 100, 600, 3600, 86_400, u32::MAX as u64])?),
    })
}

/// A JSON value at most `depth` levels deep, its strings and keys drawn from `words`.
pub fn json(u: &mut Unstructured, depth: u32, words: &[&str]) -> Result<Value> {
    let top = if depth == 0 { 4 } else { 6 };
    Ok(match u.int_in_range(0..=top)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => number(u)?,
        3 | 4 => Value::String(string(u, words)?),
        5 => {
            let n = u.int_in_range(0..=4)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(json(u, depth - 1, words)?);
            }
            Value::Array(items)
        }
        _ => Value::Object(object(u, depth - 1, words)?),
    })
}

/// A JSON object of up to 6 members.
pub fn object(u: &mut Unstructured, depth: u32, words: &[&str]) -> Result<Map<String, Value>> {
    let n = u.int_in_range(0..=6)?;
    let mut map = Map::new();
    for _ in 0..n {
        map.insert(string(u, words)?, json(u, depth, words)?);
    }
    Ok(map)
}

/// `value`, or now and then something else in its place (type confusion).
pub fn or_noise(u: &mut Unstructured, value: Value, words: &[&str]) -> Result<Value> {
    if u.ratio(1, 8)? {
        json(u, 2, words)
    } else {
        Ok(value)
    }
}

/// Text nested `depth` arrays deep: deeper than serde_json's recursion limit
/// without recursion in the generator.
pub fn nested(depth: usize, inner: &str) -> String {
    let mut s = String::with_capacity(depth * 2 + inner.len());
    s.extend(std::iter::repeat_n('[', depth));
    s.push_str(inner);
    s.extend(std::iter::repeat_n(']', depth));
    s
}
