//! Log analysis for Grafana's Drilldown features, over a sample of entries
//! already returned by a log query: field detection (`detected_fields`),
//! field values, and pattern mining (`patterns`).
//!
//! Pattern mining is a small Drain-style clusterer: tokens that carry
//! variable data (numbers, hex, UUIDs, the values of `key=value` pairs with
//! digits) are masked as `<_>`, lines are bucketed by token count and first
//! token, and a line joins the most similar cluster of its bucket when at
//! least half of the tokens agree, turning disagreeing positions into `<_>`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::logql::eval::ResultEntry;

/// Type of a detected field, as Loki names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    String,
    Int,
    Float,
    Boolean,
    Duration,
    Bytes,
}

impl FieldType {
    pub fn as_str(&self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Int => "int",
            FieldType::Float => "float",
            FieldType::Boolean => "boolean",
            FieldType::Duration => "duration",
            FieldType::Bytes => "bytes",
        }
    }
}

/// One field found in the sampled lines.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectedField {
    pub label: String,
    pub kind: FieldType,
    pub cardinality: usize,
    /// `["json"]`, `["logfmt"]`; empty for structured metadata (Loki: null).
    pub parsers: Vec<String>,
    /// Path of a JSON field (`["resp", "status"]`).
    pub json_path: Option<Vec<String>>,
}

/// True for values that are all digits (with an optional sign/decimal
/// point) or UUIDs: labels made only of those are left out of
/// `detected_labels`, as in Loki.
pub fn looks_numeric_or_uuid(v: &str) -> bool {
    if v.parse::<f64>().is_ok() {
        return true;
    }
    let b = v.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// Whether `detected_labels` leaves a label out (Loki's `shouldRejectLabel`):
/// when every value is a number or UUID, except that at most two values
/// that are all `0`/`1` are a boolean and kept. No values: left out.
pub fn reject_detected_label(values: &[String]) -> bool {
    if values.is_empty() {
        return true;
    }
    if values.len() <= 2 && values.iter().all(|v| v == "0" || v == "1") {
        return false;
    }
    values.iter().all(|v| looks_numeric_or_uuid(v))
}

fn is_duration(v: &str) -> bool {
    let v = v.strip_prefix('-').unwrap_or(v);
    let mut rest = v;
    let mut any = false;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n == 0 {
            return false;
        }
        rest = &rest[n..];
        let u = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .iter()
            .find(|u| rest.starts_with(**u) && !(**u == "m" && rest.starts_with("ms")));
        match u {
            Some(u) => {
                rest = &rest[u.len()..];
                any = true;
            }
            None => return false,
        }
    }
    any
}

fn is_bytes(v: &str) -> bool {
    let n = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    if n == 0 || n == v.len() {
        return false;
    }
    let unit = v[n..].trim().to_ascii_uppercase();
    [
        "B", "KB", "MB", "GB", "TB", "PB", "KIB", "MIB", "GIB", "TIB", "PIB", "K", "M", "G",
    ]
    .contains(&unit.as_str())
}

fn value_type(v: &str) -> FieldType {
    if v.parse::<i64>().is_ok() {
        FieldType::Int
    } else if v.parse::<f64>().is_ok() {
        FieldType::Float
    } else if v == "true" || v == "false" {
        FieldType::Boolean
    } else if is_duration(v) {
        FieldType::Duration
    } else if is_bytes(v) {
        FieldType::Bytes
    } else {
        FieldType::String
    }
}

/// Flattens a JSON object into `(name, path, value)` leaves; nested keys
/// joined with `_`, arrays skipped, as Loki's json parser does.
fn json_leaves(
    v: &serde_json::Value,
    path: &mut Vec<String>,
    out: &mut Vec<(String, Vec<String>, String)>,
) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                path.push(k.clone());
                json_leaves(child, path, out);
                path.pop();
            }
        }
        serde_json::Value::Array(_) => {}
        leaf => {
            let name: String = path
                .join("_")
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let value = match leaf {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            out.push((name, path.clone(), value));
        }
    }
}

/// `key=value` pairs of a logfmt line (quoted values unquoted).
pub fn logfmt_pairs(line: &str) -> Vec<(String, String)> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b' ' {
            i += 1;
        }
        let key = &line[ks..i];
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        i += 1;
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut v = String::new();
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                let ch = line[i..].chars().next().unwrap_or(' ');
                v.push(ch);
                i += ch.len_utf8();
            }
            i += 1;
            v
        } else {
            let vs = i;
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            line[vs..i].to_string()
        };
        if !key.is_empty() {
            out.push((key.to_string(), value));
        }
    }
    out
}

/// A field occurrence: (name, parser — `None` for structured metadata —,
/// JSON path, value).
type FieldOccurrence = (String, Option<&'static str>, Option<Vec<String>>, String);

/// Every field occurrence of one entry.
fn entry_fields(e: &ResultEntry) -> Vec<FieldOccurrence> {
    let mut out = Vec::new();
    for (k, v) in e.structured_metadata.iter() {
        out.push((k.to_string(), None, None, v.to_string()));
    }
    let line = e.line.trim_start();
    if line.starts_with('{') {
        if let Ok(v @ serde_json::Value::Object(_)) =
            serde_json::from_str::<serde_json::Value>(line)
        {
            let mut leaves = Vec::new();
            json_leaves(&v, &mut Vec::new(), &mut leaves);
            for (name, path, value) in leaves {
                out.push((extracted_name(e, name), Some("json"), Some(path), value));
            }
            return out;
        }
    }
    for (k, v) in logfmt_pairs(line) {
        out.push((extracted_name(e, k), Some("logfmt"), None, v));
    }
    out
}

/// A parsed name that clashes with one of the entry's stream labels gets
/// the `_extracted` suffix, as Loki's parsers do.
fn extracted_name(e: &ResultEntry, name: String) -> String {
    if e.stream.get(&name).is_some() {
        format!("{name}_extracted")
    } else {
        name
    }
}

/// Detects fields over the sample, sorted by name.
pub fn detect_fields(entries: &[ResultEntry]) -> Vec<DetectedField> {
    struct Acc {
        values: BTreeSet<String>,
        parsers: BTreeSet<&'static str>,
        json_path: Option<Vec<String>>,
    }
    let mut acc: BTreeMap<String, Acc> = BTreeMap::new();
    for e in entries {
        for (name, parser, path, value) in entry_fields(e) {
            let a = acc.entry(name).or_insert(Acc {
                values: BTreeSet::new(),
                parsers: BTreeSet::new(),
                json_path: None,
            });
            // Structured metadata adds no parser; a name that a parser also
            // finds in the line reports that parser (Loki's
            // `ParseDetectedFields`), so only metadata-only fields have
            // `"parsers": null`.
            if let Some(p) = parser {
                a.parsers.insert(p);
            }
            if a.json_path.is_none() {
                a.json_path = path;
            }
            if a.values.len() < 10_000 {
                a.values.insert(value);
            }
        }
    }
    acc.into_iter()
        .map(|(label, a)| {
            let types: BTreeSet<_> = a
                .values
                .iter()
                .filter(|v| !v.is_empty())
                .map(|v| value_type(v))
                .map(|t| t.as_str())
                .collect();
            let kind = match types.len() {
                0 => FieldType::String,
                1 => a
                    .values
                    .iter()
                    .find(|v| !v.is_empty())
                    .map(|v| value_type(v))
                    .unwrap_or(FieldType::String),
                _ if types.iter().all(|t| *t == "int" || *t == "float") => FieldType::Float,
                _ => FieldType::String,
            };
            let parsers: Vec<String> = a.parsers.iter().map(|p| p.to_string()).collect();
            let json_path = if parsers.iter().any(|p| p == "json") {
                a.json_path
            } else {
                None
            };
            DetectedField {
                label,
                kind,
                cardinality: a.values.len(),
                parsers,
                json_path,
            }
        })
        .collect()
}

/// Distinct values of one field across the sample, sorted.
pub fn field_values(entries: &[ResultEntry], name: &str) -> Vec<String> {
    let mut set = BTreeSet::new();
    for e in entries {
        for (k, _, _, v) in entry_fields(e) {
            if k == name && !v.is_empty() {
                set.insert(v);
            }
        }
        if let Some(v) = e.parsed.get(name) {
            set.insert(v.to_string());
        }
    }
    set.into_iter().collect()
}

/// A mined pattern with its count per step.
#[derive(Clone, Debug, PartialEq)]
pub struct Pattern {
    pub pattern: String,
    pub level: String,
    /// (bucket start in ns, count), ascending.
    pub samples: Vec<(i64, u64)>,
}

const WILDCARD: &str = "<_>";

fn has_digit(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit())
}

/// Masks a token that carries variable data.
fn mask(token: &str) -> String {
    if let Some((k, v)) = token.split_once('=') {
        if !k.is_empty() && (has_digit(v) || v.len() > 24) {
            return format!("{k}={WILDCARD}");
        }
        return token.to_string();
    }
    if has_digit(token) {
        return WILDCARD.to_string();
    }
    token.to_string()
}

struct Cluster {
    tokens: Vec<String>,
    count: u64,
    levels: HashMap<String, u64>,
    samples: BTreeMap<i64, u64>,
}

/// Mines patterns from the sample; most frequent first, at most 100.
pub fn mine_patterns(entries: &[ResultEntry], start: i64, step: i64) -> Vec<Pattern> {
    let step = step.max(1);
    let mut buckets: HashMap<(usize, String), Vec<Cluster>> = HashMap::new();
    for e in entries {
        let tokens: Vec<String> = e.line.split_whitespace().take(64).map(mask).collect();
        if tokens.is_empty() {
            continue;
        }
        let key = (tokens.len(), tokens[0].clone());
        let clusters = buckets.entry(key).or_default();
        let best = clusters
            .iter_mut()
            .map(|c| {
                let same = c
                    .tokens
                    .iter()
                    .zip(&tokens)
                    .filter(|(a, b)| *a == *b || a.as_str() == WILDCARD)
                    .count();
                (same, c)
            })
            .filter(|(same, _)| *same * 2 >= tokens.len())
            .max_by_key(|(same, _)| *same)
            .map(|(_, c)| c);
        let level = e
            .structured_metadata
            .get("detected_level")
            .or_else(|| e.parsed.get("detected_level"))
            .or_else(|| e.stream.get("level"))
            .unwrap_or("unknown")
            .to_string();
        let bucket = start + (e.ts - start).div_euclid(step) * step;
        match best {
            Some(c) => {
                for (a, b) in c.tokens.iter_mut().zip(&tokens) {
                    if a != b {
                        *a = WILDCARD.to_string();
                    }
                }
                c.count += 1;
                *c.levels.entry(level).or_default() += 1;
                *c.samples.entry(bucket).or_default() += 1;
            }
            None => clusters.push(Cluster {
                tokens,
                count: 1,
                levels: HashMap::from([(level, 1)]),
                samples: BTreeMap::from([(bucket, 1)]),
            }),
        }
    }
    let mut out: Vec<(u64, Pattern)> = buckets
        .into_values()
        .flatten()
        .map(|c| {
            let mut joined: Vec<&str> = Vec::with_capacity(c.tokens.len());
            for t in &c.tokens {
                if !(t == WILDCARD && joined.last() == Some(&WILDCARD)) {
                    joined.push(t);
                }
            }
            let level = c
                .levels
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(l, _)| l.clone())
                .unwrap_or_default();
            (
                c.count,
                Pattern {
                    pattern: joined.join(" "),
                    level,
                    samples: c.samples.into_iter().collect(),
                },
            )
        })
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.pattern.cmp(&b.1.pattern)));
    out.into_iter().take(100).map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;

    fn entry(ts: i64, line: &str, md: &[(&str, &str)]) -> ResultEntry {
        ResultEntry {
            ts,
            line: line.into(),
            stream: Labels::from_pairs([("app", "x")]),
            structured_metadata: Labels::from_pairs(md.iter().copied()),
            parsed: Labels::new(),
        }
    }

    #[test]
    fn detects_json_logfmt_and_metadata_fields_with_types() {
        let es = vec![
            entry(
                1,
                r#"{"level":"error","resp":{"status":500},"took":"15ms","ok":true,"ratio":0.5}"#,
                &[("trace_id", "abc")],
            ),
            entry(
                2,
                r#"{"level":"info","resp":{"status":200},"took":"2s","ok":false,"ratio":1}"#,
                &[("trace_id", "def")],
            ),
            entry(3, "method=GET size=10KB user=\"a b\"", &[]),
        ];
        let f = detect_fields(&es);
        let get = |n: &str| {
            f.iter()
                .find(|x| x.label == n)
                .unwrap_or_else(|| panic!("{n} in {f:?}"))
        };
        assert_eq!(get("resp_status").kind, FieldType::Int);
        assert_eq!(
            get("resp_status").json_path,
            Some(vec!["resp".to_string(), "status".to_string()])
        );
        assert_eq!(get("resp_status").parsers, vec!["json"]);
        assert_eq!(get("resp_status").cardinality, 2);
        assert_eq!(get("took").kind, FieldType::Duration);
        assert_eq!(get("ok").kind, FieldType::Boolean);
        assert_eq!(get("ratio").kind, FieldType::Float);
        assert_eq!(get("trace_id").parsers, Vec::<String>::new());
        assert_eq!(get("size").kind, FieldType::Bytes);
        assert_eq!(get("user").parsers, vec!["logfmt"]);
        assert_eq!(field_values(&es, "user"), vec!["a b"]);
        assert_eq!(field_values(&es, "level"), vec!["error", "info"]);
    }

    #[test]
    fn detected_label_with_boolean_values_is_kept() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(!reject_detected_label(&v(&["0", "1"])));
        assert!(!reject_detected_label(&v(&["1"])));
        // Three numeric values are IDs again.
        assert!(reject_detected_label(&v(&["0", "1", "2"])));
        assert!(reject_detected_label(&v(&["7", "12"])));
        assert!(reject_detected_label(&v(&[
            "123e4567-e89b-12d3-a456-426614174000"
        ])));
        assert!(!reject_detected_label(&v(&["12", "api"])));
        assert!(reject_detected_label(&[]));
    }

    #[test]
    fn parsed_field_clashing_with_stream_label_is_extracted() {
        // The stream has app="x"; the line's own "app" becomes app_extracted.
        let es = vec![
            entry(1, r#"{"app":"billing","n":1}"#, &[]),
            entry(2, "app=shop n=2", &[]),
        ];
        let f = detect_fields(&es);
        let names: Vec<&str> = f.iter().map(|x| x.label.as_str()).collect();
        assert_eq!(names, ["app_extracted", "n"]);
        assert_eq!(f[0].parsers, vec!["json", "logfmt"]);
        assert_eq!(field_values(&es, "app_extracted"), vec!["billing", "shop"]);
        assert!(field_values(&es, "app").is_empty());
    }

    #[test]
    fn metadata_field_also_in_json_line_reports_json_parser() {
        // Loki creates the field from structured metadata with no parser,
        // then adds "json" when the json parser extracts the same name.
        let es = vec![
            entry(
                1,
                r#"{"span_id":"s1","msg":"a"}"#,
                &[("span_id", "s1"), ("pod", "p1")],
            ),
            entry(
                2,
                r#"{"span_id":"s2","msg":"b"}"#,
                &[("span_id", "s2"), ("pod", "p1")],
            ),
        ];
        let f = detect_fields(&es);
        let get = |n: &str| f.iter().find(|x| x.label == n).expect(n);
        assert_eq!(get("span_id").parsers, vec!["json"]);
        assert_eq!(get("span_id").json_path, Some(vec!["span_id".to_string()]));
        assert_eq!(get("span_id").cardinality, 2);
        assert_eq!(get("pod").parsers, Vec::<String>::new());
        assert_eq!(get("pod").json_path, None);
    }

    #[test]
    fn mines_patterns_with_counts_per_step() {
        let es: Vec<_> = (0..6)
            .map(|i| {
                entry(
                    i * 10,
                    &format!("user {i} logged in from 10.0.0.{i} after {}ms", i * 7),
                    &[("detected_level", "info")],
                )
            })
            .chain((0..3).map(|i| {
                entry(
                    5 + i,
                    &format!("disk /dev/sd{} is full", ["a", "b", "c"][i as usize]),
                    &[("detected_level", "error")],
                )
            }))
            .collect();
        let p = mine_patterns(&es, 0, 30);
        assert_eq!(p[0].pattern, "user <_> logged in from <_> after <_>");
        assert_eq!(p[0].level, "info");
        assert_eq!(p[0].samples, vec![(0, 3), (30, 3)]);
        assert_eq!(p[1].pattern, "disk <_> is full");
        assert_eq!(p[1].samples, vec![(0, 3)]);
        assert_eq!(p[1].level, "error");
    }

    #[test]
    fn numeric_and_uuid_values() {
        assert!(looks_numeric_or_uuid("42"));
        assert!(looks_numeric_or_uuid(
            "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
        ));
        assert!(!looks_numeric_or_uuid("api"));
    }
}
