//! Fields Loki 3 adds at ingestion: the `service_name` label and the
//! `detected_level` structured metadata (`pkg/distributor/field_detection.go`).
//!
//! Level detection looks, in order, at labels, then metadata, then the OTLP
//! severity number, then the line: a JSON object's level field (depth-limited,
//! parsed only when the line looks like `{...}`), a logfmt level field (when
//! the line has a `=`), and finally a single-pass keyword scan.

use std::borrow::Cow;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserializer;

use crate::labels::Labels;

pub const SERVICE_NAME: &str = "service_name";
pub const UNKNOWN_SERVICE: &str = "unknown_service";
pub const DETECTED_LEVEL: &str = "detected_level";
pub const SEVERITY_NUMBER: &str = "severity_number";

/// Adds `service_name` when missing: the value of the first non-empty label
/// named in `candidates`, else `unknown_service`. An empty list disables it.
pub fn discover_service_name(labels: &mut Labels, candidates: &[String]) {
    if candidates.is_empty() || labels.contains(SERVICE_NAME) {
        return;
    }
    let value = candidates
        .iter()
        .find_map(|c| labels.get(c).filter(|v| !v.is_empty()))
        .unwrap_or(UNKNOWN_SERVICE)
        .to_string();
    labels.insert(SERVICE_NAME, value);
}

/// Maps a level spelling onto Loki's names (`trace|debug|info|warn|error|
/// critical|fatal`); `None` when it is none of them.
pub fn known_level(v: &str) -> Option<&'static str> {
    const TABLE: [(&str, &str); 13] = [
        ("trace", "trace"),
        ("trc", "trace"),
        ("debug", "debug"),
        ("dbg", "debug"),
        ("info", "info"),
        ("inf", "info"),
        ("information", "info"),
        ("warn", "warn"),
        ("wrn", "warn"),
        ("warning", "warn"),
        ("error", "error"),
        ("err", "error"),
        ("critical", "critical"),
    ];
    if v.eq_ignore_ascii_case("fatal") {
        return Some("fatal");
    }
    TABLE
        .iter()
        .find(|(k, _)| v.eq_ignore_ascii_case(k))
        .map(|(_, l)| *l)
}

/// Loki's `normalizeLogLevel`: a known spelling becomes its name, anything
/// else is kept as given.
pub fn normalize_level(v: &str) -> Cow<'_, str> {
    match known_level(v) {
        Some(l) => Cow::Borrowed(l),
        None => Cow::Borrowed(v),
    }
}

/// Level from an OTLP severity number (text as stored in metadata).
pub fn level_from_severity_number(text: &str) -> &'static str {
    match text.parse::<i64>() {
        Err(_) => "info",
        Ok(0) => "unknown",
        Ok(n) if n <= 4 => "trace",
        Ok(n) if n <= 8 => "debug",
        Ok(n) if n <= 12 => "info",
        Ok(n) if n <= 16 => "warn",
        Ok(n) if n <= 20 => "error",
        Ok(n) if n <= 24 => "fatal",
        Ok(_) => "unknown",
    }
}

/// Settings of level detection.
pub struct LevelDetector<'a> {
    pub fields: &'a [String],
    /// 0 = unlimited.
    pub json_max_depth: usize,
}

impl LevelDetector<'_> {
    /// Applies detection to one entry's metadata: normalises an existing
    /// `detected_level` in place, or appends one. Returns whether it added.
    pub fn apply(&self, labels: &Labels, metadata: &mut Vec<(String, String)>, line: &str) -> bool {
        if let Some((_, v)) = metadata.iter_mut().find(|(k, _)| k == DETECTED_LEVEL) {
            if let Some(l) = known_level(v) {
                if v != l {
                    *v = l.to_string();
                }
            }
            return false;
        }
        let level = self.detect(labels, metadata, line);
        metadata.push((DETECTED_LEVEL.to_string(), level.into_owned()));
        true
    }

    /// The level of an entry (never empty; `unknown` when nothing matched).
    pub fn detect<'l>(
        &self,
        labels: &'l Labels,
        metadata: &'l [(String, String)],
        line: &str,
    ) -> Cow<'l, str> {
        for f in self.fields {
            if let Some(v) = labels.get(f) {
                return normalize_level(v);
            }
        }
        for f in self.fields {
            if let Some((_, v)) = metadata.iter().find(|(k, _)| k == f) {
                return normalize_level(v);
            }
        }
        if let Some((_, v)) = metadata.iter().find(|(k, _)| k == SEVERITY_NUMBER) {
            if !v.is_empty() {
                return Cow::Borrowed(level_from_severity_number(v));
            }
        }
        Cow::Borrowed(self.from_line(line))
    }

    /// Level from the line alone.
    pub fn from_line(&self, line: &str) -> &'static str {
        let value = if looks_like_json(line) {
            json_level(line, self.fields, self.json_max_depth)
        } else if memchr::memchr(b'=', line.as_bytes()).is_some() {
            logfmt_value(line, self.fields)
        } else {
            return keyword_level(line);
        };
        value
            .and_then(|v| known_level(&v))
            .unwrap_or_else(|| keyword_level(line))
    }
}

/// First non-space `{` and last non-space `}`.
fn looks_like_json(line: &str) -> bool {
    let t = line.trim();
    t.starts_with('{') && t.ends_with('}')
}

/// The first string value (document order, depth-first) of a key in
/// `fields`, searching objects down to `max_depth` levels (0 = unlimited).
fn json_level(line: &str, fields: &[String], max_depth: usize) -> Option<String> {
    let mut found = None;
    let mut de = serde_json::Deserializer::from_str(line);
    let _ = (ObjectSeed {
        fields,
        depth: 0,
        max_depth,
        found: &mut found,
    })
    .deserialize(&mut de);
    found
}

struct ObjectSeed<'a, 'f> {
    fields: &'f [String],
    depth: usize,
    max_depth: usize,
    found: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// A value visited inside an object: a string of a wanted key is the
/// result, an object is searched, anything else skipped.
struct ValueSeed<'a, 'f> {
    inner: ObjectSeed<'a, 'f>,
    wanted: bool,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        if self.wanted && self.inner.found.is_none() {
            *self.inner.found = Some(v.to_string());
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let inner = self.inner;
        if inner.found.is_some() || (inner.max_depth > 0 && inner.depth >= inner.max_depth) {
            skip_map(map)
        } else {
            inner.visit_map(map)
        }
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

impl<'de> Visitor<'de> for ObjectSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ObjectSeed {
            fields,
            depth,
            max_depth,
            found,
        } = self;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if found.is_some() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let wanted = fields.iter().any(|f| f == key.as_ref());
            map.next_value_seed(ValueSeed {
                inner: ObjectSeed {
                    fields,
                    depth: depth + 1,
                    max_depth,
                    found: &mut *found,
                },
                wanted,
            })?;
        }
        Ok(())
    }
}

/// The value of the logfmt key matching (case-insensitively) the earliest
/// entry of `fields`.
fn logfmt_value(line: &str, fields: &[String]) -> Option<String> {
    let b = line.as_bytes();
    let mut i = 0;
    let mut best: Option<(usize, &str)> = None;
    while i < b.len() {
        while i < b.len() && b[i] <= b' ' {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] > b' ' && b[i] != b'=' && b[i] != b'"' {
            i += 1;
        }
        let key = &line[ks..i];
        let mut value = "";
        if i < b.len() && b[i] == b'=' {
            i += 1;
            if i < b.len() && b[i] == b'"' {
                i += 1;
                let vs = i;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                value = line.get(vs..i.min(b.len())).unwrap_or("");
                i += 1;
            } else {
                let vs = i;
                while i < b.len() && b[i] > b' ' {
                    i += 1;
                }
                value = &line[vs..i];
            }
        } else if i == ks {
            // A stray quote or other byte that starts no key: skip it.
            i += 1;
        }
        if !key.is_empty() {
            if let Some(x) = fields.iter().position(|f| f.eq_ignore_ascii_case(key)) {
                if best.is_none_or(|(p, _)| x < p) {
                    best = Some((x, value));
                    if x == 0 {
                        break;
                    }
                }
            }
        }
    }
    best.map(|(_, v)| v.to_string())
}

/// Keyword scan: the earliest level word standing alone (Loki's word
/// boundaries), ASCII case-insensitive, in one pass without allocating.
pub fn keyword_level(line: &str) -> &'static str {
    const PATTERNS: [(&[u8], &str); 9] = [
        (b"trace", "trace"),
        (b"debug", "debug"),
        (b"fatal", "fatal"),
        (b"critical", "critical"),
        (b"error", "error"),
        (b"err", "error"),
        (b"warning", "warn"),
        (b"warn", "warn"),
        (b"info", "info"),
    ];
    let b = line.as_bytes();
    let left_ok = |i: usize| {
        i == 0
            || matches!(
                b[i - 1],
                b' ' | b'\t' | b'\n' | b'[' | b'(' | b'{' | b'"' | b'\'' | b'=' | b'|'
            )
    };
    let right_ok = |j: usize| {
        j >= b.len()
            || matches!(
                b[j],
                b' ' | b'\t'
                    | b'\n'
                    | b'['
                    | b']'
                    | b'('
                    | b')'
                    | b'{'
                    | b'}'
                    | b':'
                    | b','
                    | b'!'
                    | b'"'
                    | b'\''
                    | b'='
                    | b'|'
            )
    };
    for i in 0..b.len() {
        let c = b[i].to_ascii_lowercase();
        if !matches!(c, b't' | b'd' | b'f' | b'c' | b'e' | b'w' | b'i') || !left_ok(i) {
            continue;
        }
        for (word, level) in PATTERNS {
            if word[0] == c
                && b.len() - i >= word.len()
                && b[i..i + word.len()].eq_ignore_ascii_case(word)
                && right_ok(i + word.len())
            {
                return level;
            }
        }
    }
    "unknown"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::parse_labels;

    fn fields() -> Vec<String> {
        super::super::DEFAULT_LEVEL_FIELDS
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn detect_line(line: &str) -> &'static str {
        let f = fields();
        LevelDetector {
            fields: &f,
            json_max_depth: 2,
        }
        .from_line(line)
    }

    #[test]
    fn service_name_from_first_candidate() {
        let list: Vec<String> = super::super::DEFAULT_SERVICE_NAME_LABELS
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut l = parse_labels(r#"{job="j", app="a"}"#).unwrap();
        discover_service_name(&mut l, &list);
        assert_eq!(l.get(SERVICE_NAME), Some("a"));
        let mut l = parse_labels(r#"{foo="x"}"#).unwrap();
        discover_service_name(&mut l, &list);
        assert_eq!(l.get(SERVICE_NAME), Some("unknown_service"));
        let mut l = parse_labels(r#"{service_name="keep", app="a"}"#).unwrap();
        discover_service_name(&mut l, &list);
        assert_eq!(l.get(SERVICE_NAME), Some("keep"));
        let mut l = parse_labels(r#"{app="a"}"#).unwrap();
        discover_service_name(&mut l, &[]);
        assert_eq!(l.get(SERVICE_NAME), None);
    }

    #[test]
    fn json_levels_with_depth_limit() {
        assert_eq!(detect_line(r#"{"msg":"x","level":"WARN"}"#), "warn");
        assert_eq!(
            detect_line(r#"{"a":{"severity":"dbg"},"msg":"boom error"}"#),
            "debug"
        );
        // Depth 3 is beyond the default limit of 2: keyword scan instead.
        assert_eq!(
            detect_line(r#"{"a":{"b":{"level":"dbg"}},"m":"info here"}"#),
            "info"
        );
        // Non-string level values are not taken.
        assert_eq!(detect_line(r#"{"level":5,"msg":"fatal"}"#), "fatal");
        // An unknown level value falls back to the keyword scan.
        assert_eq!(detect_line(r#"{"level":"loud","msg":"ok"}"#), "unknown");
    }

    #[test]
    fn logfmt_levels() {
        assert_eq!(detect_line("ts=1 lvl=eRr msg=\"x\""), "error");
        assert_eq!(detect_line("ts=1 level=\"information\" msg=x"), "info");
        // `level` (index 0) wins over `lvl` even when later.
        assert_eq!(detect_line("lvl=debug level=critical"), "critical");
        assert_eq!(detect_line("msg=hello"), "unknown");
        assert_eq!(detect_line("a=b this is a warning"), "warn");
    }

    #[test]
    fn keyword_scan_earliest_bounded_word() {
        assert_eq!(
            keyword_level("2024 [ERROR] disk full, info follows"),
            "error"
        );
        assert_eq!(keyword_level("INFO: started; later error"), "info");
        assert_eq!(keyword_level("terror and information"), "unknown");
        assert_eq!(keyword_level("misc:error here"), "unknown");
        assert_eq!(keyword_level("Warning! low"), "warn");
        assert_eq!(keyword_level("trace"), "trace");
        assert_eq!(keyword_level(""), "unknown");
    }

    #[test]
    fn level_order_labels_metadata_severity_line() {
        let f = fields();
        let d = LevelDetector {
            fields: &f,
            json_max_depth: 2,
        };
        let l = parse_labels(r#"{level="Warning"}"#).unwrap();
        assert_eq!(d.detect(&l, &[], "error"), "warn");
        let l = Labels::new();
        let md = vec![("severity".to_string(), "ERR".to_string())];
        assert_eq!(d.detect(&l, &md, "debug"), "error");
        let md = vec![("severity".to_string(), "custom".to_string())];
        assert_eq!(d.detect(&l, &md, "debug"), "custom");
        for (n, want) in [
            ("0", "unknown"),
            ("3", "trace"),
            ("5", "debug"),
            ("9", "info"),
            ("16", "warn"),
            ("17", "error"),
            ("24", "fatal"),
            ("25", "unknown"),
            ("x", "info"),
        ] {
            let md = vec![(SEVERITY_NUMBER.to_string(), n.to_string())];
            assert_eq!(d.detect(&l, &md, "debug"), want, "severity {n}");
        }
    }

    #[test]
    fn apply_keeps_and_normalises_existing() {
        let f = fields();
        let d = LevelDetector {
            fields: &f,
            json_max_depth: 2,
        };
        let mut md = vec![(DETECTED_LEVEL.to_string(), "WRN".to_string())];
        assert!(!d.apply(&Labels::new(), &mut md, "error"));
        assert_eq!(md[0].1, "warn");
        let mut md = vec![];
        assert!(d.apply(&Labels::new(), &mut md, "oops error"));
        assert_eq!(md, vec![(DETECTED_LEVEL.to_string(), "error".to_string())]);
    }

    #[test]
    fn real_log_lines() {
        // Lines from the loghub corpus.
        assert_eq!(detect_line("[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok /etc/httpd/conf/workers2.properties"), "unknown");
        assert_eq!(
            detect_line(
                "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6"
            ),
            "error"
        );
        assert_eq!(detect_line("081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating"), "info");
        assert_eq!(detect_line("2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - Notification time out: 3200"), "info");
        // Has `=` (logfmt path) but no level key; `.info.` is not a word.
        assert_eq!(detect_line("03-17 16:13:38.811 D WindowManager: token=Token{a64f992 com.tencent.qt.qtl/.activity.info.News"), "unknown");
    }

    #[test]
    fn arbitrary_lines_never_panic() {
        use rand::{Rng, SeedableRng};
        let f = fields();
        let d = LevelDetector {
            fields: &f,
            json_max_depth: 2,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let alphabet: Vec<char> = "{}[]\"\\=: ,levlERROR\té😀\n".chars().collect();
        for _ in 0..5000 {
            let n = rng.random_range(0..40);
            let line: String = (0..n)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let lvl = d.from_line(&line);
            assert!(
                ["trace", "debug", "info", "warn", "error", "critical", "fatal", "unknown"]
                    .contains(&lvl),
                "{line:?} -> {lvl}"
            );
        }
    }
}
