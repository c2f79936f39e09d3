//! OTLP logs: decoding of OTLP/HTTP bodies (protobuf and OTLP/JSON) and the
//! mapping of resources, scopes and log records onto Loki streams
//! (`pkg/loghttp/push/otlp.go`, `otlplabels/{config,labels}.go`).
//!
//! Resource attributes selected by [`OtlpConfig`] (by default Loki's list of
//! well-known ones) become index labels with normalised names; everything
//! else becomes structured metadata on each entry. The result is a list of
//! [`RawStream`]s that go through the same validation as a Loki push.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use base64::Engine;
use serde_json::Value as Json;

use super::discovery::{SERVICE_NAME, UNKNOWN_SERVICE};
use super::push::{decode_content_encoding, media_type, RawStream};
use super::validate::normalize_label_name;
use super::PushError;
use crate::labels::Labels;
use crate::proto::otlp::collector::ExportLogsServiceRequest;
use crate::proto::otlp::common::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use crate::proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use crate::proto::otlp::resource::Resource;
use crate::storage::PushEntry;

/// What to do with an attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    IndexLabel,
    StructuredMetadata,
    Drop,
}

/// A regex matched against the whole attribute name (anchored, as
/// Prometheus' relabel regexes are).
#[derive(Clone, Debug)]
pub struct AttrRegex(regex::Regex);

impl AttrRegex {
    pub fn new(re: &str) -> Result<Self, regex::Error> {
        Ok(AttrRegex(regex::Regex::new(&format!("^(?:{re})$"))?))
    }
}

impl<'de> serde::Deserialize<'de> for AttrRegex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AttrRegex::new(&s).map_err(serde::de::Error::custom)
    }
}

/// One rule: an action for attributes named in a list or matching a regex.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributesConfig {
    #[serde(default = "default_action")]
    pub action: Action,
    #[serde(default)]
    pub attributes: Vec<String>,
    #[serde(default)]
    pub regex: Option<AttrRegex>,
}

fn default_action() -> Action {
    Action::StructuredMetadata
}

impl AttributesConfig {
    fn matches(&self, name: &str) -> bool {
        self.regex.as_ref().is_some_and(|r| r.0.is_match(name))
            || self.attributes.iter().any(|a| a == name)
    }
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceAttributesConfig {
    /// Do not prepend the default index-label rule.
    pub ignore_defaults: bool,
    pub attributes_config: Vec<AttributesConfig>,
}

/// Loki's `limits_config.otlp_config` plus the global
/// `default_resource_attributes_as_index_labels`.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpConfig {
    pub resource_attributes: ResourceAttributesConfig,
    /// `index_label` is ignored here, as in Loki.
    pub scope_attributes: Vec<AttributesConfig>,
    pub log_attributes: Vec<AttributesConfig>,
    pub severity_text_as_label: bool,
    pub default_resource_attributes_as_index_labels: Vec<String>,
}

/// Loki's default resource attributes stored as index labels.
pub const DEFAULT_INDEX_RESOURCE_ATTRIBUTES: [&str; 18] = [
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
];

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            resource_attributes: ResourceAttributesConfig::default(),
            scope_attributes: Vec::new(),
            log_attributes: Vec::new(),
            severity_text_as_label: false,
            default_resource_attributes_as_index_labels: DEFAULT_INDEX_RESOURCE_ATTRIBUTES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

fn first_match(rules: &[AttributesConfig], name: &str) -> Option<Action> {
    rules.iter().find(|r| r.matches(name)).map(|r| r.action)
}

impl OtlpConfig {
    /// Loki's check: `index_label` is not allowed for scope attributes.
    pub fn validate(&self) -> Result<(), String> {
        if self
            .scope_attributes
            .iter()
            .any(|r| r.action == Action::IndexLabel)
        {
            return Err("index_label action is only supported for resource_attributes".into());
        }
        for r in self
            .resource_attributes
            .attributes_config
            .iter()
            .chain(&self.scope_attributes)
            .chain(&self.log_attributes)
        {
            match (r.attributes.is_empty(), r.regex.is_none()) {
                (true, true) => return Err("attributes or regex must be set".into()),
                (false, false) => return Err("only one of attributes or regex must be set".into()),
                _ => {}
            }
        }
        Ok(())
    }

    /// First matching rule wins; the default index-label list comes first
    /// unless `ignore_defaults`; unmatched attributes are structured metadata.
    pub fn action_for_resource(&self, name: &str) -> Action {
        if !self.resource_attributes.ignore_defaults
            && self
                .default_resource_attributes_as_index_labels
                .iter()
                .any(|a| a == name)
        {
            return Action::IndexLabel;
        }
        first_match(&self.resource_attributes.attributes_config, name)
            .unwrap_or(Action::StructuredMetadata)
    }
    pub fn action_for_scope(&self, name: &str) -> Action {
        first_match(&self.scope_attributes, name).unwrap_or(Action::StructuredMetadata)
    }
    pub fn action_for_log(&self, name: &str) -> Action {
        first_match(&self.log_attributes, name).unwrap_or(Action::StructuredMetadata)
    }
}

// ---------------------------------------------------------------------------
// HTTP decoding

/// Decodes an OTLP/HTTP body: `application/x-protobuf` (or
/// `application/protobuf`) or `application/json`, parameters ignored;
/// Content-Encoding gzip, deflate, zstd or none.
pub fn decode_otlp_http(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
    max_decompressed: usize,
) -> Result<ExportLogsServiceRequest, PushError> {
    let enc = content_encoding.unwrap_or("").trim().to_ascii_lowercase();
    let inflated = match enc.as_str() {
        "zstd" => {
            let dec = zstd::stream::read::Decoder::new(body)
                .map_err(|e| PushError::bad_request(format!("zstd: {e}")))?;
            let mut out = Vec::new();
            let max_decompressed = if max_decompressed == 0 {
                usize::MAX
            } else {
                max_decompressed
            };
            dec.take((max_decompressed as u64).saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|e| PushError::bad_request(format!("zstd: {e}")))?;
            if out.len() > max_decompressed {
                return Err(PushError::too_large(format!(
                    "decompressed message size too large than max ({} vs {max_decompressed})",
                    out.len()
                )));
            }
            Some(out)
        }
        "gzip" | "x-gzip" | "deflate" | "" | "identity" => {
            decode_content_encoding(Some(&enc), body, 0, max_decompressed)?
        }
        _ => {
            return Err(PushError::bad_request(format!(
                "unsupported content encoding {enc}: only gzip, deflate and zstd are supported"
            )))
        }
    };
    let data: &[u8] = inflated.as_deref().unwrap_or(body);
    if inflated.is_none() && max_decompressed > 0 && data.len() > max_decompressed {
        return Err(PushError::too_large(format!(
            "message size too large than max ({} vs {max_decompressed})",
            data.len()
        )));
    }
    match media_type(content_type).as_str() {
        "application/x-protobuf" | "application/protobuf" => prost::Message::decode(data)
            .map_err(|e| PushError::bad_request(format!("failed to decode OTLP protobuf: {e}"))),
        "application/json" => decode_otlp_json(data),
        _ => Err(PushError::bad_request(format!(
            "content type: {} is not supported",
            content_type.unwrap_or("")
        ))),
    }
}

/// Decodes OTLP/JSON (camelCase or snake_case field names, 64-bit integers
/// as strings or numbers, hex trace/span ids, enum names or numbers).
pub fn decode_otlp_json(data: &[u8]) -> Result<ExportLogsServiceRequest, PushError> {
    let v: Json = serde_json::from_slice(data)
        .map_err(|e| PushError::bad_request(format!("failed to decode OTLP JSON: {e}")))?;
    json_request(&v).map_err(|e| PushError::bad_request(format!("failed to decode OTLP JSON: {e}")))
}

type JResult<T> = Result<T, String>;

fn field<'a>(o: &'a Json, camel: &str, snake: &str) -> Option<&'a Json> {
    let m = o.as_object()?;
    m.get(camel)
        .or_else(|| m.get(snake))
        .filter(|v| !v.is_null())
}

fn arr<'a>(o: &'a Json, camel: &str, snake: &str) -> JResult<&'a [Json]> {
    match field(o, camel, snake) {
        None => Ok(&[]),
        Some(Json::Array(a)) => Ok(a),
        Some(_) => Err(format!("{camel}: expected an array")),
    }
}

fn string(o: &Json, camel: &str, snake: &str) -> JResult<String> {
    match field(o, camel, snake) {
        None => Ok(String::new()),
        Some(Json::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("{camel}: expected a string")),
    }
}

/// An integer given as a JSON number or a decimal string.
fn int_of(v: &Json, name: &str) -> JResult<i128> {
    match v {
        Json::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .ok_or_else(|| format!("{name}: not an integer: {n}")),
        Json::String(s) => s
            .trim()
            .parse::<i128>()
            .map_err(|_| format!("{name}: not an integer: {s:?}")),
        _ => Err(format!("{name}: expected an integer")),
    }
}

fn u64_field(o: &Json, camel: &str, snake: &str) -> JResult<u64> {
    match field(o, camel, snake) {
        None => Ok(0),
        Some(v) => u64::try_from(int_of(v, camel)?).map_err(|_| format!("{camel}: out of range")),
    }
}

fn u32_field(o: &Json, camel: &str, snake: &str) -> JResult<u32> {
    match field(o, camel, snake) {
        None => Ok(0),
        Some(v) => u32::try_from(int_of(v, camel)?).map_err(|_| format!("{camel}: out of range")),
    }
}

fn hex_field(o: &Json, camel: &str, snake: &str) -> JResult<Vec<u8>> {
    let s = string(o, camel, snake)?;
    hex::decode(&s).map_err(|e| format!("{camel}: invalid hex {s:?}: {e}"))
}

fn severity_number(o: &Json) -> JResult<i32> {
    let Some(v) = field(o, "severityNumber", "severity_number") else {
        return Ok(0);
    };
    if let Json::String(s) = v {
        if let Some(n) = severity_from_name(s) {
            return Ok(n);
        }
    }
    i32::try_from(int_of(v, "severityNumber")?)
        .map_err(|_| "severityNumber: out of range".to_string())
}

/// `SEVERITY_NUMBER_WARN3` → 15.
fn severity_from_name(s: &str) -> Option<i32> {
    let rest = s.strip_prefix("SEVERITY_NUMBER_")?;
    if rest == "UNSPECIFIED" {
        return Some(0);
    }
    let (base, n) = match rest.as_bytes().last() {
        Some(d @ b'2'..=b'4') => (&rest[..rest.len() - 1], (d - b'0') as i32),
        _ => (rest, 1),
    };
    let start = match base {
        "TRACE" => 1,
        "DEBUG" => 5,
        "INFO" => 9,
        "WARN" => 13,
        "ERROR" => 17,
        "FATAL" => 21,
        _ => return None,
    };
    Some(start + n - 1)
}

fn json_request(v: &Json) -> JResult<ExportLogsServiceRequest> {
    let mut req = ExportLogsServiceRequest::default();
    for rl in arr(v, "resourceLogs", "resource_logs")? {
        let resource = match field(rl, "resource", "resource") {
            None => None,
            Some(r) => Some(Resource {
                attributes: json_kvs(arr(r, "attributes", "attributes")?)?,
                dropped_attributes_count: u32_field(
                    r,
                    "droppedAttributesCount",
                    "dropped_attributes_count",
                )?,
                ..Default::default()
            }),
        };
        let mut scope_logs = Vec::new();
        for sl in arr(rl, "scopeLogs", "scope_logs")? {
            let scope = match field(sl, "scope", "scope") {
                None => None,
                Some(s) => Some(InstrumentationScope {
                    name: string(s, "name", "name")?,
                    version: string(s, "version", "version")?,
                    attributes: json_kvs(arr(s, "attributes", "attributes")?)?,
                    dropped_attributes_count: u32_field(
                        s,
                        "droppedAttributesCount",
                        "dropped_attributes_count",
                    )?,
                }),
            };
            let mut log_records = Vec::new();
            for lr in arr(sl, "logRecords", "log_records")? {
                log_records.push(LogRecord {
                    time_unix_nano: u64_field(lr, "timeUnixNano", "time_unix_nano")?,
                    observed_time_unix_nano: u64_field(
                        lr,
                        "observedTimeUnixNano",
                        "observed_time_unix_nano",
                    )?,
                    severity_number: severity_number(lr)?,
                    severity_text: string(lr, "severityText", "severity_text")?,
                    body: field(lr, "body", "body").map(json_any).transpose()?,
                    attributes: json_kvs(arr(lr, "attributes", "attributes")?)?,
                    dropped_attributes_count: u32_field(
                        lr,
                        "droppedAttributesCount",
                        "dropped_attributes_count",
                    )?,
                    flags: u32_field(lr, "flags", "flags")?,
                    trace_id: hex_field(lr, "traceId", "trace_id")?,
                    span_id: hex_field(lr, "spanId", "span_id")?,
                    event_name: string(lr, "eventName", "event_name")?,
                });
            }
            scope_logs.push(ScopeLogs {
                scope,
                log_records,
                schema_url: string(sl, "schemaUrl", "schema_url")?,
            });
        }
        req.resource_logs.push(ResourceLogs {
            resource,
            scope_logs,
            schema_url: string(rl, "schemaUrl", "schema_url")?,
        });
    }
    Ok(req)
}

fn json_kvs(items: &[Json]) -> JResult<Vec<KeyValue>> {
    items
        .iter()
        .map(|kv| {
            Ok(KeyValue {
                key: string(kv, "key", "key")?,
                value: field(kv, "value", "value").map(json_any).transpose()?,
                ..Default::default()
            })
        })
        .collect()
}

fn json_any(v: &Json) -> JResult<AnyValue> {
    use any_value::Value as V;
    let Some(o) = v.as_object() else {
        return Err("AnyValue: expected an object".into());
    };
    let value = if let Some(s) = field(v, "stringValue", "string_value") {
        Some(V::StringValue(
            s.as_str()
                .ok_or("stringValue: expected a string")?
                .to_string(),
        ))
    } else if let Some(i) = field(v, "intValue", "int_value") {
        Some(V::IntValue(
            i64::try_from(int_of(i, "intValue")?).map_err(|_| "intValue: out of range")?,
        ))
    } else if let Some(d) = field(v, "doubleValue", "double_value") {
        let f = match d {
            Json::Number(n) => n.as_f64().ok_or("doubleValue: not a number")?,
            Json::String(s) => match s.as_str() {
                "NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                s => s
                    .parse()
                    .map_err(|_| format!("doubleValue: not a number: {s:?}"))?,
            },
            _ => return Err("doubleValue: expected a number".into()),
        };
        Some(V::DoubleValue(f))
    } else if let Some(b) = field(v, "boolValue", "bool_value") {
        Some(V::BoolValue(
            b.as_bool().ok_or("boolValue: expected a boolean")?,
        ))
    } else if let Some(a) = field(v, "arrayValue", "array_value") {
        let values = arr(a, "values", "values")?
            .iter()
            .map(json_any)
            .collect::<JResult<Vec<_>>>()?;
        Some(V::ArrayValue(ArrayValue { values }))
    } else if let Some(k) = field(v, "kvlistValue", "kvlist_value") {
        Some(V::KvlistValue(KeyValueList {
            values: json_kvs(arr(k, "values", "values")?)?,
        }))
    } else if let Some(b) = field(v, "bytesValue", "bytes_value") {
        let s = b.as_str().ok_or("bytesValue: expected a base64 string")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
            .map_err(|e| format!("bytesValue: invalid base64: {e}"))?;
        Some(V::BytesValue(bytes))
    } else {
        let _ = o;
        None
    };
    Ok(AnyValue { value })
}

// ---------------------------------------------------------------------------
// Value rendering (pdata's `Value.AsString`)

/// Renders a value as pdata's `AsString`: strings verbatim, numbers and
/// booleans as text, bytes as base64, maps and arrays as JSON.
pub fn any_as_string(v: Option<&AnyValue>) -> String {
    use any_value::Value as V;
    match v.and_then(|v| v.value.as_ref()) {
        None | Some(V::StringValueStrindex(_)) => String::new(),
        Some(V::StringValue(s)) => s.clone(),
        Some(V::IntValue(i)) => i.to_string(),
        Some(V::DoubleValue(f)) => format_double(*f),
        Some(V::BoolValue(b)) => b.to_string(),
        Some(V::BytesValue(b)) => base64::engine::general_purpose::STANDARD.encode(b),
        Some(V::ArrayValue(_)) | Some(V::KvlistValue(_)) => {
            let mut out = String::new();
            write_json(&mut out, v);
            out
        }
    }
}

/// ES6 number formatting, as Go's JSON encoder and pdata use.
fn format_double(f: f64) -> String {
    if f.is_nan() {
        return "json: unsupported value: NaN".into();
    }
    if f.is_infinite() {
        return format!(
            "json: unsupported value: {}",
            if f > 0.0 { "+Inf" } else { "-Inf" }
        );
    }
    let a = f.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        }
    } else {
        format!("{f}")
    }
}

fn write_json_str(out: &mut String, s: &str) {
    let q = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    // Go's encoder escapes HTML characters and line/paragraph separators.
    for c in q.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
}

fn write_json(out: &mut String, v: Option<&AnyValue>) {
    use any_value::Value as V;
    match v.and_then(|v| v.value.as_ref()) {
        None | Some(V::StringValueStrindex(_)) => out.push_str("null"),
        Some(V::StringValue(s)) => write_json_str(out, s),
        Some(V::IntValue(i)) => out.push_str(&i.to_string()),
        Some(V::DoubleValue(f)) if f.is_finite() => out.push_str(&format_double(*f)),
        Some(V::DoubleValue(_)) => out.push_str("null"),
        Some(V::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(V::BytesValue(b)) => {
            write_json_str(out, &base64::engine::general_purpose::STANDARD.encode(b))
        }
        Some(V::ArrayValue(a)) => {
            out.push('[');
            for (i, x) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, Some(x));
            }
            out.push(']');
        }
        Some(V::KvlistValue(kv)) => {
            // Go marshals maps with sorted keys; a repeated key keeps its last value.
            let mut m: BTreeMap<&str, Option<&AnyValue>> = BTreeMap::new();
            for x in &kv.values {
                m.insert(&x.key, x.value.as_ref());
            }
            out.push('{');
            for (i, (k, x)) in m.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_str(out, k);
                out.push(':');
                write_json(out, x);
            }
            out.push('}');
        }
    }
}

/// Loki's `AttributeToLabels`: a normalised name (prefixed by the parent's
/// for flattened maps) and `AsString` value; maps recurse. Names that do not
/// normalise are skipped.
fn attribute_to_labels(
    key: &str,
    v: Option<&AnyValue>,
    prefix: &str,
    out: &mut Vec<(String, String)>,
) {
    let joined;
    let full = if prefix.is_empty() {
        key
    } else {
        joined = format!("{prefix}_{key}");
        &joined
    };
    let Ok(name) = normalize_label_name(full) else {
        return;
    };
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::KvlistValue(kv)) => {
            for x in &kv.values {
                attribute_to_labels(&x.key, x.value.as_ref(), &name, out);
            }
        }
        _ => out.push((name, any_as_string(v))),
    }
}

// ---------------------------------------------------------------------------
// Mapping

/// OTLP records mapped onto streams, plus records that could not be.
#[derive(Debug, Default)]
pub struct MappedOtlp {
    pub streams: Vec<RawStream>,
    /// Messages for records rejected by the mapping itself.
    pub errors: Vec<String>,
    pub rejected: usize,
}

/// Label text (`{a="1", b="2"}`) of a name → value map.
fn labels_text(m: &BTreeMap<String, String>) -> String {
    Labels::from_pairs(m.iter().map(|(k, v)| (k.as_str(), v.as_str()))).to_string()
}

/// Maps an export request onto streams (Loki's `otlpToLokiPushRequest`).
pub fn map_request(
    req: ExportLogsServiceRequest,
    cfg: &OtlpConfig,
    discover_service_name: &[String],
    now_ns: i64,
) -> MappedOtlp {
    let mut out = MappedOtlp::default();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut stream_for = |out: &mut MappedOtlp, labels: &str| -> usize {
        if let Some(i) = index.get(labels) {
            return *i;
        }
        out.streams.push(RawStream {
            labels: labels.to_string(),
            entries: Vec::new(),
        });
        index.insert(labels.to_string(), out.streams.len() - 1);
        out.streams.len() - 1
    };

    for rl in req.resource_logs {
        let attrs = rl.resource.map(|r| r.attributes).unwrap_or_default();
        let mut stream_labels: BTreeMap<String, String> = BTreeMap::new();
        let mut resource_md: Vec<(String, String)> = Vec::new();
        let has_service_name = attrs
            .iter()
            .any(|kv| kv.key == "service.name" && !any_as_string(kv.value.as_ref()).is_empty());
        // As Loki: the first index label, in attribute order, named in the
        // discovery list (not the first name of the list that is present).
        let mut found: Option<String> = None;
        for kv in &attrs {
            let action = cfg.action_for_resource(&kv.key);
            if action == Action::Drop {
                continue;
            }
            let mut pairs = Vec::new();
            attribute_to_labels(&kv.key, kv.value.as_ref(), "", &mut pairs);
            match action {
                Action::IndexLabel => {
                    if found.is_none() && !has_service_name {
                        found = pairs
                            .iter()
                            .find(|(k, v)| !v.is_empty() && discover_service_name.contains(k))
                            .map(|(_, v)| v.clone());
                    }
                    stream_labels.extend(pairs)
                }
                _ => resource_md.extend(pairs),
            }
        }
        if !has_service_name && !discover_service_name.is_empty() {
            stream_labels.insert(
                SERVICE_NAME.to_string(),
                found.unwrap_or_else(|| UNKNOWN_SERVICE.to_string()),
            );
        }
        let resource_text = labels_text(&stream_labels);

        for sl in rl.scope_logs {
            let scope_md = scope_metadata(sl.scope.as_ref(), cfg);
            for lr in sl.log_records {
                let (log_labels, mut md) = log_record_metadata(&lr, cfg);
                md.extend(resource_md.iter().cloned());
                md.extend(scope_md.iter().cloned());
                let ts = if lr.time_unix_nano != 0 {
                    lr.time_unix_nano.min(i64::MAX as u64) as i64
                } else if lr.observed_time_unix_nano != 0 {
                    lr.observed_time_unix_nano.min(i64::MAX as u64) as i64
                } else {
                    now_ns
                };
                let line = match lr.body {
                    Some(AnyValue {
                        value: Some(any_value::Value::StringValue(s)),
                    }) => s,
                    other => any_as_string(other.as_ref()),
                };
                let i = if log_labels.is_empty() {
                    stream_for(&mut out, &resource_text)
                } else {
                    let mut combined = stream_labels.clone();
                    combined.extend(log_labels);
                    stream_for(&mut out, &labels_text(&combined))
                };
                out.streams[i].entries.push(PushEntry {
                    ts,
                    line,
                    metadata: md,
                });
            }
        }
    }
    out.streams.retain(|s| !s.entries.is_empty());
    out
}

fn scope_metadata(scope: Option<&InstrumentationScope>, cfg: &OtlpConfig) -> Vec<(String, String)> {
    let mut md = Vec::new();
    let Some(scope) = scope else {
        return md;
    };
    for kv in &scope.attributes {
        if cfg.action_for_scope(&kv.key) == Action::StructuredMetadata {
            attribute_to_labels(&kv.key, kv.value.as_ref(), "", &mut md);
        }
    }
    if !scope.name.is_empty() {
        md.push(("scope_name".into(), scope.name.clone()));
    }
    if !scope.version.is_empty() {
        md.push(("scope_version".into(), scope.version.clone()));
    }
    if scope.dropped_attributes_count != 0 {
        md.push((
            "scope_dropped_attributes_count".into(),
            scope.dropped_attributes_count.to_string(),
        ));
    }
    md
}

/// Index labels and structured metadata of one record (Loki's
/// `LogAttrsToLabels`).
fn log_record_metadata(
    lr: &LogRecord,
    cfg: &OtlpConfig,
) -> (BTreeMap<String, String>, Vec<(String, String)>) {
    let mut labels = BTreeMap::new();
    let mut md = Vec::with_capacity(lr.attributes.len() + 8);
    for kv in &lr.attributes {
        let action = cfg.action_for_log(&kv.key);
        if action == Action::Drop || (kv.key == "event_name" && !lr.event_name.is_empty()) {
            continue;
        }
        let mut pairs = Vec::new();
        attribute_to_labels(&kv.key, kv.value.as_ref(), "", &mut pairs);
        match action {
            Action::IndexLabel => labels.extend(pairs),
            _ => md.extend(pairs),
        }
    }
    if lr.time_unix_nano != 0 && lr.observed_time_unix_nano != 0 {
        md.push((
            "observed_timestamp".into(),
            lr.observed_time_unix_nano.to_string(),
        ));
    }
    if lr.severity_number != 0 {
        md.push(("severity_number".into(), lr.severity_number.to_string()));
    }
    if !lr.severity_text.is_empty() {
        if cfg.severity_text_as_label {
            labels.insert("severity_text".into(), lr.severity_text.clone());
        }
        md.push(("severity_text".into(), lr.severity_text.clone()));
    }
    if lr.dropped_attributes_count != 0 {
        md.push((
            "dropped_attributes_count".into(),
            lr.dropped_attributes_count.to_string(),
        ));
    }
    if lr.flags != 0 {
        md.push(("flags".into(), lr.flags.to_string()));
    }
    if lr.trace_id.iter().any(|b| *b != 0) {
        md.push(("trace_id".into(), hex::encode(&lr.trace_id)));
    }
    if lr.span_id.iter().any(|b| *b != 0) {
        md.push(("span_id".into(), hex::encode(&lr.span_id)));
    }
    if !lr.event_name.is_empty() {
        md.push(("event_name".into(), lr.event_name.clone()));
    }
    (labels, md)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }
    fn s(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    const JSON: &str = r#"{"resourceLogs":[{
        "resource":{"attributes":[
            {"key":"service.name","value":{"stringValue":"checkout"}},
            {"key":"k8s.pod.name","value":{"stringValue":"pod-1"}},
            {"key":"host.name","value":{"stringValue":"h1"}}]},
        "scopeLogs":[{
            "scope":{"name":"lib","version":"1.2","attributes":[{"key":"s.attr","value":{"boolValue":true}}]},
            "logRecords":[{
                "timeUnixNano":"1700000000000000001",
                "observedTimeUnixNano":1700000000000000002,
                "severityNumber":"SEVERITY_NUMBER_WARN2",
                "severityText":"Warning",
                "traceId":"5B8EFFF798038103D269B633813FC60C",
                "spanId":"EEE19B7EC3C1B174",
                "flags":1,
                "body":{"kvlistValue":{"values":[{"key":"msg","value":{"stringValue":"a<b"}},{"key":"n","value":{"intValue":"7"}}]}},
                "attributes":[
                    {"key":"http.request","value":{"kvlistValue":{"values":[{"key":"method","value":{"stringValue":"GET"}}]}}},
                    {"key":"big","value":{"intValue":"9007199254740993"}},
                    {"key":"ratio","value":{"doubleValue":0.5}},
                    {"key":"tags","value":{"arrayValue":{"values":[{"stringValue":"x"},{"intValue":2}]}}},
                    {"key":"raw","value":{"bytesValue":"aGk="}}]
            }]}]}]}"#;

    #[test]
    fn json_decode_and_mapping() {
        let req = decode_otlp_http(
            Some("application/json; charset=utf-8"),
            None,
            JSON.as_bytes(),
            1 << 20,
        )
        .unwrap();
        let lr = &req.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(lr.time_unix_nano, 1_700_000_000_000_000_001);
        assert_eq!(lr.observed_time_unix_nano, 1_700_000_000_000_000_002);
        assert_eq!(lr.severity_number, 14);
        assert_eq!(lr.trace_id.len(), 16);
        assert_eq!(
            lr.span_id,
            vec![0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]
        );

        let m = map_request(req, &OtlpConfig::default(), &[], 0);
        assert_eq!(m.streams.len(), 1);
        assert_eq!(
            m.streams[0].labels,
            r#"{k8s_pod_name="pod-1", service_name="checkout"}"#
        );
        let e = &m.streams[0].entries[0];
        assert_eq!(e.ts, 1_700_000_000_000_000_001);
        assert_eq!(e.line, r#"{"msg":"a\u003cb","n":7}"#);
        let md: Vec<(&str, &str)> = e
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            md,
            vec![
                ("http_request_method", "GET"),
                ("big", "9007199254740993"),
                ("ratio", "0.5"),
                ("tags", r#"["x",2]"#),
                ("raw", "aGk="),
                ("observed_timestamp", "1700000000000000002"),
                ("severity_number", "14"),
                ("severity_text", "Warning"),
                ("flags", "1"),
                ("trace_id", "5b8efff798038103d269b633813fc60c"),
                ("span_id", "eee19b7ec3c1b174"),
                ("host_name", "h1"),
                ("s_attr", "true"),
                ("scope_name", "lib"),
                ("scope_version", "1.2"),
            ]
        );
    }

    #[test]
    fn snake_case_and_numbers_accepted() {
        let body = r#"{"resource_logs":[{"scope_logs":[{"log_records":[{"time_unix_nano":5,"severity_number":9,"body":{"string_value":"x"},"trace_id":""}]}]}]}"#;
        let req = decode_otlp_json(body.as_bytes()).unwrap();
        let lr = &req.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!((lr.time_unix_nano, lr.severity_number), (5, 9));
        assert_eq!(any_as_string(lr.body.as_ref()), "x");
        assert!(decode_otlp_json(
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"zz"}]}]}]}"#
        )
        .is_err());
    }

    #[test]
    fn protobuf_decode_gzip_and_bad_type() {
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", s("svc"))],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: None,
                    log_records: vec![LogRecord {
                        body: Some(AnyValue {
                            value: Some(s("hello")),
                        }),
                        time_unix_nano: 10,
                        ..Default::default()
                    }],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let pb = prost::Message::encode_to_vec(&req);
        assert_eq!(
            decode_otlp_http(Some("application/x-protobuf"), None, &pb, 1 << 20).unwrap(),
            req
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &pb).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(
            decode_otlp_http(Some("application/x-protobuf"), Some("gzip"), &gz, 1 << 20).unwrap(),
            req
        );
        let z = zstd::encode_all(pb.as_slice(), 1).unwrap();
        assert_eq!(
            decode_otlp_http(Some("application/protobuf"), Some("zstd"), &z, 1 << 20).unwrap(),
            req
        );
        let e = decode_otlp_http(Some("text/plain"), None, &pb, 1 << 20).unwrap_err();
        assert_eq!(
            e,
            PushError::bad_request("content type: text/plain is not supported")
        );
        let e = decode_otlp_http(Some("application/x-protobuf"), Some("gzip"), &gz, 4).unwrap_err();
        assert_eq!(e.status, 413);
    }

    fn one_record(resource: Vec<KeyValue>, lr: LogRecord) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: None,
                    log_records: vec![lr],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    #[test]
    fn service_name_discovery_and_defaults() {
        let list: Vec<String> = super::super::DEFAULT_SERVICE_NAME_LABELS
            .iter()
            .map(|s| s.to_string())
            .collect();
        let lr = LogRecord {
            body: Some(AnyValue {
                value: Some(s("x")),
            }),
            ..Default::default()
        };
        // No service.name: from the first discover label among index labels
        // (k8s.container.name → k8s_container_name).
        let m = map_request(
            one_record(vec![kv("k8s.container.name", s("c1"))], lr.clone()),
            &OtlpConfig::default(),
            &list,
            42,
        );
        assert_eq!(
            m.streams[0].labels,
            r#"{k8s_container_name="c1", service_name="c1"}"#
        );
        assert_eq!(m.streams[0].entries[0].ts, 42);
        // Regression (discovery followed the list's order, Loki follows the
        // attributes'): k8s.job.name comes first among the attributes, so it
        // wins although k8s_container_name is earlier in the list.
        let m = map_request(
            one_record(
                vec![
                    kv("k8s.job.name", s("j1")),
                    kv("k8s.container.name", s("c1")),
                ],
                lr.clone(),
            ),
            &OtlpConfig::default(),
            &list,
            0,
        );
        assert_eq!(
            m.streams[0].labels,
            r#"{k8s_container_name="c1", k8s_job_name="j1", service_name="j1"}"#
        );
        let m = map_request(
            one_record(vec![kv("host.name", s("h"))], lr.clone()),
            &OtlpConfig::default(),
            &list,
            0,
        );
        assert_eq!(m.streams[0].labels, r#"{service_name="unknown_service"}"#);
        // Timestamp falls back to the observed time.
        let lr2 = LogRecord {
            observed_time_unix_nano: 77,
            ..lr
        };
        let m = map_request(one_record(vec![], lr2), &OtlpConfig::default(), &[], 0);
        assert_eq!(m.streams[0].labels, "{}");
        assert_eq!(m.streams[0].entries[0].ts, 77);
        assert!(m.streams[0].entries[0].metadata.is_empty());
    }

    #[test]
    fn config_rules_first_match_wins() {
        let cfg: OtlpConfig = serde_json::from_str(
            r#"{"resource_attributes":{"attributes_config":[
                   {"action":"index_label","attributes":["host.name"]},
                   {"action":"drop","regex":"k8s\\..*"}]},
                "log_attributes":[{"action":"index_label","attributes":["tenant"]},{"action":"drop","regex":"secret.*"}],
                "scope_attributes":[{"action":"drop","attributes":["noisy"]}],
                "severity_text_as_label":true}"#,
        )
        .unwrap();
        // Defaults come first: k8s.pod.name is still an index label; k8s.other is dropped.
        assert_eq!(cfg.action_for_resource("k8s.pod.name"), Action::IndexLabel);
        assert_eq!(cfg.action_for_resource("k8s.other"), Action::Drop);
        assert_eq!(cfg.action_for_resource("host.name"), Action::IndexLabel);
        assert_eq!(cfg.action_for_resource("other"), Action::StructuredMetadata);
        // The regex is anchored.
        assert_eq!(
            cfg.action_for_resource("x.k8s.y"),
            Action::StructuredMetadata
        );
        let ignore: OtlpConfig =
            serde_json::from_str(r#"{"resource_attributes":{"ignore_defaults":true}}"#).unwrap();
        assert_eq!(
            ignore.action_for_resource("service.name"),
            Action::StructuredMetadata
        );

        let lr = LogRecord {
            body: Some(AnyValue {
                value: Some(s("x")),
            }),
            severity_text: "INFO".into(),
            attributes: vec![
                kv("tenant", s("t1")),
                kv("secret_key", s("k")),
                kv("user", s("u")),
            ],
            ..Default::default()
        };
        let m = map_request(
            one_record(
                vec![kv("service.name", s("svc")), kv("host.name", s("h"))],
                lr,
            ),
            &cfg,
            &[],
            0,
        );
        assert_eq!(
            m.streams[0].labels,
            r#"{host_name="h", service_name="svc", severity_text="INFO", tenant="t1"}"#
        );
        let md: Vec<&str> = m.streams[0].entries[0]
            .metadata
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(md, vec!["user", "severity_text"]);
    }

    #[test]
    fn bodies_and_values_as_strings() {
        use any_value::Value as V;
        let arr = AnyValue {
            value: Some(V::ArrayValue(ArrayValue {
                values: vec![
                    AnyValue {
                        value: Some(V::DoubleValue(1.0)),
                    },
                    AnyValue {
                        value: Some(V::BoolValue(false)),
                    },
                    AnyValue { value: None },
                ],
            })),
        };
        assert_eq!(any_as_string(Some(&arr)), "[1,false,null]");
        assert_eq!(
            any_as_string(Some(&AnyValue {
                value: Some(V::DoubleValue(2.5e-7))
            })),
            "2.5e-7"
        );
        assert_eq!(
            any_as_string(Some(&AnyValue {
                value: Some(V::DoubleValue(1e21))
            })),
            "1e+21"
        );
        assert_eq!(
            any_as_string(Some(&AnyValue {
                value: Some(V::DoubleValue(123.0))
            })),
            "123"
        );
        assert_eq!(
            any_as_string(Some(&AnyValue {
                value: Some(V::IntValue(-3))
            })),
            "-3"
        );
        assert_eq!(any_as_string(None), "");
    }

    #[test]
    fn config_validation() {
        let bad: OtlpConfig = serde_json::from_str(
            r#"{"scope_attributes":[{"action":"index_label","attributes":["a"]}]}"#,
        )
        .unwrap();
        assert!(bad.validate().is_err());
        let bad: OtlpConfig =
            serde_json::from_str(r#"{"log_attributes":[{"action":"drop"}]}"#).unwrap();
        assert_eq!(
            bad.validate(),
            Err("attributes or regex must be set".to_string())
        );
        assert!(serde_json::from_str::<OtlpConfig>(
            r#"{"log_attributes":[{"action":"keep","attributes":["a"]}]}"#
        )
        .is_err());
        assert!(OtlpConfig::default().validate().is_ok());
    }

    #[test]
    fn severity_names() {
        assert_eq!(severity_from_name("SEVERITY_NUMBER_TRACE"), Some(1));
        assert_eq!(severity_from_name("SEVERITY_NUMBER_INFO4"), Some(12));
        assert_eq!(severity_from_name("SEVERITY_NUMBER_FATAL"), Some(21));
        assert_eq!(severity_from_name("SEVERITY_NUMBER_UNSPECIFIED"), Some(0));
        assert_eq!(severity_from_name("WARN"), None);
    }

    #[test]
    fn detected_level_from_severity() {
        let limits = crate::ingest::IngestLimits::default();
        let rec = |num: i32, text: &str, body: &str| LogRecord {
            time_unix_nano: 1,
            severity_number: num,
            severity_text: text.into(),
            body: Some(AnyValue {
                value: Some(s(body)),
            }),
            ..Default::default()
        };
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: None,
                scope_logs: vec![ScopeLogs {
                    scope: None,
                    log_records: vec![
                        rec(17, "", "all fine"),
                        rec(9, "Warning", "x"),
                        rec(0, "", "debug: y"),
                        rec(0, "", "z"),
                    ],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let m = map_request(
            req,
            &OtlpConfig::default(),
            &limits.discover_service_name,
            0,
        );
        let p = crate::ingest::validate::prepare_raw_streams(m.streams, &limits, 2);
        let levels: Vec<&str> = p.streams[0]
            .entries
            .iter()
            .map(|e| {
                e.metadata
                    .iter()
                    .find(|(k, _)| k == "detected_level")
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("")
            })
            .collect();
        // severity_text wins over the number; number 0 is absent, so the line decides.
        assert_eq!(levels, vec!["error", "warn", "debug", "unknown"]);
        assert_eq!(
            p.streams[0].labels.to_string(),
            r#"{service_name="unknown_service"}"#
        );
    }
}
