//! Push body decoding: Content-Encoding (gzip, deflate, snappy no-op),
//! size limits against compression bombs, then the protobuf (snappy block
//! format) or JSON v1 payload into [`RawStream`]s.
//!
//! Nothing here validates labels or entries; that is `validate`'s job. The
//! only copy of a line is the `String` that storage takes.

use std::io::Read;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;

use super::PushError;
use crate::proto::logproto::PushRequest;
use crate::storage::PushEntry;

/// One decoded stream: labels as the client sent them (selector text) and
/// entries with metadata names not yet normalised.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawStream {
    pub labels: String,
    pub entries: Vec<PushEntry>,
}

/// `request body too large: message size too large than max (N vs M)`.
fn body_too_large(size: usize, max: usize) -> PushError {
    PushError::too_large(format!("message size too large than max ({size} vs {max})"))
}

fn decompressed_too_large(size: usize, max: usize) -> PushError {
    PushError::too_large(format!(
        "decompressed message size too large than max ({size} vs {max})"
    ))
}

/// The media type without parameters, lower-cased: `application/json;
/// charset=utf-8` → `application/json`.
pub fn media_type(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Reads `r` to the end, failing with 413 once more than `max` bytes come
/// out. The buffer grows with the data actually produced, so a bomb costs
/// at most `max` bytes of memory.
fn read_limited(r: impl Read, max: usize, what: &str) -> Result<Vec<u8>, PushError> {
    // 0 means no limit, as in Loki.
    let max = if max == 0 { usize::MAX } else { max };
    let mut out = Vec::new();
    let mut limited = r.take((max as u64).saturating_add(1));
    limited
        .read_to_end(&mut out)
        .map_err(|e| PushError::bad_request(format!("{what}: {e}")))?;
    if out.len() > max {
        return Err(decompressed_too_large(out.len(), max));
    }
    Ok(out)
}

/// Undoes Content-Encoding. `None` means the body is used as is.
/// `allow_zstd` is for OTLP, which also accepts zstd.
pub(crate) fn decode_content_encoding(
    content_encoding: Option<&str>,
    body: &[u8],
    max_recv: usize,
    max_decompressed: usize,
) -> Result<Option<Vec<u8>>, PushError> {
    if max_recv > 0 && body.len() > max_recv {
        return Err(body_too_large(body.len(), max_recv));
    }
    let enc = content_encoding.unwrap_or("").trim();
    match enc.to_ascii_lowercase().as_str() {
        "" | "identity" | "snappy" => Ok(None),
        "gzip" | "x-gzip" => read_limited(
            flate2::read::MultiGzDecoder::new(body),
            max_decompressed,
            "gzip",
        )
        .map(Some),
        "deflate" => read_limited(
            flate2::read::ZlibDecoder::new(body),
            max_decompressed,
            "deflate",
        )
        .map(Some),
        _ => Err(PushError::bad_request(format!(
            "Content-Encoding {} not supported",
            go_quote_plain(enc)
        ))),
    }
}

/// `%q` of a header value.
fn go_quote_plain(s: &str) -> String {
    crate::labels::go_quote(s)
}

/// Decodes a push body (`POST /loki/api/v1/push`).
pub fn decode_push(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
    max_recv: usize,
    max_decompressed: usize,
) -> Result<Vec<RawStream>, PushError> {
    let inflated = decode_content_encoding(content_encoding, body, max_recv, max_decompressed)?;
    let data: &[u8] = inflated.as_deref().unwrap_or(body);
    if media_type(content_type) == "application/json" {
        decode_json(data)
    } else {
        decode_protobuf(data, max_decompressed)
    }
}

/// Decodes a snappy block-format `PushRequest`.
pub fn decode_protobuf(data: &[u8], max_decompressed: usize) -> Result<Vec<RawStream>, PushError> {
    // Check the declared length before allocating anything.
    let len = snap::raw::decompress_len(data).map_err(|e| PushError::bad_request(e.to_string()))?;
    if max_decompressed > 0 && len > max_decompressed {
        return Err(decompressed_too_large(len, max_decompressed));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(data)
        .map_err(|e| PushError::bad_request(e.to_string()))?;
    let req: PushRequest = prost::Message::decode(raw.as_slice())
        .map_err(|e| PushError::bad_request(format!("proto: failed to decode PushRequest: {e}")))?;
    Ok(raw_streams(req))
}

/// Moves the streams of a decoded `PushRequest` into [`RawStream`]s
/// (no copies of lines or labels).
pub fn raw_streams(req: PushRequest) -> Vec<RawStream> {
    req.streams
        .into_iter()
        .map(|s| RawStream {
            labels: s.labels,
            entries: s
                .entries
                .into_iter()
                .map(|e| PushEntry {
                    ts: e
                        .timestamp
                        .map(|t| timestamp_ns(t.seconds, t.nanos))
                        .unwrap_or(0),
                    line: e.line,
                    metadata: e
                        .structured_metadata
                        .into_iter()
                        .map(|p| (p.name, p.value))
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

/// Seconds + nanos as Unix nanoseconds, saturating (validation rejects
/// the extremes as too old or too new).
pub(crate) fn timestamp_ns(seconds: i64, nanos: i32) -> i64 {
    seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(nanos as i64)
}

/// Decodes Loki's JSON v1 push body.
pub fn decode_json(data: &[u8]) -> Result<Vec<RawStream>, PushError> {
    let mut de = serde_json::Deserializer::from_slice(data);
    let streams = de
        .deserialize_map(RequestVisitor)
        .and_then(|s| de.end().map(|_| s))
        .map_err(|e| PushError::bad_request(format!("loghttp push: {e}")))?;
    Ok(streams)
}

struct RequestVisitor;

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = Vec<RawStream>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a push request object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "streams" {
                out = map.next_value_seed(StreamsSeed)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

struct StreamsSeed;

impl<'de> DeserializeSeed<'de> for StreamsSeed {
    type Value = Vec<RawStream>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StreamsSeed {
    type Value = Vec<RawStream>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of streams")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(s) = seq.next_element_seed(StreamSeed)? {
            out.push(s);
        }
        Ok(out)
    }
}

struct StreamSeed;

impl<'de> DeserializeSeed<'de> for StreamSeed {
    type Value = RawStream;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for StreamSeed {
    type Value = RawStream;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a stream object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut s = RawStream::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "stream" => {
                    let pairs: Option<std::collections::BTreeMap<String, String>> =
                        map.next_value()?;
                    s.labels = selector_text(pairs.unwrap_or_default());
                }
                "values" => {
                    let v: Option<Vec<EntryJson>> = map.next_value()?;
                    s.entries = v.unwrap_or_default().into_iter().map(|e| e.0).collect();
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(s)
    }
}

/// Renders a label map as Prometheus' `LabelSet.String()` does: names
/// unquoted (so a name like `a.b` fails to parse later, as in Loki),
/// values Go-quoted, sorted.
fn selector_text(pairs: std::collections::BTreeMap<String, String>) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(k);
        out.push('=');
        out.push_str(&crate::labels::go_quote(v));
    }
    out.push('}');
    out
}

/// `["<ns>", "line"]` or `["<ns>", "line", {"k": "v"}]`.
struct EntryJson(PushEntry);

impl<'de> de::Deserialize<'de> for EntryJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = EntryJson;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an entry array [\"<unix ns>\", \"<line>\", {metadata}]")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let ts: std::borrow::Cow<'de, str> = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom("entry is missing its timestamp"))?;
        let ts: i64 = ts
            .parse()
            .map_err(|e| de::Error::custom(format!("invalid timestamp {ts:?}: {e}")))?;
        let line: String = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom("entry is missing its line"))?;
        let meta: Option<Option<std::collections::BTreeMap<String, serde_json::Value>>> =
            seq.next_element()?;
        let mut metadata = Vec::new();
        for (k, v) in meta.flatten().unwrap_or_default() {
            match v {
                serde_json::Value::Null => {}
                serde_json::Value::String(s) => metadata.push((k, s)),
                // The query-response form: {"structuredMetadata": {...}, "parsed": {...}}.
                serde_json::Value::Object(m) => {
                    if k == "structuredMetadata" {
                        for (k, v) in m {
                            match v {
                                serde_json::Value::String(s) => metadata.push((k, s)),
                                serde_json::Value::Null => {}
                                other => metadata.push((k, other.to_string())),
                            }
                        }
                    }
                }
                other => metadata.push((k, other.to_string())),
            }
        }
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("entry has more than 3 elements"));
        }
        Ok(EntryJson(PushEntry { ts, line, metadata }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::logproto::{EntryAdapter, LabelPairAdapter, StreamAdapter};
    use std::io::Write;

    pub(crate) fn snappy_proto(req: &PushRequest) -> Vec<u8> {
        let buf = prost::Message::encode_to_vec(req);
        snap::raw::Encoder::new().compress_vec(&buf).unwrap()
    }

    fn sample_request() -> PushRequest {
        PushRequest {
            streams: vec![StreamAdapter {
                labels: r#"{app="web", env="dev"}"#.into(),
                entries: vec![
                    EntryAdapter {
                        timestamp: Some(prost_types::Timestamp {
                            seconds: 1_700_000_000,
                            nanos: 5,
                        }),
                        line: "hello".into(),
                        structured_metadata: vec![LabelPairAdapter {
                            name: "trace.id".into(),
                            value: "abc".into(),
                        }],
                        parsed: vec![],
                    },
                    EntryAdapter {
                        timestamp: Some(prost_types::Timestamp {
                            seconds: 1_700_000_001,
                            nanos: 0,
                        }),
                        line: "world".into(),
                        structured_metadata: vec![],
                        parsed: vec![],
                    },
                ],
                hash: 0,
            }],
        }
    }

    fn expected() -> Vec<RawStream> {
        vec![RawStream {
            labels: r#"{app="web", env="dev"}"#.into(),
            entries: vec![
                PushEntry {
                    ts: 1_700_000_000_000_000_005,
                    line: "hello".into(),
                    metadata: vec![("trace.id".into(), "abc".into())],
                },
                PushEntry {
                    ts: 1_700_000_001_000_000_000,
                    line: "world".into(),
                    metadata: vec![],
                },
            ],
        }]
    }

    #[test]
    fn protobuf_snappy_round_trip_with_any_content_type() {
        let body = snappy_proto(&sample_request());
        for ct in [None, Some("application/x-protobuf"), Some("text/plain")] {
            let got = decode_push(ct, None, &body, 1 << 20, 1 << 20).unwrap();
            assert_eq!(got, expected());
        }
        // Content-Encoding: snappy is a no-op.
        assert_eq!(
            decode_push(None, Some("snappy"), &body, 1 << 20, 1 << 20).unwrap(),
            expected()
        );
    }

    #[test]
    fn json_round_trip_with_charset_and_metadata() {
        let body = br#"{"streams":[{"stream":{"env":"dev","app":"web"},
            "values":[["1700000000000000005","hello",{"trace.id":"abc","skip":null}],
                      ["1700000001000000000","world"]]}]}"#;
        let got = decode_push(
            Some("application/json; charset=utf-8"),
            None,
            body,
            1 << 20,
            1 << 20,
        )
        .unwrap();
        assert_eq!(got, expected());
    }

    #[test]
    fn json_numeric_timestamp_is_400_with_position() {
        let body = br#"{"streams":[{"stream":{"a":"b"},"values":[[1700000000,"x"]]}]}"#;
        let e = decode_push(Some("application/json"), None, body, 1 << 20, 1 << 20).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("line 1 column"), "{}", e.message);
    }

    #[test]
    fn malformed_json_reports_line_and_column() {
        let e = decode_json(b"{\"streams\":\n[{\"stream\":}]}").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("line 2 column 12"), "{}", e.message);
    }

    #[test]
    fn gzip_and_deflate_bodies() {
        let json = br#"{"streams":[{"stream":{"app":"web","env":"dev"},"values":[["1700000000000000005","hello",{"trace.id":"abc"}],["1700000001000000000","world"]]}]}"#;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(json).unwrap();
        let gz = gz.finish().unwrap();
        let got = decode_push(
            Some("application/json"),
            Some("gzip"),
            &gz,
            1 << 20,
            1 << 20,
        )
        .unwrap();
        assert_eq!(got, expected());

        let proto = snappy_proto(&sample_request());
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&proto).unwrap();
        let z = z.finish().unwrap();
        let got = decode_push(None, Some("deflate"), &z, 1 << 20, 1 << 20).unwrap();
        assert_eq!(got, expected());
    }

    #[test]
    fn unknown_encoding_is_400() {
        let e = decode_push(None, Some("br"), b"x", 100, 100).unwrap_err();
        assert_eq!(
            e,
            PushError::bad_request(r#"Content-Encoding "br" not supported"#)
        );
    }

    #[test]
    fn malformed_bodies_are_400() {
        let e = decode_push(None, None, b"\xff\xff\xff\xff\xff\xff", 100, 100).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.starts_with("snappy"), "{}", e.message);
        // Valid snappy around garbage protobuf.
        let body = snap::raw::Encoder::new()
            .compress_vec(b"\x0a\xff\xff")
            .unwrap();
        let e = decode_push(None, None, &body, 100, 100).unwrap_err();
        assert!(
            e.message.starts_with("proto: failed to decode PushRequest"),
            "{}",
            e.message
        );
        let e = decode_push(None, Some("gzip"), b"not gzip", 100, 100).unwrap_err();
        assert_eq!(e.status, 400);
    }

    #[test]
    fn body_over_limit_is_413() {
        let e = decode_push(None, None, &[0u8; 101], 100, 1000).unwrap_err();
        assert_eq!(
            e,
            PushError::new(
                413,
                "request body too large: message size too large than max (101 vs 100)"
            )
        );
    }

    #[test]
    fn snappy_bomb_rejected_from_declared_length() {
        // A snappy header declaring 1 GiB followed by nothing: rejected before
        // any allocation.
        let mut body = Vec::new();
        let mut n: u64 = 1 << 30;
        while n >= 0x80 {
            body.push((n as u8) | 0x80);
            n >>= 7;
        }
        body.push(n as u8);
        let e = decode_push(None, None, &body, 1 << 20, 100 << 20).unwrap_err();
        assert_eq!(e.status, 413);
        assert_eq!(
            e.message,
            format!(
                "request body too large: decompressed message size too large than max ({} vs {})",
                1u64 << 30,
                100u64 << 20
            )
        );
    }

    #[test]
    fn gzip_bomb_rejected_at_limit() {
        // 1024 gzip members of 1 MiB of zeros each: ~1 MB inflating to 1 GiB.
        let mut member = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        member.write_all(&vec![0u8; 1 << 20]).unwrap();
        let member = member.finish().unwrap();
        let body: Vec<u8> = member
            .iter()
            .copied()
            .cycle()
            .take(member.len() * 1024)
            .collect();
        let limit = 8 << 20;
        let start = std::time::Instant::now();
        let e = decode_push(None, Some("gzip"), &body, 100 << 20, limit).unwrap_err();
        assert_eq!(e.status, 413);
        assert_eq!(
            e.message,
            format!("request body too large: decompressed message size too large than max ({} vs {limit})", limit + 1)
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn json_metadata_forms() {
        let body = br#"{"streams":[{"stream":{"a":"1"},"values":[
            ["1","l1",{"structuredMetadata":{"x":"1","n":null},"parsed":{"p":"2"}}],
            ["2","l2",{"num":5,"s":"v"}],
            ["3","l3",null]]}]}"#;
        let got = decode_json(body).unwrap();
        let md: Vec<Vec<(String, String)>> =
            got[0].entries.iter().map(|e| e.metadata.clone()).collect();
        assert_eq!(
            md,
            vec![
                vec![("x".to_string(), "1".to_string())],
                vec![
                    ("num".to_string(), "5".to_string()),
                    ("s".to_string(), "v".to_string())
                ],
                vec![],
            ]
        );
        assert!(decode_json(br#"{"streams":[{"stream":{"a":"1"},"values":[["1"]]}]}"#).is_err());
        assert!(
            decode_json(br#"{"streams":[{"stream":{"a":"1"},"values":[["x","l"]]}]}"#).is_err()
        );
    }

    #[test]
    fn random_bodies_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let valid = snappy_proto(&sample_request());
        for i in 0..3000 {
            let mut body = if i % 2 == 0 {
                valid.clone()
            } else {
                br#"{"streams":[{"stream":{"a":"1"},"values":[["1","x"]]}]}"#.to_vec()
            };
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..body.len());
                body[at] = rng.random();
            }
            let ct = if i % 2 == 0 {
                None
            } else {
                Some("application/json")
            };
            let _ = decode_push(ct, None, &body, 1 << 20, 1 << 20);
            let _ = crate::ingest::decode_otlp_http(
                Some("application/x-protobuf"),
                None,
                &body,
                1 << 20,
            );
            let _ = crate::ingest::decode_otlp_http(Some("application/json"), None, &body, 1 << 20);
        }
    }

    #[test]
    fn media_type_is_lenient() {
        assert_eq!(
            media_type(Some("Application/JSON ; charset=UTF-8")),
            "application/json"
        );
        assert_eq!(media_type(None), "");
    }
}
