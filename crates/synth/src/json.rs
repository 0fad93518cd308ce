//! A minimal ordered JSON tree and its serialiser.
//!
//! Observations are assembled as a [`Value`] tree so that defects (a field
//! removed, a value of the wrong type, invalid UTF-8 inside a string) can be
//! applied by editing the tree before it is written. Key order is preserved,
//! numbers are written with a fixed number of decimals, and strings are
//! escaped exactly as JSON requires.

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;

/// One JSON value. Borrowed strings point into the population.
#[derive(Debug, Clone)]
pub(crate) enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    /// A number written with exactly this many decimals, e.g. `230.0`.
    Fixed(f64, usize),
    /// A number written in its shortest round-trip form (full precision).
    Float(f64),
    Str(Cow<'a, str>),
    /// String contents given as raw bytes, which may be invalid UTF-8.
    /// ASCII specials are still escaped; bytes >= 0x80 are copied verbatim.
    RawStr(Vec<u8>),
    Arr(Vec<Value<'a>>),
    Obj(Obj<'a>),
}

impl<'a> Value<'a> {
    /// A string value.
    pub(crate) fn str(s: impl Into<Cow<'a, str>>) -> Self {
        Value::Str(s.into())
    }

    /// Appends the JSON text of this value to `out`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(true) => out.extend_from_slice(b"true"),
            Value::Bool(false) => out.extend_from_slice(b"false"),
            Value::Int(i) => write_fmt(out, format_args!("{i}")),
            Value::Fixed(v, decimals) => write_fmt(out, format_args!("{v:.decimals$}")),
            Value::Float(v) => write_fmt(out, format_args!("{v}")),
            Value::Str(s) => write_string(out, s.as_bytes()),
            Value::RawStr(bytes) => write_string(out, bytes),
            Value::Arr(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write(out);
                }
                out.push(b']');
            }
            Value::Obj(obj) => obj.write(out),
        }
    }
}

/// Formats into a byte buffer.
fn write_fmt(out: &mut Vec<u8>, args: fmt::Arguments<'_>) {
    out.write_fmt(args)
        .expect("writing into a Vec<u8> cannot fail");
}

/// Writes `bytes` as a quoted JSON string, escaping `"`, `\` and control
/// characters. Bytes >= 0x80 are copied unchanged (UTF-8 passes through).
pub(crate) fn write_string(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut rest = bytes;
    while let Some(i) = rest
        .iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
    {
        out.extend_from_slice(&rest[..i]);
        let b = rest[i];
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xF)]);
            }
        }
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// A JSON object with keys in insertion order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Obj<'a> {
    fields: Vec<(&'static str, Value<'a>)>,
}

impl<'a> Obj<'a> {
    /// An empty object with room for `n` fields.
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            fields: Vec::with_capacity(n),
        }
    }

    /// Appends a field; the caller guarantees the key is not present yet.
    pub(crate) fn push(&mut self, key: &'static str, value: Value<'a>) {
        debug_assert!(self.get(key).is_none(), "duplicate key {key}");
        self.fields.push((key, value));
    }

    /// Replaces the value of `key` in place, or appends it.
    pub(crate) fn set(&mut self, key: &'static str, value: Value<'a>) {
        match self.get_mut(key) {
            Some(slot) => *slot = value,
            None => self.fields.push((key, value)),
        }
    }

    /// Removes `key` if present.
    pub(crate) fn remove(&mut self, key: &str) {
        self.fields.retain(|(k, _)| *k != key);
    }

    /// The value of `key`, if present.
    pub(crate) fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The value of `key`, mutably, if present.
    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Value<'a>> {
        self.fields
            .iter_mut()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// The nested object under `key`, if present and an object.
    pub(crate) fn obj_mut(&mut self, key: &str) -> Option<&mut Obj<'a>> {
        match self.get_mut(key) {
            Some(Value::Obj(obj)) => Some(obj),
            _ => None,
        }
    }

    /// Appends the JSON text of this object to `out`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Keys are this crate's own identifiers: nothing to escape.
            debug_assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            value.write(out);
        }
        out.push(b'}');
    }

    /// The JSON text of this object.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        self.write(&mut out);
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is the point of a failing test
mod tests {
    use super::{Obj, Value};

    #[test]
    fn writes_escaped_ordered_json() {
        let mut inner = Obj::with_capacity(2);
        inner.push(
            "v",
            Value::Arr(vec![Value::Fixed(230.0, 1), Value::Int(-3)]),
        );
        let mut obj = Obj::with_capacity(4);
        obj.push("b", Value::str("q\"\\\n\u{1}ø"));
        obj.push("a", Value::Obj(inner));
        obj.push("n", Value::Null);
        obj.set("b", Value::str("x"));
        obj.push("f", Value::Float(58.970_123));
        obj.remove("n");
        let text = String::from_utf8(obj.to_bytes()).unwrap();
        assert_eq!(text, r#"{"b":"x","a":{"v":[230.0,-3]},"f":58.970123}"#);

        let mut esc = Vec::new();
        Value::str("q\"\\\n\u{1}ø").write(&mut esc);
        let back: String = serde_json::from_slice(&esc).unwrap();
        assert_eq!(back, "q\"\\\n\u{1}ø");
    }
}
