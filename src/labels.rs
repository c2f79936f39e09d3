//! Label sets: the identity of a stream, and the label sets that LogQL
//! results carry. Shared by every layer, so it depends on nothing else in the
//! crate.
//!
//! A [`Labels`] is a list of `(name, value)` pairs kept sorted by name with
//! unique names. Its `Display` form is Loki's: `{a="1", b="2"}` with Go-style
//! escaping of the values.

use std::fmt;

/// A sorted, de-duplicated set of label pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<(String, String)>);

/// Error from [`parse_labels`]; the message follows Prometheus' parser closely
/// because Loki returns it verbatim after `couldn't parse labels: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LabelParseError(pub String);

impl Labels {
    pub fn new() -> Self {
        Labels(Vec::new())
    }

    /// Builds a label set from pairs in any order. A later pair wins over an
    /// earlier one with the same name.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut v: Vec<(String, String)> = Vec::new();
        for (k, val) in pairs {
            let k = k.into();
            let val = val.into();
            match v.iter_mut().find(|(n, _)| *n == k) {
                Some(slot) => slot.1 = val,
                None => v.push((k, val)),
            }
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Labels(v)
    }

    /// Wraps pairs that the caller guarantees are sorted by name and unique.
    pub fn from_sorted_unchecked(v: Vec<(String, String)>) -> Self {
        debug_assert!(v.windows(2).all(|w| w[0].0 < w[1].0));
        Labels(v)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// Sets `name` to `value`, keeping the set sorted.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
            Ok(i) => self.0[i].1 = value.into(),
            Err(i) => self.0.insert(i, (name, value.into())),
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => Some(self.0.remove(i).1),
            Err(_) => None,
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A stable 64-bit hash of the label set (FNV-1a over names and values),
    /// the same on every run and machine.
    pub fn stable_hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (k, v) in &self.0 {
            for b in k.as_bytes().iter().chain([0xffu8].iter()) {
                h ^= *b as u64;
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            for b in v.as_bytes().iter().chain([0xfeu8].iter()) {
                h ^= *b as u64;
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        h
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}=")?;
            write_go_quoted(f, v)?;
        }
        f.write_str("}")
    }
}

/// Writes `s` as a Go `strconv.Quote`d string (what Loki prints for label
/// values).
pub fn write_go_quoted(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            '\u{07}' => f.write_str("\\a")?,
            '\u{08}' => f.write_str("\\b")?,
            '\u{0c}' => f.write_str("\\f")?,
            '\u{0b}' => f.write_str("\\v")?,
            c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(f, "\\x{:02x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// Returns `s` quoted as Go's `strconv.Quote` would.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    let _ = write_go_quoted(&mut out, s);
    out
}

/// True when `name` is a valid Prometheus/Loki label name:
/// `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Parses a label set in selector syntax, `{a="1", b="2"}`, as Loki does for
/// pushed streams (Prometheus' metric parser): names must be valid label
/// names, values double-quoted with Go escapes; pairs with empty values are
/// dropped. Duplicate names are kept out of the result and reported by the
/// caller's validation, so they are an error here too.
pub fn parse_labels(input: &str) -> Result<Labels, LabelParseError> {
    let s = input.trim();
    let err = |msg: String| LabelParseError(msg);
    let inner = s
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(|| {
            err(format!(
                "1:1: parse error: unexpected input {s:?}, expected '{{'"
            ))
        })?;
    let bytes = inner.as_bytes();
    let mut i = 0usize;
    let mut out: Vec<(String, String)> = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < bytes.len() && (bytes[*i] as char).is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= bytes.len() {
            break;
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        let name = &inner[start..i];
        if name.is_empty() || !is_valid_label_name(name) {
            return Err(err(format!(
                "1:{}: parse error: unexpected character in label name {:?}",
                start + 2,
                inner[start..].chars().next().unwrap_or(' ')
            )));
        }
        skip_ws(&mut i);
        if i >= bytes.len() || bytes[i] != b'=' {
            return Err(err(format!(
                "1:{}: parse error: expected equal, got {:?}",
                i + 2,
                inner.get(i..).unwrap_or("")
            )));
        }
        i += 1;
        skip_ws(&mut i);
        if i >= bytes.len() || bytes[i] != b'"' {
            return Err(err(format!(
                "1:{}: parse error: expected label value, got {:?}",
                i + 2,
                inner.get(i..).unwrap_or("")
            )));
        }
        let (value, used) = unquote_go_prefix(&inner[i..])
            .map_err(|m| err(format!("1:{}: parse error: {m}", i + 2)))?;
        i += used;
        if out.iter().any(|(n, _)| n == name) {
            return Err(err(format!("duplicate label name: {name:?}")));
        }
        if !value.is_empty() {
            out.push((name.to_string(), value));
        }
        skip_ws(&mut i);
        if i < bytes.len() {
            if bytes[i] == b',' {
                i += 1;
            } else {
                return Err(err(format!(
                    "1:{}: parse error: expected comma or '}}', got {:?}",
                    i + 2,
                    inner.get(i..).unwrap_or("")
                )));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Labels(out))
}

/// Decodes a double-quoted Go string literal at the start of `s`. Returns the
/// value and the number of bytes consumed, including both quotes.
pub fn unquote_go_prefix(s: &str) -> Result<(String, usize), String> {
    let mut chars = s.char_indices();
    match chars.next() {
        Some((_, '"')) => {}
        _ => return Err("expected '\"'".into()),
    }
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => {
                let (_, e) = chars.next().ok_or("unterminated escape")?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\u{07}'),
                    'b' => out.push('\u{08}'),
                    'f' => out.push('\u{0c}'),
                    'v' => out.push('\u{0b}'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut v: u32 = 0;
                        for _ in 0..n {
                            let (_, h) = chars.next().ok_or("short escape")?;
                            v = v * 16 + h.to_digit(16).ok_or("invalid hex escape")?;
                        }
                        if e == 'x' {
                            // \x is a byte; only ASCII bytes form valid UTF-8 alone.
                            out.push(
                                char::from_u32(v)
                                    .filter(|_| v < 0x80)
                                    .ok_or("invalid \\x escape")?,
                            );
                        } else {
                            out.push(char::from_u32(v).ok_or("invalid unicode escape")?);
                        }
                    }
                    '0'..='7' => {
                        let mut v = e.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            let (_, o) = chars.next().ok_or("short octal escape")?;
                            v = v * 8 + o.to_digit(8).ok_or("invalid octal escape")?;
                        }
                        out.push(
                            char::from_u32(v)
                                .filter(|_| v < 0x80)
                                .ok_or("invalid octal escape")?,
                        );
                    }
                    other => return Err(format!("unknown escape sequence \\{other}")),
                }
            }
            '\n' => return Err("newline in string".into()),
            c => out.push(c),
        }
    }
    Err("unterminated quoted string".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print_round_trip() {
        let l = parse_labels(r#"{b="2", a="x\"y"}"#).unwrap();
        assert_eq!(l.to_string(), r#"{a="x\"y", b="2"}"#);
        assert_eq!(l.get("a"), Some("x\"y"));
    }

    #[test]
    fn empty_values_are_dropped() {
        let l = parse_labels(r#"{a="", b="1"}"#).unwrap();
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn rejects_bad_names_and_syntax() {
        assert!(parse_labels(r#"{a.b="1"}"#).is_err());
        assert!(parse_labels(r#"{1a="1"}"#).is_err());
        assert!(parse_labels(r#"{a="1""#).is_err());
        assert!(parse_labels(r#"{a="1" b="2"}"#).is_err());
        assert!(parse_labels(r#"{a="1", a="2"}"#).is_err());
    }
}
