//! JSON encoding of query results exactly as Loki writes them
//! (`pkg/util/marshal`): key order, 19-digit string timestamps for log
//! entries, float-second timestamps and string values for samples, the
//! categorized-labels form, and the `stats` object.
//!
//! Results are written straight into a `String` (no intermediate
//! `serde_json::Value`), which matters for 5,000-line responses.

use std::fmt::Write as _;

use crate::labels::Labels;
use crate::logql::eval::logs::group_streams;
use crate::logql::eval::{QueryResult, QueryStats, ResultEntry, Sample, Series};

/// Appends `s` as a JSON string literal.
pub fn json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            c if (c as u32) < 0x20 => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends a label set as a JSON object.
pub fn json_labels(out: &mut String, l: &Labels) {
    out.push('{');
    for (i, (k, v)) in l.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, k);
        out.push(':');
        json_str(out, v);
    }
    out.push('}');
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`, with Prometheus' spellings of
/// the special values.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// A timestamp in ms written as float seconds (Prometheus `model.Time`).
pub fn format_ts_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    if frac == 0 {
        format!("{secs}")
    } else {
        let s = format!("{secs}.{frac:03}");
        s.trim_end_matches('0').to_string()
    }
}

fn sample_pair(out: &mut String, ts_ms: i64, v: f64) {
    out.push('[');
    out.push_str(&format_ts_ms(ts_ms));
    out.push(',');
    json_str(out, &format_value(v));
    out.push(']');
}

/// Writes the `result` array of a streams result. `categorize`: streams hold
/// only indexed labels and each value is a 3-tuple; otherwise labels are
/// merged and values are 2-tuples. Never mixes the two shapes.
pub fn streams_result(out: &mut String, entries: &[ResultEntry], categorize: bool) {
    let groups = if categorize {
        group_streams(entries, |e| e.stream.clone())
    } else {
        group_streams(entries, |e| {
            let mut l = e.stream.clone();
            for (k, v) in e.structured_metadata.iter().chain(e.parsed.iter()) {
                l.insert(k, v);
            }
            l
        })
    };
    out.push('[');
    for (gi, (labels, es)) in groups.iter().enumerate() {
        if gi > 0 {
            out.push(',');
        }
        out.push_str("{\"stream\":");
        json_labels(out, labels);
        out.push_str(",\"values\":[");
        for (i, e) in es.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("[\"");
            let _ = write!(out, "{}", e.ts);
            out.push_str("\",");
            json_str(out, &e.line);
            if categorize {
                out.push_str(",{");
                let mut first = true;
                if !e.structured_metadata.is_empty() {
                    out.push_str("\"structuredMetadata\":");
                    json_labels(out, &e.structured_metadata);
                    first = false;
                }
                if !e.parsed.is_empty() {
                    if !first {
                        out.push(',');
                    }
                    out.push_str("\"parsed\":");
                    json_labels(out, &e.parsed);
                }
                out.push('}');
            }
            out.push(']');
        }
        out.push_str("]}");
    }
    out.push(']');
}

fn matrix_result(out: &mut String, series: &[Series]) {
    out.push('[');
    for (i, s) in series.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"metric\":");
        json_labels(out, &s.metric);
        out.push_str(",\"values\":[");
        for (j, (ts, v)) in s.points.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            sample_pair(out, *ts, *v);
        }
        out.push_str("]}");
    }
    out.push(']');
}

fn vector_result(out: &mut String, samples: &[Sample]) {
    out.push('[');
    for (i, s) in samples.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"metric\":");
        json_labels(out, &s.metric);
        out.push_str(",\"value\":");
        sample_pair(out, s.ts_ms, s.value);
        out.push('}');
    }
    out.push(']');
}

/// The whole query response body: `{"status":"success","data":{...}}` with
/// `resultType`, `encodingFlags` (when the request asked to categorize),
/// `result`, `stats`.
pub fn query_response(
    result: &QueryResult,
    stats: &QueryStats,
    exec_secs: f64,
    categorize: bool,
    warnings: &[String],
) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str("{\"status\":\"success\",");
    if !warnings.is_empty() {
        out.push_str("\"warnings\":[");
        for (i, w) in warnings.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_str(&mut out, w);
        }
        out.push_str("],");
    }
    out.push_str("\"data\":{\"resultType\":");
    let kind = match result {
        QueryResult::Streams(_) => "streams",
        QueryResult::Matrix(_) => "matrix",
        QueryResult::Vector(_) => "vector",
        QueryResult::Scalar(..) => "scalar",
    };
    json_str(&mut out, kind);
    // Loki echoes the flags whatever the result type (`marshal/query.go`
    // `encodeData`); they only change how streams are written.
    if categorize {
        out.push_str(",\"encodingFlags\":[\"categorize-labels\"]");
    }
    out.push_str(",\"result\":");
    match result {
        QueryResult::Streams(e) => streams_result(&mut out, e, categorize),
        QueryResult::Matrix(m) => matrix_result(&mut out, m),
        QueryResult::Vector(v) => vector_result(&mut out, v),
        QueryResult::Scalar(ts, v) => sample_pair(&mut out, *ts, *v),
    }
    let entries = match result {
        QueryResult::Streams(e) => e.len() as u64,
        QueryResult::Matrix(m) => m.len() as u64,
        QueryResult::Vector(v) => v.len() as u64,
        QueryResult::Scalar(..) => 1,
    };
    out.push_str(",\"stats\":");
    stats_json(&mut out, stats, exec_secs, entries);
    out.push_str("}}");
    out
}

fn cache_entry(out: &mut String, name: &str) {
    let _ = write!(
        out,
        "\"{name}\":{{\"entriesFound\":0,\"entriesRequested\":0,\"entriesStored\":0,\"bytesReceived\":0,\"bytesSent\":0,\"requests\":0,\"downloadTime\":0,\"queryLengthServed\":0}}"
    );
}

/// Loki's `stats` object, every section present, with the real figures of
/// this query in `summary`, `querier.store` and `ingester.store` (miniloki's
/// heads play the ingester's part).
pub fn stats_json(out: &mut String, s: &QueryStats, exec_secs: f64, entries_returned: u64) {
    let r = &s.read;
    let per_sec = |n: u64| {
        if exec_secs > 0.0 {
            (n as f64 / exec_secs) as u64
        } else {
            0
        }
    };
    let total_bytes = s.bytes_processed;
    let total_lines = s.lines_processed;
    let _ = write!(
        out,
        "{{\"summary\":{{\"bytesProcessedPerSecond\":{},\"linesProcessedPerSecond\":{},\"totalBytesProcessed\":{},\"totalLinesProcessed\":{},\"execTime\":{},\"queueTime\":0,\"subqueries\":0,\"totalEntriesReturned\":{},\"splits\":0,\"shards\":0,\"totalPostFilterLines\":{},\"totalStructuredMetadataBytesProcessed\":{}}},",
        per_sec(total_bytes),
        per_sec(total_lines),
        total_bytes,
        total_lines,
        exec_secs,
        entries_returned,
        s.post_filter_lines,
        r.structured_metadata_bytes
    );
    let store = |out: &mut String, head: bool| {
        let (hb, hl, db, dl, cb) = if head {
            (r.head_chunk_bytes, r.head_chunk_lines, 0, 0, 0)
        } else {
            (
                0,
                0,
                r.decompressed_bytes,
                r.decompressed_lines,
                r.compressed_bytes,
            )
        };
        let _ = write!(
            out,
            "\"store\":{{\"totalChunksRef\":{},\"totalChunksDownloaded\":{},\"chunksDownloadTime\":0,\"queryReferencedStructuredMetadata\":false,\"chunk\":{{\"headChunkBytes\":{hb},\"headChunkLines\":{hl},\"decompressedBytes\":{db},\"decompressedLines\":{dl},\"compressedBytes\":{cb},\"totalDuplicates\":{},\"postFilterLines\":{},\"headChunkStructuredMetadataBytes\":0,\"decompressedStructuredMetadataBytes\":{}}},\"chunkRefsFetchTime\":0}}",
            if head { 0 } else { r.chunks_ref },
            if head { 0 } else { r.chunks_downloaded },
            r.duplicates,
            s.post_filter_lines,
            r.structured_metadata_bytes
        );
    };
    out.push_str("\"querier\":{");
    store(out, false);
    out.push_str("},\"ingester\":{\"totalReached\":1,\"totalChunksMatched\":0,\"totalBatches\":0,\"totalLinesSent\":0,");
    store(out, true);
    out.push_str("},\"cache\":{");
    for (i, name) in [
        "chunk",
        "index",
        "result",
        "statsResult",
        "volumeResult",
        "seriesResult",
        "labelResult",
        "instantMetricResult",
        "logResult",
        "taskResult",
    ]
    .iter()
    .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        cache_entry(out, name);
    }
    let _ = write!(out, "}},\"index\":{{\"totalChunks\":{},\"postFilterChunks\":{},\"shardsDuration\":0,\"usedBloomFilters\":false}}}}", r.chunks_ref, r.chunks_ref);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_times_format_like_prometheus() {
        assert_eq!(format_value(2.0), "2");
        assert_eq!(format_value(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_ts_ms(4_000_000_000_000), "4000000000");
        assert_eq!(format_ts_ms(1_588_889_221_500), "1588889221.5");
        assert_eq!(format_ts_ms(1_588_889_221_050), "1588889221.05");
    }

    #[test]
    fn json_strings_escape_controls() {
        let mut s = String::new();
        json_str(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001é\"");
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v, "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn encoding_flags_echoed_for_metric_results() {
        let m = QueryResult::Matrix(vec![crate::logql::eval::Series {
            metric: Labels::from_pairs([("level", "info")]),
            points: vec![(1_000, 2.0)],
        }]);
        let body = query_response(&m, &QueryStats::default(), 0.0, true, &[]);
        let flags = body.find("\"encodingFlags\":[\"categorize-labels\"]");
        let result = body.find("\"result\"");
        assert!(flags.is_some() && flags < result, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["data"]["result"][0]["values"][0][1], "2");
        let plain = query_response(&m, &QueryStats::default(), 0.0, false, &[]);
        assert!(!plain.contains("encodingFlags"), "{plain}");
    }

    #[test]
    fn categorized_and_plain_streams_never_mix() {
        let e = ResultEntry {
            ts: 1,
            line: "x".into(),
            stream: Labels::from_pairs([("app", "a")]),
            structured_metadata: Labels::from_pairs([("trace_id", "t1")]),
            parsed: Labels::new(),
        };
        let mut plain = String::new();
        streams_result(&mut plain, std::slice::from_ref(&e), false);
        let v: serde_json::Value = serde_json::from_str(&plain).unwrap();
        assert_eq!(v[0]["stream"]["trace_id"], "t1");
        assert_eq!(v[0]["values"][0].as_array().unwrap().len(), 2);
        let mut cat = String::new();
        streams_result(&mut cat, &[e], true);
        let v: serde_json::Value = serde_json::from_str(&cat).unwrap();
        assert!(v[0]["stream"].get("trace_id").is_none());
        assert_eq!(v[0]["values"][0][2]["structuredMetadata"]["trace_id"], "t1");
        assert!(v[0]["values"][0][2].get("parsed").is_none());
    }
}
