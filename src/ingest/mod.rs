//! Ingestion: from request bytes to validated streams handed to storage.
//!
//! This room owns push decoding (protobuf + snappy, JSON, gzip/deflate),
//! Loki's validation rules and their exact error texts, ingestion limits,
//! `service_name` discovery, `detected_level` detection, and the OTLP
//! mapping of resources, scopes and log records onto streams. It calls
//! storage through `Store::append` only.
//!
//! The path of a push: [`push`] turns the body into [`RawStream`]s (labels
//! still text, metadata names as sent); [`validate::prepare_push`] parses
//! labels, adds `service_name`, validates every entry, normalises metadata
//! names and adds `detected_level`, keeping the rejection messages; the
//! [`Ingester`] then applies the tenant's rate and stream limits and appends
//! what is left. OTLP requests are mapped onto `RawStream`s by [`otlp`] and
//! follow the same path.

pub(crate) use crate::units::now_ns;

pub mod discovery;
pub mod limits;
pub mod otlp;
pub mod push;
pub mod validate;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::limits::TenantLimits;
use crate::proto::otlp::collector::ExportLogsServiceRequest;
use crate::storage::{PushStream, Store};

pub use limits::RateLimiter;
pub use otlp::{decode_otlp_http, OtlpConfig};
pub use push::{decode_push, RawStream};
pub use validate::{prepare_push, Prepared};

/// An error answered to the client: HTTP status and Loki's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PushError {
    pub status: u16,
    pub message: String,
}

impl PushError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        PushError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }
    /// 413 with Loki's `request body too large: ...` prefix.
    pub fn too_large(detail: impl std::fmt::Display) -> Self {
        Self::new(413, format!("request body too large: {detail}"))
    }
    pub fn status(&self) -> u16 {
        self.status
    }
}

/// Loki's reason names for discarded data (`pkg/validation/validate.go`).
pub mod reason {
    pub const INVALID_LABELS: &str = "invalid_labels";
    pub const MISSING_LABELS: &str = "missing_labels";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const LINE_TOO_LONG: &str = "line_too_long";
    pub const STREAM_LIMIT: &str = "stream_limit";
    pub const GREATER_THAN_MAX_SAMPLE_AGE: &str = "greater_than_max_sample_age";
    pub const TOO_FAR_IN_FUTURE: &str = "too_far_in_future";
    pub const MAX_LABEL_NAMES_PER_SERIES: &str = "max_label_names_per_series";
    pub const LABEL_NAME_TOO_LONG: &str = "label_name_too_long";
    pub const LABEL_VALUE_TOO_LONG: &str = "label_value_too_long";
    pub const DUPLICATE_LABEL_NAMES: &str = "duplicate_label_names";
    pub const DISALLOWED_STRUCTURED_METADATA: &str = "disallowed_structured_metadata";
    pub const STRUCTURED_METADATA_TOO_LARGE: &str = "structured_metadata_too_large";
    pub const STRUCTURED_METADATA_TOO_MANY: &str = "structured_metadata_too_many";
    pub const INVALID_STRUCTURED_METADATA: &str = "invalid_structured_metadata";
}

/// Every ingestion limit of a tenant, with Loki's defaults except where
/// noted. `[ingest]` in the config file sets the default for all tenants;
/// `[overrides.<tenant>]` replaces single fields for one tenant.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestLimits {
    /// Largest accepted (compressed) body. Loki: `max_recv_msg_size`, 100 MiB.
    pub max_recv_msg_size: usize,
    /// Largest body after gzip/deflate/snappy. Loki defaults to 50× the
    /// body limit (5000 MiB); here 256 MiB, because the whole body is held in
    /// memory of one machine.
    pub max_decompressed_size: usize,
    /// Tenant ingestion rate in MiB/s. Loki: 4; here 64 (a local store).
    pub ingestion_rate_mb: f64,
    /// Token bucket size in MiB. Loki: 6; here 128.
    pub ingestion_burst_size_mb: f64,
    /// Active streams per tenant; 0 = unlimited (the default here; Loki: 5000).
    pub max_global_streams_per_user: usize,
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
    /// `service_name` is not counted.
    pub max_label_names_per_series: usize,
    /// Off by default here (Loki: on).
    pub reject_old_samples: bool,
    #[serde(with = "crate::units::serde_duration")]
    pub reject_old_samples_max_age: Duration,
    #[serde(with = "crate::units::serde_duration")]
    pub creation_grace_period: Duration,
    /// Bytes; 0 = no limit. Loki: 256KB = 262144.
    pub max_line_size: usize,
    pub max_line_size_truncate: bool,
    pub max_line_size_truncate_identifier: String,
    pub allow_structured_metadata: bool,
    /// Bytes of names + values per entry (`detected_level` not counted).
    pub max_structured_metadata_size: usize,
    pub max_structured_metadata_entries_count: usize,
    /// Labels to take `service_name` from; empty disables the label.
    pub discover_service_name: Vec<String>,
    pub discover_log_levels: bool,
    /// Field names a level is read from (labels, metadata, JSON, logfmt).
    pub log_level_fields: Vec<String>,
    /// How deep into a JSON line the level is searched; 0 = unlimited.
    pub log_level_from_json_max_depth: usize,
}

/// Parses a Prometheus duration (`[0-9]+(ms|s|m|h|d|w|y)` repeated).
pub fn parse_duration(s: &str) -> Option<Duration> {
    crate::units::parse_std_duration(s)
}

/// Loki's `DefaultAllowedLevelFields`.
pub const DEFAULT_LEVEL_FIELDS: [&str; 14] = [
    "level",
    "LEVEL",
    "Level",
    "log.level",
    "severity",
    "SEVERITY",
    "Severity",
    "SeverityText",
    "lvl",
    "LVL",
    "Lvl",
    "severity_text",
    "Severity_Text",
    "SEVERITY_TEXT",
];

/// Loki's default `discover_service_name` list.
pub const DEFAULT_SERVICE_NAME_LABELS: [&str; 13] = [
    "service",
    "app",
    "application",
    "app_name",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "k8s_container_name",
    "component",
    "workload",
    "job",
    "k8s_job_name",
];

const MIB: usize = 1 << 20;

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_recv_msg_size: 100 * MIB,
            max_decompressed_size: 256 * MIB,
            ingestion_rate_mb: 64.0,
            ingestion_burst_size_mb: 128.0,
            max_global_streams_per_user: 0,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            max_label_names_per_series: 15,
            reject_old_samples: false,
            reject_old_samples_max_age: Duration::from_secs(7 * 24 * 3600),
            creation_grace_period: Duration::from_secs(600),
            max_line_size: 256 * 1024,
            max_line_size_truncate: false,
            max_line_size_truncate_identifier: String::new(),
            allow_structured_metadata: true,
            max_structured_metadata_size: 64 * 1024,
            max_structured_metadata_entries_count: 128,
            discover_service_name: DEFAULT_SERVICE_NAME_LABELS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            discover_log_levels: true,
            log_level_fields: DEFAULT_LEVEL_FIELDS.iter().map(|s| s.to_string()).collect(),
            log_level_from_json_max_depth: 2,
        }
    }
}

/// What a successful (or partially successful) push did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushSummary {
    pub accepted: usize,
    pub duplicates: usize,
    pub new_streams: usize,
}

/// The outcome of an OTLP export: what `partial_success` reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OtlpSummary {
    pub accepted: usize,
    /// Log records not stored (validation or limits).
    pub rejected: usize,
    /// The rejection messages, one per line; empty when nothing was rejected.
    pub message: String,
}

/// Lines and bytes of one counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinesBytes {
    pub lines: u64,
    pub bytes: u64,
}

/// Ingestion counters (Loki's `distributor_lines_received_total`,
/// `discarded_samples_total` / `discarded_bytes_total` by reason and tenant).
#[derive(Debug, Default)]
pub struct IngestMetrics {
    pub lines_received: AtomicU64,
    pub bytes_received: AtomicU64,
    pub lines_accepted: AtomicU64,
    pub bytes_accepted: AtomicU64,
    /// Lines truncated by `max_line_size_truncate`.
    pub lines_truncated: AtomicU64,
    /// `(tenant, reason)` → discarded lines and bytes; updated once per request.
    discarded: Mutex<HashMap<(String, &'static str), LinesBytes>>,
    /// Per tenant lines/bytes received.
    received_by_tenant: Mutex<HashMap<String, LinesBytes>>,
}

impl IngestMetrics {
    pub fn discarded(&self, tenant: &str, reason: &str) -> LinesBytes {
        self.discarded
            .lock()
            .iter()
            .find(|((t, r), _)| t == tenant && *r == reason)
            .map(|(_, v)| *v)
            .unwrap_or_default()
    }

    /// Every discarded counter: `(tenant, reason, lines, bytes)`, sorted.
    pub fn discarded_snapshot(&self) -> Vec<(String, &'static str, LinesBytes)> {
        let mut v: Vec<_> = self
            .discarded
            .lock()
            .iter()
            .map(|((t, r), c)| (t.clone(), *r, *c))
            .collect();
        v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        v
    }

    /// Lines and bytes received per tenant, sorted by tenant.
    pub fn received_snapshot(&self) -> Vec<(String, LinesBytes)> {
        let mut v: Vec<_> = self
            .received_by_tenant
            .lock()
            .iter()
            .map(|(t, c)| (t.clone(), *c))
            .collect();
        v.sort();
        v
    }

    /// Appends the counters in Prometheus text format, with Loki's metric
    /// names (`loki_distributor_lines_received_total`,
    /// `loki_discarded_samples_total`, ...).
    pub fn render_prometheus(&self, out: &mut String) {
        use std::fmt::Write;
        let received = self.received_snapshot();
        let _ = writeln!(out, "# TYPE loki_distributor_lines_received_total counter");
        for (t, c) in &received {
            let _ = writeln!(
                out,
                "loki_distributor_lines_received_total{{tenant={}}} {}",
                crate::labels::go_quote(t),
                c.lines
            );
        }
        let _ = writeln!(out, "# TYPE loki_distributor_bytes_received_total counter");
        for (t, c) in &received {
            let _ = writeln!(
                out,
                "loki_distributor_bytes_received_total{{tenant={}}} {}",
                crate::labels::go_quote(t),
                c.bytes
            );
        }
        let discarded = self.discarded_snapshot();
        let _ = writeln!(out, "# TYPE loki_discarded_samples_total counter");
        for (t, r, c) in &discarded {
            let _ = writeln!(
                out,
                "loki_discarded_samples_total{{reason=\"{r}\",tenant={}}} {}",
                crate::labels::go_quote(t),
                c.lines
            );
        }
        let _ = writeln!(out, "# TYPE loki_discarded_bytes_total counter");
        for (t, r, c) in &discarded {
            let _ = writeln!(
                out,
                "loki_discarded_bytes_total{{reason=\"{r}\",tenant={}}} {}",
                crate::labels::go_quote(t),
                c.bytes
            );
        }
        let _ = writeln!(out, "# TYPE loki_mutated_samples_total counter");
        let _ = writeln!(
            out,
            "loki_mutated_samples_total{{reason=\"line_too_long\"}} {}",
            self.lines_truncated.load(Ordering::Relaxed)
        );
    }

    fn add_discarded(&self, tenant: &str, items: &[(&'static str, LinesBytes)]) {
        if items.is_empty() {
            return;
        }
        let mut m = self.discarded.lock();
        for (r, c) in items {
            let e = m.entry((tenant.to_string(), *r)).or_default();
            e.lines += c.lines;
            e.bytes += c.bytes;
        }
    }

    fn add_received(&self, tenant: &str, c: LinesBytes) {
        self.lines_received.fetch_add(c.lines, Ordering::Relaxed);
        self.bytes_received.fetch_add(c.bytes, Ordering::Relaxed);
        let mut m = self.received_by_tenant.lock();
        let e = m.entry(tenant.to_string()).or_default();
        e.lines += c.lines;
        e.bytes += c.bytes;
    }
}

impl PartialOrd for LinesBytes {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for LinesBytes {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.lines, self.bytes).cmp(&(other.lines, other.bytes))
    }
}

/// The ingestion front door shared by the HTTP and gRPC handlers.
pub struct Ingester {
    store: Arc<Store>,
    limits: Arc<TenantLimits<IngestLimits>>,
    otlp: OtlpConfig,
    metrics: IngestMetrics,
    rate: RateLimiter,
    /// Hashes of streams this process appended per tenant: a stream found
    /// here is not new for the active-stream limit. Only kept when that
    /// limit is on.
    known_streams: Mutex<HashMap<String, HashSet<u64>>>,
}

/// What became of a prepared push after the limits.
struct Stored {
    summary: PushSummary,
    /// A 429 from the stream limit when some streams were refused.
    limit_error: Option<PushError>,
    refused_lines: usize,
}

impl Ingester {
    pub fn new(
        store: Arc<Store>,
        limits: Arc<TenantLimits<IngestLimits>>,
        otlp: OtlpConfig,
    ) -> Ingester {
        Ingester {
            store,
            limits,
            otlp,
            metrics: IngestMetrics::default(),
            rate: RateLimiter::new(),
            known_streams: Mutex::new(HashMap::new()),
        }
    }

    /// The limits of `tenant`.
    pub fn limits(&self, tenant: &str) -> Arc<IngestLimits> {
        self.limits.get(tenant)
    }

    /// Every tenant's limits (defaults and overrides).
    pub fn tenant_limits(&self) -> &Arc<TenantLimits<IngestLimits>> {
        &self.limits
    }

    pub fn metrics(&self) -> &IngestMetrics {
        &self.metrics
    }

    /// `POST /loki/api/v1/push`. Blocking. `Ok` means 204; an `Err` with
    /// status 400 after a partial accept still stored the valid entries.
    pub fn push(
        &self,
        tenant: &str,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        body: &[u8],
    ) -> Result<PushSummary, PushError> {
        let limits = self.limits.get(tenant);
        let raw = push::decode_push(
            content_type,
            content_encoding,
            body,
            limits.max_recv_msg_size,
            limits.max_decompressed_size,
        )?;
        self.push_raw(tenant, &limits, raw)
    }

    /// A decoded push under the tenant's `limits` (looked up once per
    /// request, so a reload mid-request cannot mix two sets).
    fn push_raw(
        &self,
        tenant: &str,
        limits: &IngestLimits,
        raw: Vec<RawStream>,
    ) -> Result<PushSummary, PushError> {
        if raw.is_empty() {
            return Err(PushError::new(422, validate::MISSING_STREAMS_MSG));
        }
        let mut prepared = validate::prepare_push(raw, limits, now_ns())?;
        let errors = std::mem::take(&mut prepared.errors);
        let stored = self.store_prepared(tenant, limits, prepared)?;
        if let Some(e) = stored.limit_error {
            return Err(e);
        }
        if !errors.is_empty() {
            return Err(PushError::bad_request(errors.join("\n")));
        }
        Ok(stored.summary)
    }

    /// A decoded `PushRequest` (the gRPC `logproto.Pusher/Push`); the same
    /// outcomes as [`Ingester::push`].
    pub fn push_request(
        &self,
        tenant: &str,
        req: crate::proto::logproto::PushRequest,
    ) -> Result<PushSummary, PushError> {
        self.push_raw(tenant, &self.limits.get(tenant), push::raw_streams(req))
    }

    /// OTLP export (HTTP and gRPC share this). Blocking. Rejected records are
    /// counted in the summary; `Err` only when nothing could be considered
    /// (rate limit, storage failure).
    pub fn push_otlp(
        &self,
        tenant: &str,
        req: ExportLogsServiceRequest,
    ) -> Result<OtlpSummary, PushError> {
        let limits = self.limits.get(tenant);
        let mut raw = otlp::map_request(req, &self.otlp, &limits.discover_service_name, now_ns());
        if raw.streams.is_empty() {
            return Ok(OtlpSummary {
                accepted: 0,
                rejected: raw.rejected,
                message: raw.errors.join("\n"),
            });
        }
        let prepared =
            validate::prepare_raw_streams(std::mem::take(&mut raw.streams), &limits, now_ns());
        let mut prepared = prepared;
        let mut errors = raw.errors;
        let mut rejected = raw.rejected + prepared.rejected_lines();
        errors.append(&mut prepared.errors);
        let stored = self.store_prepared(tenant, &limits, prepared)?;
        rejected += stored.refused_lines;
        if let Some(e) = stored.limit_error {
            errors.push(e.message);
        }
        Ok(OtlpSummary {
            accepted: stored.summary.accepted + stored.summary.duplicates,
            rejected,
            message: errors.join("\n"),
        })
    }

    /// Applies the rate and stream limits to validated streams and appends
    /// the rest; updates metrics.
    fn store_prepared(
        &self,
        tenant: &str,
        limits: &IngestLimits,
        mut p: Prepared,
    ) -> Result<Stored, PushError> {
        self.metrics.add_received(tenant, p.received);
        self.metrics.add_discarded(tenant, &p.discarded);
        if p.truncated > 0 {
            self.metrics
                .lines_truncated
                .fetch_add(p.truncated as u64, Ordering::Relaxed);
        }
        if p.streams.is_empty() {
            return Ok(Stored {
                summary: PushSummary::default(),
                limit_error: None,
                refused_lines: 0,
            });
        }
        let (lines, bytes) = totals(&p.streams);
        let (rate, burst) = (limits.ingestion_rate_mb, limits.ingestion_burst_size_mb);
        if !self
            .rate
            .allow(tenant, rate, burst, bytes, std::time::Instant::now())
        {
            self.metrics.add_discarded(
                tenant,
                &[(
                    reason::RATE_LIMITED,
                    LinesBytes {
                        lines: lines as u64,
                        bytes: bytes as u64,
                    },
                )],
            );
            return Err(PushError::new(
                429,
                limits::rate_limited_message(tenant, limits::limit_bytes(rate), lines, bytes),
            ));
        }
        let mut limit_error = None;
        let mut refused_lines = 0;
        let mut new_hashes = Vec::new();
        if limits.max_global_streams_per_user > 0 {
            let mut known = self.known_streams.lock();
            let set = known.entry(tenant.to_string()).or_default();
            let active = self.store.active_streams(tenant);
            let (keep, refused) = limits::apply_stream_limit(
                std::mem::take(&mut p.streams),
                set,
                active,
                limits.max_global_streams_per_user,
            );
            if let Some(first) = refused.first() {
                limit_error = Some(PushError::new(
                    429,
                    limits::stream_limit_message(&first.labels, tenant),
                ));
                let mut c = LinesBytes::default();
                for s in &refused {
                    c.lines += s.entries.len() as u64;
                    c.bytes += s.entries.iter().map(validate::entry_size).sum::<usize>() as u64;
                }
                refused_lines = c.lines as usize;
                self.metrics
                    .add_discarded(tenant, &[(reason::STREAM_LIMIT, c)]);
            }
            new_hashes = keep
                .iter()
                .map(|s| s.labels.stable_hash())
                .filter(|h| !set.contains(h))
                .collect();
            p.streams = keep;
        }
        if p.streams.is_empty() {
            return Ok(Stored {
                summary: PushSummary::default(),
                limit_error,
                refused_lines,
            });
        }
        let (lines, bytes) = totals(&p.streams);
        let outcome = self
            .store
            .append(tenant, p.streams)
            .map_err(|e| PushError::new(500, format!("failed to store entries: {e}")))?;
        if !new_hashes.is_empty() {
            self.known_streams
                .lock()
                .entry(tenant.to_string())
                .or_default()
                .extend(new_hashes);
        }
        self.metrics
            .lines_accepted
            .fetch_add(lines as u64, Ordering::Relaxed);
        self.metrics
            .bytes_accepted
            .fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(Stored {
            summary: PushSummary {
                accepted: outcome.accepted,
                duplicates: outcome.duplicates,
                new_streams: outcome.new_streams,
            },
            limit_error,
            refused_lines,
        })
    }
}

/// Lines and bytes (line + metadata, as Loki meters them) of streams.
fn totals(streams: &[PushStream]) -> (usize, usize) {
    let mut lines = 0;
    let mut bytes = 0;
    for s in streams {
        lines += s.entries.len();
        bytes += s.entries.iter().map(validate::entry_size).sum::<usize>();
    }
    (lines, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageConfig;

    fn ingester(limits: IngestLimits) -> (tempfile::TempDir, Ingester) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StorageConfig::new(dir.path())).unwrap();
        let limits = Arc::new(TenantLimits::new(limits));
        (dir, Ingester::new(store, limits, OtlpConfig::default()))
    }

    fn json_body(ts: i64, streams: &[(&str, &str)]) -> Vec<u8> {
        let s: Vec<String> = streams
            .iter()
            .map(|(labels, line)| format!(r#"{{"stream":{labels},"values":[["{ts}","{line}"]]}}"#))
            .collect();
        format!(r#"{{"streams":[{}]}}"#, s.join(",")).into_bytes()
    }

    #[test]
    fn zero_streams_is_422() {
        let (_d, ing) = ingester(IngestLimits::default());
        let e = ing
            .push("t", Some("application/json"), None, br#"{"streams":[]}"#)
            .unwrap_err();
        assert_eq!(
            e,
            PushError::new(
                422,
                "error at least one valid stream is required for ingestion"
            )
        );
    }

    #[test]
    fn partial_accept_is_400_with_every_message_and_metrics() {
        let (_d, ing) = ingester(IngestLimits {
            max_line_size: 5,
            discover_log_levels: false,
            ..IngestLimits::default()
        });
        let now = now_ns();
        let body = json_body(
            now,
            &[
                (r#"{"app":"a"}"#, "ok"),
                (r#"{"app":"b"}"#, "too long"),
                (r#"{"app":"c"}"#, "longer!"),
            ],
        );
        let e = ing
            .push("t", Some("application/json"), None, &body)
            .unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(
            e.message,
            "max entry size '5' bytes exceeded for stream '{app=\"b\", service_name=\"b\"}' while adding an entry with length '8' bytes\n\
             max entry size '5' bytes exceeded for stream '{app=\"c\", service_name=\"c\"}' while adding an entry with length '7' bytes"
        );
        let m = ing.metrics();
        assert_eq!(m.lines_received.load(Ordering::Relaxed), 3);
        assert_eq!(m.bytes_received.load(Ordering::Relaxed), 2 + 8 + 7);
        assert_eq!(m.lines_accepted.load(Ordering::Relaxed), 1);
        assert_eq!(
            m.discarded("t", reason::LINE_TOO_LONG),
            LinesBytes {
                lines: 2,
                bytes: 15
            }
        );
    }

    #[test]
    fn rate_limit_is_429_and_all_or_nothing() {
        // 10 bytes/s with a 10 byte burst (in MiB units).
        let mib = (1u64 << 20) as f64;
        let (_d, ing) = ingester(IngestLimits {
            ingestion_rate_mb: 10.0 / mib,
            ingestion_burst_size_mb: 10.0 / mib,
            discover_log_levels: false,
            ..IngestLimits::default()
        });
        let now = now_ns();
        ing.push(
            "t",
            Some("application/json"),
            None,
            &json_body(now, &[(r#"{"a":"1"}"#, "12345678")]),
        )
        .unwrap();
        let e = ing
            .push(
                "t",
                Some("application/json"),
                None,
                &json_body(now, &[(r#"{"a":"1"}"#, "1234"), (r#"{"a":"2"}"#, "1")]),
            )
            .unwrap_err();
        assert_eq!(e.status, 429);
        assert_eq!(
            e.message,
            "ingestion rate limit exceeded for user t (limit: 10 bytes/sec) while attempting to ingest '2' lines totaling '5' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased"
        );
        assert_eq!(
            ing.metrics().discarded("t", reason::RATE_LIMITED),
            LinesBytes { lines: 2, bytes: 5 }
        );
        // Another tenant is unaffected.
        ing.push(
            "u",
            Some("application/json"),
            None,
            &json_body(now, &[(r#"{"a":"1"}"#, "1234")]),
        )
        .unwrap();
    }

    #[test]
    fn stream_limit_is_429_but_known_streams_pass() {
        let (_d, ing) = ingester(IngestLimits {
            max_global_streams_per_user: 1,
            discover_log_levels: false,
            ..IngestLimits::default()
        });
        let now = now_ns();
        ing.push(
            "t",
            Some("application/json"),
            None,
            &json_body(now, &[(r#"{"a":"1"}"#, "x")]),
        )
        .unwrap();
        // One stream is active and the limit is 1: `{a="1"}` is known and
        // passes, `{a="2"}` and `{a="3"}` would be new and are refused.
        let e = ing
            .push(
                "t",
                Some("application/json"),
                None,
                &json_body(
                    now,
                    &[
                        (r#"{"a":"1"}"#, "y"),
                        (r#"{"a":"2"}"#, "z"),
                        (r#"{"a":"3"}"#, "w"),
                    ],
                ),
            )
            .unwrap_err();
        assert_eq!(e.status, 429);
        assert!(e.message.starts_with("maximum active stream limit exceeded when trying to create stream {a=\"2\", service_name=\"unknown_service\"}"), "{}", e.message);
        assert_eq!(ing.metrics().discarded("t", reason::STREAM_LIMIT).lines, 2);
    }

    #[test]
    fn protobuf_push_and_otlp_summary() {
        let (_d, ing) = ingester(IngestLimits::default());
        let now = now_ns();
        let req = crate::proto::logproto::PushRequest {
            streams: vec![crate::proto::logproto::StreamAdapter {
                labels: r#"{job="j"}"#.into(),
                entries: vec![crate::proto::logproto::EntryAdapter {
                    timestamp: Some(prost_types::Timestamp {
                        seconds: now / 1_000_000_000,
                        nanos: 0,
                    }),
                    line: "hello".into(),
                    structured_metadata: vec![],
                    parsed: vec![],
                }],
                hash: 0,
            }],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&prost::Message::encode_to_vec(&req))
            .unwrap();
        ing.push("t", None, None, &body).unwrap();
        assert_eq!(ing.metrics().lines_accepted.load(Ordering::Relaxed), 1);

        use crate::proto::otlp::common::{any_value::Value, AnyValue};
        use crate::proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
        let rec = |ts: u64, body: &str| LogRecord {
            time_unix_nano: ts,
            body: Some(AnyValue {
                value: Some(Value::StringValue(body.into())),
            }),
            severity_number: 17,
            ..Default::default()
        };
        let future = (now + 3_600_000_000_000) as u64;
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: None,
                scope_logs: vec![ScopeLogs {
                    scope: None,
                    log_records: vec![rec(now as u64, "a"), rec(future, "b")],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let s = ing.push_otlp("t", req).unwrap();
        assert_eq!(s.rejected, 1);
        assert!(s.message.contains("has timestamp too new"), "{}", s.message);
        assert_eq!(ing.metrics().lines_accepted.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn unparsable_json_labels_fail_whole_request() {
        let (_d, ing) = ingester(IngestLimits::default());
        let body = json_body(now_ns(), &[(r#"{"a":"1"}"#, "x"), (r#"{"a.b":"1"}"#, "y")]);
        let e = ing
            .push("t", Some("application/json"), None, &body)
            .unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.message.starts_with("couldn't parse labels: "),
            "{}",
            e.message
        );
        assert_eq!(ing.metrics().lines_received.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn durations_and_limits_from_config() {
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration(""), None);
        let l: IngestLimits = serde_json::from_str(r#"{"reject_old_samples":true,"reject_old_samples_max_age":"2d","creation_grace_period":60}"#).unwrap();
        assert!(l.reject_old_samples);
        assert_eq!(l.reject_old_samples_max_age, Duration::from_secs(2 * 86400));
        assert_eq!(l.creation_grace_period, Duration::from_secs(60));
        assert_eq!(l.max_line_size, 262144);
        assert!(serde_json::from_str::<IngestLimits>(r#"{"bogus":1}"#).is_err());
    }

    #[test]
    fn prometheus_rendering() {
        let m = IngestMetrics::default();
        m.add_received(
            "t",
            LinesBytes {
                lines: 3,
                bytes: 30,
            },
        );
        m.add_discarded(
            "t",
            &[(
                reason::LINE_TOO_LONG,
                LinesBytes {
                    lines: 1,
                    bytes: 20,
                },
            )],
        );
        let mut out = String::new();
        m.render_prometheus(&mut out);
        assert!(
            out.contains("loki_distributor_lines_received_total{tenant=\"t\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("loki_discarded_bytes_total{reason=\"line_too_long\",tenant=\"t\"} 20\n"),
            "{out}"
        );
    }
}
