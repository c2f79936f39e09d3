//! Validation of decoded streams with Loki's rules and exact messages
//! (`pkg/distributor/validator.go`, `pkg/validation/validate.go`).
//!
//! [`prepare_push`] is pure (no store, clock passed in): it parses labels,
//! adds `service_name`, truncates or rejects long lines, checks timestamps
//! and structured metadata, normalises metadata names and adds
//! `detected_level`. Valid entries survive next to the messages of the
//! rejected ones (Loki's partial accept).

use chrono::{TimeZone, Utc};

use super::discovery::{self, LevelDetector, DETECTED_LEVEL, SERVICE_NAME};
use super::push::RawStream;
use super::{reason, IngestLimits, LinesBytes, PushError};
use crate::labels::{parse_labels, unquote_go_prefix, Labels};
use crate::storage::{PushEntry, PushStream};

pub const MISSING_STREAMS_MSG: &str = "error at least one valid stream is required for ingestion";
pub const MISSING_LABELS_MSG: &str = "error at least one label pair is required per stream";

/// Validated streams plus what was rejected.
#[derive(Debug, Default)]
pub struct Prepared {
    pub streams: Vec<PushStream>,
    /// Rejection messages in request order (joined with `\n` for the 400).
    pub errors: Vec<String>,
    /// Discarded lines and bytes by Loki reason.
    pub discarded: Vec<(&'static str, LinesBytes)>,
    /// Everything in the request (lines; line + metadata bytes).
    pub received: LinesBytes,
    /// Lines shortened by `max_line_size_truncate`.
    pub truncated: usize,
}

impl Prepared {
    /// Lines discarded by validation.
    pub fn rejected_lines(&self) -> usize {
        self.discarded.iter().map(|(_, c)| c.lines as usize).sum()
    }

    fn discard(&mut self, reason: &'static str, lines: usize, bytes: usize) {
        match self.discarded.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, c)) => {
                c.lines += lines as u64;
                c.bytes += bytes as u64;
            }
            None => self.discarded.push((
                reason,
                LinesBytes {
                    lines: lines as u64,
                    bytes: bytes as u64,
                },
            )),
        }
    }
}

/// Size Loki meters for an entry: line plus metadata names and values,
/// `detected_level` excluded.
pub fn entry_size(e: &PushEntry) -> usize {
    e.line.len() + metadata_size(&e.metadata)
}

fn metadata_size(md: &[(String, String)]) -> usize {
    md.iter()
        .filter(|(k, _)| k != DETECTED_LEVEL)
        .map(|(k, v)| k.len() + v.len())
        .sum()
}

/// Validates a Loki push. A label string that does not parse fails the
/// whole request (400 `couldn't parse labels: ...`), as in Loki; every
/// other problem rejects only its stream or entry.
pub fn prepare_push(
    raw: Vec<RawStream>,
    limits: &IngestLimits,
    now_ns: i64,
) -> Result<Prepared, PushError> {
    let mut parsed = Vec::with_capacity(raw.len());
    for s in raw {
        let labels = match parse_labels(&s.labels) {
            Ok(l) => Ok(l),
            Err(e) => match duplicate_name(&e.0) {
                Some(name) => Err(format!(
                    "stream '{}' has duplicate label name: '{}'",
                    s.labels, name
                )),
                None => {
                    return Err(PushError::bad_request(format!(
                        "couldn't parse labels: {e}"
                    )))
                }
            },
        };
        parsed.push((labels, s));
    }
    Ok(validate_streams(parsed, limits, now_ns))
}

/// Like [`prepare_push`] but a label parse failure only rejects its stream
/// (used for OTLP, where labels are built by the mapping).
pub fn prepare_raw_streams(raw: Vec<RawStream>, limits: &IngestLimits, now_ns: i64) -> Prepared {
    let parsed = raw
        .into_iter()
        .map(|s| {
            let l = parse_labels(&s.labels).map_err(|e| match duplicate_name(&e.0) {
                Some(name) => format!("stream '{}' has duplicate label name: '{}'", s.labels, name),
                None => format!("couldn't parse labels: {e}"),
            });
            (l, s)
        })
        .collect();
    validate_streams(parsed, limits, now_ns)
}

/// The name in `parse_labels`' `duplicate label name: "x"` error.
fn duplicate_name(msg: &str) -> Option<String> {
    let q = msg.strip_prefix("duplicate label name: ")?;
    unquote_go_prefix(q).ok().map(|(v, _)| v)
}

fn validate_streams(
    parsed: Vec<(Result<Labels, String>, RawStream)>,
    limits: &IngestLimits,
    now_ns: i64,
) -> Prepared {
    let mut out = Prepared::default();
    let detector = LevelDetector {
        fields: &limits.log_level_fields,
        json_max_depth: limits.log_level_from_json_max_depth,
    };
    let discover_levels = limits.discover_log_levels && limits.allow_structured_metadata;
    let oldest = now_ns.saturating_sub(
        limits
            .reject_old_samples_max_age
            .as_nanos()
            .min(i64::MAX as u128) as i64,
    );
    let newest = now_ns.saturating_add(
        limits
            .creation_grace_period
            .as_nanos()
            .min(i64::MAX as u128) as i64,
    );

    for (labels, mut raw) in parsed {
        let stream_bytes: usize = raw.entries.iter().map(entry_size).sum();
        out.received.lines += raw.entries.len() as u64;
        out.received.bytes += stream_bytes as u64;
        if raw.entries.is_empty() {
            continue;
        }
        if limits.max_line_size_truncate {
            out.truncated += truncate_lines(
                &mut raw.entries,
                limits.max_line_size,
                &limits.max_line_size_truncate_identifier,
            );
        }
        let n = raw.entries.len();
        let bytes: usize = raw.entries.iter().map(entry_size).sum();
        let mut labels = match labels {
            Ok(l) => l,
            Err(msg) => {
                let r = if msg.contains("duplicate label name") {
                    reason::DUPLICATE_LABEL_NAMES
                } else {
                    reason::INVALID_LABELS
                };
                out.errors.push(msg);
                out.discard(r, n, bytes);
                continue;
            }
        };
        discovery::discover_service_name(&mut labels, &limits.discover_service_name);
        if let Err((r, msg)) = validate_labels(&labels, limits) {
            out.errors.push(msg);
            out.discard(r, n, bytes);
            continue;
        }

        let mut kept = Vec::with_capacity(n);
        for mut e in raw.entries {
            if let Err((r, msg)) = validate_entry(&labels, &e, limits, oldest, newest) {
                out.errors.push(msg);
                out.discard(r, 1, entry_size(&e));
                continue;
            }
            if let Err(msg) = normalize_metadata(&mut e.metadata) {
                out.errors.push(msg);
                out.discard(reason::INVALID_STRUCTURED_METADATA, 1, entry_size(&e));
                continue;
            }
            if discover_levels {
                detector.apply(&labels, &mut e.metadata, &e.line);
            }
            kept.push(e);
        }
        if !kept.is_empty() {
            out.streams.push(PushStream {
                labels,
                entries: kept,
            });
        }
    }
    out
}

/// Loki's `truncateLines`: lines over `max` are cut to `max - len(suffix)`
/// bytes (at a character boundary here) plus the suffix.
fn truncate_lines(entries: &mut [PushEntry], max: usize, suffix: &str) -> usize {
    if max == 0 || max <= suffix.len() {
        return 0;
    }
    let mut n = 0;
    for e in entries {
        if e.line.len() > max {
            let mut cut = max - suffix.len();
            while !e.line.is_char_boundary(cut) {
                cut -= 1;
            }
            e.line.truncate(cut);
            e.line.push_str(suffix);
            n += 1;
        }
    }
    n
}

/// `ValidateLabels`: labels present, not too many (`service_name` not
/// counted), names and values not too long.
fn validate_labels(labels: &Labels, limits: &IngestLimits) -> Result<(), (&'static str, String)> {
    if labels.is_empty() {
        return Err((reason::MISSING_LABELS, MISSING_LABELS_MSG.to_string()));
    }
    let mut count = labels.len();
    if labels.contains(SERVICE_NAME) {
        count -= 1;
    }
    if count > limits.max_label_names_per_series {
        return Err((
            reason::MAX_LABEL_NAMES_PER_SERIES,
            format!(
                "entry for stream '{labels}' has {count} label names; limit {}",
                limits.max_label_names_per_series
            ),
        ));
    }
    for (k, v) in labels.iter() {
        if k.len() > limits.max_label_name_length {
            return Err((
                reason::LABEL_NAME_TOO_LONG,
                format!("stream '{labels}' has label name too long: '{k}'"),
            ));
        }
        if v.len() > limits.max_label_value_length {
            return Err((
                reason::LABEL_VALUE_TOO_LONG,
                format!("stream '{labels}' has label value too long: '{v}'"),
            ));
        }
    }
    Ok(())
}

/// Go's `time.RFC3339` of a Unix-nanosecond instant, in UTC.
pub fn rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    match Utc.timestamp_opt(secs, 0).single() {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => ns.to_string(),
    }
}

/// `ValidateEntry`: age, future, line size, structured metadata.
fn validate_entry(
    labels: &Labels,
    e: &PushEntry,
    limits: &IngestLimits,
    oldest: i64,
    newest: i64,
) -> Result<(), (&'static str, String)> {
    if limits.reject_old_samples && e.ts < oldest {
        return Err((
            reason::GREATER_THAN_MAX_SAMPLE_AGE,
            format!(
                "entry for stream '{labels}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
                rfc3339(e.ts),
                rfc3339(oldest)
            ),
        ));
    }
    if e.ts > newest {
        return Err((
            reason::TOO_FAR_IN_FUTURE,
            format!(
                "entry for stream '{labels}' has timestamp too new: {}",
                rfc3339(e.ts)
            ),
        ));
    }
    if limits.max_line_size != 0 && e.line.len() > limits.max_line_size {
        return Err((
            reason::LINE_TOO_LONG,
            format!(
                "max entry size '{}' bytes exceeded for stream '{labels}' while adding an entry with length '{}' bytes",
                limits.max_line_size,
                e.line.len()
            ),
        ));
    }
    if !e.metadata.is_empty() {
        if !limits.allow_structured_metadata {
            return Err((
                reason::DISALLOWED_STRUCTURED_METADATA,
                format!("stream '{labels}' includes structured metadata, but this feature is disallowed. Please see `limits_config.allow_structured_metadata` or contact your Loki administrator to enable it"),
            ));
        }
        let size = metadata_size(&e.metadata);
        if limits.max_structured_metadata_size != 0 && size > limits.max_structured_metadata_size {
            return Err((
                reason::STRUCTURED_METADATA_TOO_LARGE,
                format!("stream '{labels}' has structured metadata too large: '{size}' bytes, limit: '{}' bytes. Please see `limits_config.max_structured_metadata_size` or contact your Loki administrator to increase it", limits.max_structured_metadata_size),
            ));
        }
        let count = e.metadata.len();
        if limits.max_structured_metadata_entries_count != 0
            && count > limits.max_structured_metadata_entries_count
        {
            return Err((
                reason::STRUCTURED_METADATA_TOO_MANY,
                format!("stream '{labels}' has too many structured metadata labels: '{count}', limit: '{}'. Please see `limits_config.max_structured_metadata_entries_count` or contact your Loki administrator to increase it", limits.max_structured_metadata_entries_count),
            ));
        }
    }
    Ok(())
}

/// Whether `name` comes out of [`normalize_label_name`] unchanged.
fn is_normalized(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || b[0].is_ascii_digit() || b.iter().all(|c| *c == b'_') {
        return false;
    }
    let inner = if b.len() >= 4 && name.starts_with("__") && name.ends_with("__") {
        &b[2..b.len() - 2]
    } else {
        b
    };
    inner
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && !inner.windows(2).any(|w| w == b"__")
}

/// The OTLP/Prometheus label namer (`otlptranslator.LabelNamer`): every run
/// of characters outside `[a-zA-Z0-9]` (underscores included) becomes one
/// `_`; `__x__` keeps its outer underscores; a leading digit gets `key_`.
/// An empty or all-underscore result is an error.
pub fn normalize_label_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("label name is empty".to_string());
    }
    if is_normalized(name) {
        return Ok(name.to_string());
    }
    let reserved = name.len() >= 4 && name.starts_with("__") && name.ends_with("__");
    let inner = if reserved {
        &name[2..name.len() - 2]
    } else {
        name
    };
    let mut out = String::with_capacity(name.len() + 4);
    let mut prev_us = false;
    for c in inner.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
            prev_us = false;
        } else if !prev_us {
            out.push('_');
            prev_us = true;
        }
    }
    if reserved {
        out = format!("__{out}__");
    }
    if out.as_bytes().first().is_some_and(|c| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    }
    if out.bytes().all(|c| c == b'_') {
        return Err(format!(
            "normalization for label name {:?} resulted in invalid name {:?}",
            name, out
        ));
    }
    Ok(out)
}

/// Normalises metadata names, then sorts by name keeping the last value of
/// a repeated name (Loki rebuilds metadata through a label builder).
fn normalize_metadata(md: &mut Vec<(String, String)>) -> Result<(), String> {
    if md.is_empty() {
        return Ok(());
    }
    let mut changed = false;
    for (k, _) in md.iter_mut() {
        if !is_normalized(k) {
            *k = normalize_label_name(k)?;
            changed = true;
        }
    }
    let sorted = md.windows(2).all(|w| w[0].0 < w[1].0);
    if changed || !sorted {
        // Stable sort, then keep the last of equal names.
        md.sort_by(|a, b| a.0.cmp(&b.0));
        let mut i = 0;
        while i + 1 < md.len() {
            if md[i].0 == md[i + 1].0 {
                md.remove(i);
            } else {
                i += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000_000;

    fn entry(ts: i64, line: &str) -> PushEntry {
        PushEntry {
            ts,
            line: line.into(),
            metadata: vec![],
        }
    }

    fn raw(labels: &str, entries: Vec<PushEntry>) -> RawStream {
        RawStream {
            labels: labels.into(),
            entries,
        }
    }

    fn no_levels() -> IngestLimits {
        IngestLimits {
            discover_log_levels: false,
            ..IngestLimits::default()
        }
    }

    #[test]
    fn label_parse_error_fails_whole_request() {
        let e = prepare_push(
            vec![
                raw(r#"{a="1"}"#, vec![entry(NOW, "x")]),
                raw("{a.b=\"1\"}", vec![entry(NOW, "x")]),
            ],
            &no_levels(),
            NOW,
        )
        .unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.message.starts_with("couldn't parse labels: "),
            "{}",
            e.message
        );
    }

    #[test]
    fn service_name_added_and_not_counted() {
        let p = prepare_push(
            vec![raw(r#"{app="web"}"#, vec![entry(NOW, "x")])],
            &no_levels(),
            NOW,
        )
        .unwrap();
        assert_eq!(
            p.streams[0].labels.to_string(),
            r#"{app="web", service_name="web"}"#
        );
        // 15 labels + service_name pass; 16 fail.
        let many: Vec<String> = (0..16).map(|i| format!("l{i:02}=\"v\"")).collect();
        let ok = format!("{{{}}}", many[..15].join(", "));
        let p = prepare_push(vec![raw(&ok, vec![entry(NOW, "x")])], &no_levels(), NOW).unwrap();
        assert!(p.errors.is_empty());
        let bad = format!("{{{}}}", many.join(", "));
        let p = prepare_push(vec![raw(&bad, vec![entry(NOW, "x")])], &no_levels(), NOW).unwrap();
        assert_eq!(p.errors.len(), 1);
        assert!(
            p.errors[0].starts_with("entry for stream '{l00=\"v\", "),
            "{}",
            p.errors[0]
        );
        assert!(
            p.errors[0]
                .ends_with("service_name=\"unknown_service\"}' has 16 label names; limit 15"),
            "{}",
            p.errors[0]
        );
        assert_eq!(
            p.discarded,
            vec![(
                reason::MAX_LABEL_NAMES_PER_SERIES,
                LinesBytes { lines: 1, bytes: 1 }
            )]
        );
    }

    #[test]
    fn missing_labels_when_discovery_is_off() {
        let limits = IngestLimits {
            discover_service_name: vec![],
            ..no_levels()
        };
        let p = prepare_push(vec![raw("{}", vec![entry(NOW, "x")])], &limits, NOW).unwrap();
        assert_eq!(p.errors, vec![MISSING_LABELS_MSG.to_string()]);
        // With discovery on, `{}` becomes {service_name="unknown_service"}.
        let p = prepare_push(vec![raw("{}", vec![entry(NOW, "x")])], &no_levels(), NOW).unwrap();
        assert_eq!(
            p.streams[0].labels.to_string(),
            r#"{service_name="unknown_service"}"#
        );
    }

    #[test]
    fn label_name_and_value_too_long_and_duplicates() {
        let limits = IngestLimits {
            max_label_name_length: 3,
            max_label_value_length: 4,
            ..no_levels()
        };
        let p = prepare_push(
            vec![
                raw(r#"{abcd="1"}"#, vec![entry(NOW, "x")]),
                raw(r#"{abc="12345"}"#, vec![entry(NOW, "x")]),
                raw(r#"{a="1", a="2"}"#, vec![entry(NOW, "x")]),
            ],
            &IngestLimits {
                discover_service_name: vec![],
                ..limits
            },
            NOW,
        )
        .unwrap();
        assert_eq!(
            p.errors,
            vec![
                r#"stream '{abcd="1"}' has label name too long: 'abcd'"#.to_string(),
                r#"stream '{abc="12345"}' has label value too long: '12345'"#.to_string(),
                r#"stream '{a="1", a="2"}' has duplicate label name: 'a'"#.to_string(),
            ]
        );
        assert!(p.streams.is_empty());
    }

    #[test]
    fn entry_rules_with_partial_accept() {
        let limits = IngestLimits {
            reject_old_samples: true,
            max_line_size: 10,
            ..no_levels()
        };
        let day = 86_400_000_000_000i64;
        let p = prepare_push(
            vec![raw(
                r#"{app="a"}"#,
                vec![
                    entry(NOW, "ok"),
                    entry(NOW - 8 * day, "old"),
                    entry(NOW + 11 * 60_000_000_000, "new"),
                    entry(NOW, "0123456789ab"),
                    entry(NOW + 1, "ok2"),
                ],
            )],
            &limits,
            NOW,
        )
        .unwrap();
        let s = r#"{app="a", service_name="a"}"#;
        // NOW is 2023-11-14T22:13:20Z.
        assert_eq!(
            p.errors,
            vec![
                format!("entry for stream '{s}' has timestamp too old: 2023-11-06T22:13:20Z, oldest acceptable timestamp is: 2023-11-07T22:13:20Z"),
                format!("entry for stream '{s}' has timestamp too new: 2023-11-14T22:24:20Z"),
                format!("max entry size '10' bytes exceeded for stream '{s}' while adding an entry with length '12' bytes"),
            ]
        );
        assert_eq!(p.streams.len(), 1);
        let lines: Vec<&str> = p.streams[0]
            .entries
            .iter()
            .map(|e| e.line.as_str())
            .collect();
        assert_eq!(lines, vec!["ok", "ok2"]);
        assert_eq!(p.rejected_lines(), 3);
        assert_eq!(
            p.received,
            LinesBytes {
                lines: 5,
                bytes: 2 + 3 + 3 + 12 + 3
            }
        );
    }

    #[test]
    fn old_samples_accepted_by_default() {
        let p = prepare_push(
            vec![raw(r#"{a="1"}"#, vec![entry(0, "epoch")])],
            &no_levels(),
            NOW,
        )
        .unwrap();
        assert!(p.errors.is_empty());
        assert_eq!(p.streams[0].entries.len(), 1);
    }

    #[test]
    fn truncation_instead_of_rejection() {
        let limits = IngestLimits {
            max_line_size: 8,
            max_line_size_truncate: true,
            max_line_size_truncate_identifier: "...".into(),
            ..no_levels()
        };
        let p = prepare_push(
            vec![raw(
                r#"{a="1"}"#,
                vec![
                    entry(NOW, "abcdefghijkl"),
                    entry(NOW, "short"),
                    entry(NOW, "ééééé"),
                ],
            )],
            &limits,
            NOW,
        )
        .unwrap();
        assert!(p.errors.is_empty());
        let lines: Vec<&str> = p.streams[0]
            .entries
            .iter()
            .map(|e| e.line.as_str())
            .collect();
        // "ééééé" is 10 bytes: cut to 5 bytes → 4 (char boundary) + "...".
        assert_eq!(lines, vec!["abcde...", "short", "éé..."]);
        assert_eq!(p.truncated, 2);
    }

    #[test]
    fn structured_metadata_rules() {
        let limits = IngestLimits {
            max_structured_metadata_size: 10,
            max_structured_metadata_entries_count: 2,
            ..no_levels()
        };
        let md = |pairs: &[(&str, &str)]| PushEntry {
            ts: NOW,
            line: "l".into(),
            metadata: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let p = prepare_push(
            vec![raw(
                r#"{a="1"}"#,
                vec![
                    md(&[("k", "0123456789")]),
                    md(&[("a", "1"), ("b", "2"), ("c", "3")]),
                    md(&[("trace.id", "x"), ("a", "y")]),
                ],
            )],
            &IngestLimits {
                max_structured_metadata_size: 20,
                ..limits.clone()
            },
            NOW,
        )
        .unwrap();
        let s = r#"{a="1", service_name="unknown_service"}"#;
        assert_eq!(p.errors, vec![format!("stream '{s}' has too many structured metadata labels: '3', limit: '2'. Please see `limits_config.max_structured_metadata_entries_count` or contact your Loki administrator to increase it")]);
        // Names normalised and sorted.
        assert_eq!(
            p.streams[0].entries[1].metadata,
            vec![
                ("a".to_string(), "y".to_string()),
                ("trace_id".to_string(), "x".to_string())
            ]
        );
        let p = prepare_push(
            vec![raw(r#"{a="1"}"#, vec![md(&[("k", "0123456789")])])],
            &limits,
            NOW,
        )
        .unwrap();
        assert_eq!(p.errors, vec![format!("stream '{s}' has structured metadata too large: '11' bytes, limit: '10' bytes. Please see `limits_config.max_structured_metadata_size` or contact your Loki administrator to increase it")]);
        let off = IngestLimits {
            allow_structured_metadata: false,
            ..no_levels()
        };
        let p = prepare_push(vec![raw(r#"{a="1"}"#, vec![md(&[("k", "v")])])], &off, NOW).unwrap();
        assert_eq!(p.errors, vec![format!("stream '{s}' includes structured metadata, but this feature is disallowed. Please see `limits_config.allow_structured_metadata` or contact your Loki administrator to enable it")]);
    }

    #[test]
    fn label_namer() {
        assert_eq!(
            normalize_label_name("service.name").unwrap(),
            "service_name"
        );
        assert_eq!(normalize_label_name("a..b").unwrap(), "a_b");
        assert_eq!(normalize_label_name("a__b").unwrap(), "a_b");
        assert_eq!(normalize_label_name("1abc").unwrap(), "key_1abc");
        assert_eq!(normalize_label_name("__meta.x__").unwrap(), "__meta_x__");
        assert_eq!(normalize_label_name("_x").unwrap(), "_x");
        assert_eq!(
            normalize_label_name("k8s.pod.name").unwrap(),
            "k8s_pod_name"
        );
        assert!(normalize_label_name("...").is_err());
        assert!(normalize_label_name("").is_err());
    }

    #[test]
    fn detected_level_added_when_enabled() {
        let p = prepare_push(
            vec![raw(r#"{a="1"}"#, vec![entry(NOW, "level=warn msg=x")])],
            &IngestLimits::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(
            p.streams[0].entries[0].metadata,
            vec![("detected_level".to_string(), "warn".to_string())]
        );
    }
}
