//! Configuration: command-line flags, `MINILOKI_*` environment variables and
//! the optional TOML config file, resolved into typed settings.
//!
//! Resolution happens in two steps, as in ripgrep: [`ServeArgs`] holds the
//! raw values exactly as given (clap fills them from flags or environment
//! variables; a value absent from both is `None`), [`FileConfig`] holds the
//! config file (unknown keys are rejected), and [`Config::resolve`] merges
//! them (flag/env > file > built-in default) into the [`Config`] the rest of
//! the program uses. Every key is documented in `docs/configuration.md`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::ingest::{IngestLimits, OtlpConfig};
use crate::limits::{apply_table, to_table};
use crate::logql::eval::QueryLimits;
use crate::storage::{Codec, StorageConfig, SyncPolicy};

/// miniloki: Grafana Loki's push API, storage and LogQL in one binary.
#[derive(Parser, Debug)]
#[command(name = "miniloki", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of the server (the default command).
    #[command(flatten)]
    pub serve: ServeArgs,
}

// Parsed once at start-up: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (the default when no command is given).
    Serve(ServeArgs),
    /// Push generated protobuf batches at a running server and report
    /// lines/s, MB/s and the server's peak RSS.
    Load(crate::loadgen::LoadArgs),
    /// Send demo logs (order, inventory, payment, notification services)
    /// to a server, through both the Loki push API and OTLP/HTTP.
    Demo(crate::demo::DemoArgs),
    /// Exit 0 when a URL answers 200 (the container healthcheck).
    Check(crate::loadgen::CheckArgs),
    /// Fuzz the decoders of untrusted input (mutation-based, from the
    /// seeds in testdata/fuzz/<target>/; crashes are saved beside them).
    Fuzz(crate::fuzz::FuzzArgs),
    /// Mixed push and query load at a fixed push rate for a long time,
    /// reporting latency percentiles and server RSS per interval.
    Soak(crate::soak::SoakArgs),
}

/// Server options. Each is also read from the environment variable shown.
#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// Address of the HTTP API [default: 127.0.0.1:3100]
    #[arg(long, env = "MINILOKI_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory for the WAL, blocks and index [default: ./data]
    #[arg(long, env = "MINILOKI_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Optional TOML config file (see docs/configuration.md); flags and
    /// environment variables override it.
    #[arg(long, env = "MINILOKI_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the OTLP/gRPC logs receiver, or `off` [default: 127.0.0.1:4317]
    #[arg(long, env = "MINILOKI_OTLP_GRPC_LISTEN", value_name = "ADDR|off")]
    pub otlp_grpc_listen: Option<String>,
    /// Require X-Scope-OrgID on every request (as Loki's auth_enabled);
    /// when off, everything goes to tenant `fake` [default: false]
    #[arg(long, env = "MINILOKI_AUTH_ENABLED", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub auth_enabled: Option<bool>,
    /// TOML file mapping bearer tokens (or `user:password` for basic auth)
    /// to the tenants they may read and write; when set, every request but
    /// /ready and /metrics needs `Authorization` [default: none]
    #[arg(long, env = "MINILOKI_AUTH_TOKENS_FILE", value_name = "FILE")]
    pub auth_tokens_file: Option<PathBuf>,
    /// When a push returns: `batch` (after an fsync shared by concurrent
    /// pushes), `interval:<duration>` (fsync in the background), or `none`
    /// [default: batch]
    #[arg(long, env = "MINILOKI_WAL_SYNC", value_name = "POLICY")]
    pub wal_sync: Option<String>,
    /// Chunk compression: zstd, snappy or none [default: zstd]
    #[arg(long, env = "MINILOKI_CHUNK_ENCODING", value_name = "CODEC")]
    pub chunk_encoding: Option<String>,
    /// How often cut chunks are written to blocks, e.g. `1m` [default: 1m]
    #[arg(long, env = "MINILOKI_FLUSH_INTERVAL", value_name = "DURATION")]
    pub flush_interval: Option<String>,
    /// Delete data older than this, e.g. `30d`; `0` keeps everything [default: 0]
    #[arg(long, env = "MINILOKI_RETENTION_PERIOD", value_name = "DURATION")]
    pub retention_period: Option<String>,
    /// Labels to take service_name from when a stream has none, comma
    /// separated; empty turns discovery off [default: Loki's list]
    #[arg(long, env = "MINILOKI_DISCOVER_SERVICE_NAME", value_name = "LABELS", num_args = 0..=1, default_missing_value = "")]
    pub discover_service_name: Option<String>,
    /// Add a detected_level structured-metadata field at ingest [default: true]
    #[arg(long, env = "MINILOKI_DISCOVER_LOG_LEVELS", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub discover_log_levels: Option<bool>,
    /// Longest accepted line in bytes; 0 disables the check [default: 262144]
    #[arg(long, env = "MINILOKI_MAX_LINE_SIZE", value_name = "BYTES")]
    pub max_line_size: Option<usize>,
    /// Truncate lines over max-line-size instead of rejecting them [default: false]
    #[arg(long, env = "MINILOKI_MAX_LINE_SIZE_TRUNCATE", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub max_line_size_truncate: Option<bool>,
    /// Query timeout, e.g. `1m` [default: 1m]
    #[arg(long, env = "MINILOKI_QUERY_TIMEOUT", value_name = "DURATION")]
    pub query_timeout: Option<String>,
    /// Log filter for the server's own logs, in tracing's EnvFilter syntax
    /// [default: info]
    #[arg(long, env = "MINILOKI_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Format of the server's own logs: text or json [default: text]
    #[arg(long, env = "MINILOKI_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Queries run at once; more wait in a FIFO queue [default: the number
    /// of cores, at least 2]
    #[arg(long, env = "MINILOKI_QUERY_MAX_CONCURRENT", value_name = "N")]
    pub query_max_concurrent: Option<usize>,
}

/// The config file. Every section and key is optional; unknown keys are
/// errors so that typos do not pass silently.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Format version of the file; only 1 exists.
    pub version: Option<u32>,
    #[serde(default)]
    pub server: FileServer,
    #[serde(default)]
    pub storage: FileStorage,
    /// `[query]`: the per-tenant query limits (`logql::eval::QueryLimits`)
    /// and the server-wide query settings ([`FileQuery`]), split by key.
    #[serde(default)]
    pub query: toml::Table,
    /// `[ingest]`: every ingestion limit (see `ingest::IngestLimits`).
    #[serde(default)]
    pub ingest: IngestLimits,
    /// `[otlp]`: Loki's `otlp_config` (see `ingest::OtlpConfig`).
    #[serde(default)]
    pub otlp: OtlpConfig,
    /// `[overrides.<tenant>]`: any `[ingest]` or `[query]` limit for one
    /// tenant. Re-read while the server runs (see [`reload_overrides`]).
    #[serde(default)]
    pub overrides: BTreeMap<String, toml::Table>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileServer {
    pub listen: Option<SocketAddr>,
    pub otlp_grpc_listen: Option<String>,
    pub auth_enabled: Option<bool>,
    pub auth_tokens_file: Option<PathBuf>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileStorage {
    pub data_dir: Option<PathBuf>,
    pub wal_sync: Option<String>,
    pub chunk_encoding: Option<String>,
    pub chunk_target_size: Option<usize>,
    pub block_size: Option<usize>,
    pub chunk_idle_period: Option<String>,
    pub max_chunk_age: Option<String>,
    pub flush_interval: Option<String>,
    pub wal_segment_size: Option<u64>,
    pub retention_period: Option<String>,
    pub max_head_bytes: Option<usize>,
    pub max_compacted_block_size: Option<u64>,
}

/// The keys of `[query]` that are server-wide rather than per-tenant limits.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileQuery {
    /// Queries run at once (`--query-max-concurrent`).
    pub max_concurrent: Option<usize>,
    /// Queued queries per tenant before 429 (Loki's `max_outstanding_per_tenant`).
    pub max_outstanding_requests: Option<usize>,
    /// Nice value of the query worker threads; 0 leaves them alone.
    pub nice: Option<i32>,
}

/// Errors in flags, environment variables or the config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("invalid value for {key}: {detail}")]
    Invalid { key: &'static str, detail: String },
}

/// Resolved settings used by the rest of the program.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub otlp_grpc_listen: Option<SocketAddr>,
    pub auth_enabled: bool,
    /// `--auth-tokens-file`: built-in access control (see `api::auth`).
    pub auth_tokens_file: Option<PathBuf>,
    pub storage: StorageConfig,
    /// Ingestion limits of every tenant without an override.
    pub ingest: IngestLimits,
    pub otlp: OtlpConfig,
    /// Query limits of every tenant without an override.
    pub query: QueryLimits,
    /// Per-tenant limits from `[overrides]`.
    pub overrides: Overrides,
    /// The config file, re-read for `[overrides]` changes.
    pub config_file: Option<PathBuf>,
    pub log_level: String,
    pub log_format: String,
    /// `[query] max_concurrent`, `max_outstanding_requests`, `nice`.
    pub query_pool: crate::api::querypool::PoolConfig,
}

impl Config {
    /// Merges flags/env (`args`) over the config file over the defaults.
    pub fn resolve(args: &ServeArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        if let Some(v) = file.version {
            if v != 1 {
                return Err(ConfigError::Invalid {
                    key: "version",
                    detail: format!(
                        "unsupported config version {v}; this miniloki reads version 1"
                    ),
                });
            }
        }
        let (s, st) = (&file.server, &file.storage);

        let listen = args
            .listen
            .or(s.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3100)));
        let grpc = args
            .otlp_grpc_listen
            .clone()
            .or_else(|| s.otlp_grpc_listen.clone())
            .unwrap_or_else(|| "127.0.0.1:4317".into());
        let otlp_grpc_listen = if grpc.eq_ignore_ascii_case("off") || grpc.is_empty() {
            None
        } else {
            Some(grpc.parse().map_err(|e| ConfigError::Invalid {
                key: "otlp_grpc_listen",
                detail: format!("{grpc:?}: {e}"),
            })?)
        };

        let data_dir = args
            .data_dir
            .clone()
            .or_else(|| st.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("./data"));
        let mut storage = StorageConfig::new(data_dir);
        if let Some(v) = args.wal_sync.as_deref().or(st.wal_sync.as_deref()) {
            storage.sync = parse_sync_policy(v)?;
        }
        if let Some(v) = args
            .chunk_encoding
            .as_deref()
            .or(st.chunk_encoding.as_deref())
        {
            storage.codec = match v.to_ascii_lowercase().as_str() {
                "zstd" => Codec::Zstd,
                "snappy" => Codec::Snappy,
                "none" => Codec::None,
                other => {
                    return Err(ConfigError::Invalid {
                        key: "chunk_encoding",
                        detail: format!("{other:?}; expected zstd, snappy or none"),
                    })
                }
            };
        }
        if let Some(v) = st.chunk_target_size {
            storage.chunk_target_size = v.max(1024);
        }
        if let Some(v) = st.block_size {
            storage.block_size = v.max(1024);
        }
        if let Some(v) = &st.chunk_idle_period {
            storage.chunk_idle_period = duration_key("chunk_idle_period", v)?;
        }
        if let Some(v) = &st.max_chunk_age {
            storage.max_chunk_age = duration_key("max_chunk_age", v)?;
        }
        if let Some(v) = args
            .flush_interval
            .as_deref()
            .or(st.flush_interval.as_deref())
        {
            storage.flush_interval = duration_key("flush_interval", v)?;
        }
        if let Some(v) = st.max_head_bytes {
            storage.max_head_bytes = v;
        }
        if let Some(v) = st.max_compacted_block_size {
            storage.max_compacted_block_bytes = v;
        }
        if let Some(v) = st.wal_segment_size {
            storage.wal_segment_size = v.max(64 * 1024);
        }
        if let Some(v) = args
            .retention_period
            .as_deref()
            .or(st.retention_period.as_deref())
        {
            let d = duration_key("retention_period", v)?;
            storage.retention_period = (!d.is_zero()).then_some(d);
        }

        let mut ingest = file.ingest;
        if let Some(flag) = &args.discover_service_name {
            ingest.discover_service_name = flag
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(v) = args.discover_log_levels {
            ingest.discover_log_levels = v;
        }
        if let Some(v) = args.max_line_size {
            ingest.max_line_size = v;
        }
        if let Some(v) = args.max_line_size_truncate {
            ingest.max_line_size_truncate = v;
        }
        let in_file = |detail| ConfigError::Parse {
            path: args.config.clone().unwrap_or_default(),
            detail,
        };
        let (mut query, server_query) = split_query_section(&file.query).map_err(in_file)?;
        if let Some(v) = args.query_timeout.as_deref() {
            query.query_timeout = duration_key("query_timeout", v)?;
        }
        let overrides = build_overrides(&file.overrides, &ingest, &query).map_err(in_file)?;
        let query_pool = query_pool_config(args, &server_query)?;
        Ok(Config {
            listen,
            otlp_grpc_listen,
            auth_enabled: args.auth_enabled.or(s.auth_enabled).unwrap_or(false),
            auth_tokens_file: args
                .auth_tokens_file
                .clone()
                .or_else(|| s.auth_tokens_file.clone()),
            storage,
            ingest,
            otlp: file.otlp,
            query,
            overrides,
            config_file: args.config.clone(),
            log_level: args
                .log_level
                .clone()
                .or_else(|| s.log_level.clone())
                .unwrap_or_else(|| "info".into()),
            log_format: args
                .log_format
                .clone()
                .or_else(|| s.log_format.clone())
                .unwrap_or_else(|| "text".into()),
            query_pool,
        })
    }
}

/// Per-tenant limit sets from `[overrides.<tenant>]`, each the defaults
/// with the tenant's keys laid over them. A tenant appears in a map only
/// when it sets a key of that kind.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub ingest: HashMap<String, IngestLimits>,
    pub query: HashMap<String, QueryLimits>,
}

/// Ingestion settings that apply to the whole server (the HTTP body limit
/// is checked before the tenant is known).
const SERVER_WIDE_INGEST_KEYS: [&str; 2] = ["max_recv_msg_size", "max_decompressed_size"];

/// Splits `[query]` into the per-tenant [`QueryLimits`] and the server-wide
/// [`FileQuery`] keys.
fn split_query_section(t: &toml::Table) -> Result<(QueryLimits, FileQuery), String> {
    let defaults = QueryLimits::default();
    let limit_keys = to_table(&defaults)?;
    let (limits, rest): (toml::Table, toml::Table) = t
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| limit_keys.contains_key(k));
    let limits = apply_table(&defaults, &limits).map_err(|e| format!("[query]: {e}"))?;
    let server: FileQuery = toml::Value::Table(rest)
        .try_into()
        .map_err(|e: toml::de::Error| format!("[query]: {}", e.message()))?;
    Ok((limits, server))
}

/// Builds every tenant's limits from its `[overrides.<tenant>]` table over
/// the running defaults. Unknown keys and server-wide keys are errors.
pub fn build_overrides(
    tables: &BTreeMap<String, toml::Table>,
    ingest: &IngestLimits,
    query: &QueryLimits,
) -> Result<Overrides, String> {
    let ingest_keys = to_table(ingest)?;
    let query_keys = to_table(query)?;
    let mut out = Overrides::default();
    for (tenant, table) in tables {
        let mut for_ingest = toml::Table::new();
        let mut for_query = toml::Table::new();
        for (k, v) in table {
            if SERVER_WIDE_INGEST_KEYS.contains(&k.as_str()) {
                return Err(format!(
                    "[overrides.{tenant}]: {k} applies to the whole server; set it in [ingest]"
                ));
            } else if ingest_keys.contains_key(k) {
                for_ingest.insert(k.clone(), v.clone());
            } else if query_keys.contains_key(k) {
                for_query.insert(k.clone(), v.clone());
            } else {
                return Err(format!("[overrides.{tenant}]: unknown limit `{k}`"));
            }
        }
        if !for_ingest.is_empty() {
            let l = apply_table(ingest, &for_ingest)
                .map_err(|e| format!("[overrides.{tenant}]: {e}"))?;
            out.ingest.insert(tenant.clone(), l);
        }
        if !for_query.is_empty() {
            let l =
                apply_table(query, &for_query).map_err(|e| format!("[overrides.{tenant}]: {e}"))?;
            out.query.insert(tenant.clone(), l);
        }
    }
    Ok(out)
}

/// Re-reads `[overrides]` from the config file over the running defaults.
/// The rest of the file is parsed (so a broken file is reported) but only
/// takes effect at the next start.
pub fn reload_overrides(
    path: &Path,
    ingest: &IngestLimits,
    query: &QueryLimits,
) -> Result<Overrides, ConfigError> {
    let file = load_file(path)?;
    build_overrides(&file.overrides, ingest, query).map_err(|detail| ConfigError::Parse {
        path: path.to_path_buf(),
        detail,
    })
}

/// `[query] max_concurrent` (or `--query-max-concurrent`),
/// `max_outstanding_requests` and `nice`.
fn query_pool_config(
    args: &ServeArgs,
    q: &FileQuery,
) -> Result<crate::api::querypool::PoolConfig, ConfigError> {
    let mut pool = crate::api::querypool::PoolConfig::default();
    if let Some(n) = args.query_max_concurrent.or(q.max_concurrent) {
        if n == 0 {
            return Err(ConfigError::Invalid {
                key: "max_concurrent",
                detail: "must be at least 1".into(),
            });
        }
        pool.max_concurrent = n;
    }
    if let Some(n) = q.max_outstanding_requests {
        pool.max_outstanding_per_tenant = n;
    }
    if let Some(n) = q.nice {
        if !(0..=19).contains(&n) {
            return Err(ConfigError::Invalid {
                key: "nice",
                detail: format!("{n}; expected 0 (off) to 19"),
            });
        }
        pool.nice = n;
    }
    Ok(pool)
}

fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

fn duration_key(key: &'static str, v: &str) -> Result<Duration, ConfigError> {
    parse_duration(v).ok_or_else(|| ConfigError::Invalid {
        key,
        detail: format!("{v:?} is not a duration like 30s, 5m, 2h or 7d"),
    })
}

fn parse_sync_policy(v: &str) -> Result<SyncPolicy, ConfigError> {
    let lower = v.to_ascii_lowercase();
    match lower.as_str() {
        "batch" => Ok(SyncPolicy::Batch),
        "none" => Ok(SyncPolicy::None),
        _ => match lower.strip_prefix("interval:") {
            Some(d) => Ok(SyncPolicy::Interval(duration_key("wal_sync", d)?)),
            None => Err(ConfigError::Invalid {
                key: "wal_sync",
                detail: format!("{v:?}; expected batch, interval:<duration> or none"),
            }),
        },
    }
}

/// Parses a duration from a flag or the config file: Prometheus style
/// (`90s`, `1h30m`, `7d`, `1w`, `250ms`, `0`) or Go style (`1.5h`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    crate::units::parse_std_duration(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn defaults_without_flags_or_file() {
        let c = Config::resolve(&ServeArgs::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:3100");
        assert_eq!(c.storage.data_dir, PathBuf::from("./data"));
        assert_eq!(
            c.otlp_grpc_listen.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:4317")
        );
        assert!(!c.auth_enabled);
        assert_eq!(c.storage.sync, SyncPolicy::Batch);
    }

    #[test]
    fn file_then_flags_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "version = 1\n[server]\nlisten = \"127.0.0.1:9999\"\n[storage]\nwal_sync = \"none\"\nchunk_encoding = \"snappy\"\n").unwrap();
        let mut args = ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.storage.sync, SyncPolicy::None);
        assert_eq!(c.storage.codec, Codec::Snappy);
        args.listen = Some("127.0.0.1:1234".parse().unwrap());
        assert_eq!(Config::resolve(&args).unwrap().listen.port(), 1234);
    }

    #[test]
    fn auth_tokens_file_from_file_then_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[server]\nauth_tokens_file = \"/etc/t.toml\"\n").unwrap();
        let mut args = ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.auth_tokens_file, Some(PathBuf::from("/etc/t.toml")));
        args.auth_tokens_file = Some(PathBuf::from("flag.toml"));
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.auth_tokens_file, Some(PathBuf::from("flag.toml")));
    }

    #[test]
    fn the_documented_example_file_is_valid() {
        let doc = include_str!("../docs/configuration.md");
        let start = doc.find("```toml\n").expect("toml block") + 8;
        let end = start + doc[start..].find("```").expect("end of block");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, &doc[start..end]).unwrap();
        let c = Config::resolve(&ServeArgs {
            config: Some(path),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.ingest.max_label_names_per_series, 15);
        assert_eq!(c.storage.chunk_idle_period, Duration::from_secs(1800));
        assert_eq!(c.otlp.resource_attributes.attributes_config.len(), 1);
        assert_eq!(c.query.max_query_series, 500);
        assert_eq!(
            c.overrides.query["team-a"].max_query_bytes_read,
            50_000_000_000
        );
        assert_eq!(c.overrides.ingest["team-a"].ingestion_rate_mb, 16.0);
    }

    fn resolve_file(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        Config::resolve(&ServeArgs {
            config: Some(path),
            ..Default::default()
        })
    }

    #[test]
    fn query_limits_and_per_tenant_overrides() {
        let c = resolve_file(
            "[ingest]\nmax_line_size = 1000\n[query]\nmax_query_length = \"2d\"\nmax_query_bytes_read = \"1GB\"\n\
             [overrides.small]\nmax_line_size = 10\nmax_query_series = 3\n\
             [overrides.\"team-b\"]\nquery_timeout = \"5m\"\n",
        )
        .unwrap();
        assert_eq!(c.query.max_query_length, Duration::from_secs(2 * 86400));
        assert_eq!(c.query.max_query_bytes_read, 1_000_000_000);
        assert_eq!(c.query.max_query_series, 500);
        let small_i = &c.overrides.ingest["small"];
        assert_eq!(small_i.max_line_size, 10);
        // Keys not overridden come from [ingest], not from the built-in default.
        assert_eq!(small_i.max_label_names_per_series, 15);
        let small_q = &c.overrides.query["small"];
        assert_eq!(small_q.max_query_series, 3);
        assert_eq!(small_q.max_query_length, Duration::from_secs(2 * 86400));
        assert!(!c.overrides.ingest.contains_key("team-b"));
        assert_eq!(
            c.overrides.query["team-b"].query_timeout,
            Duration::from_secs(300)
        );
    }

    #[test]
    fn bad_overrides_are_errors() {
        let e = resolve_file("[overrides.a]\nmax_lines = 3\n").unwrap_err();
        assert!(e.to_string().contains("unknown limit `max_lines`"), "{e}");
        let e = resolve_file("[overrides.a]\nmax_recv_msg_size = 3\n").unwrap_err();
        assert!(e.to_string().contains("whole server"), "{e}");
        let e = resolve_file("[overrides.a]\nmax_query_length = \"soon\"\n").unwrap_err();
        assert!(e.to_string().contains("invalid duration"), "{e}");
        let e = resolve_file("[query]\nmax_query_lenght = \"1h\"\n").unwrap_err();
        assert!(e.to_string().contains("max_query_lenght"), "{e}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[storage]\ndata_dirr = \"x\"\n").unwrap();
        let err = Config::resolve(&ServeArgs {
            config: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("data_dirr"), "{err}");
        let err = Config::resolve(&ServeArgs {
            wal_sync: Some("sometimes".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("wal_sync"), "{err}");
    }

    #[test]
    fn query_pool_from_file_then_flag() {
        let c = Config::resolve(&ServeArgs::default()).unwrap();
        assert!(c.query_pool.max_concurrent >= 2);
        assert_eq!(c.query_pool.max_outstanding_per_tenant, 2048);
        assert_eq!(c.query_pool.nice, 10);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[query]\nmax_concurrent = 3\nmax_outstanding_requests = 7\nnice = 0\n",
        )
        .unwrap();
        let mut args = ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(
            (
                c.query_pool.max_concurrent,
                c.query_pool.max_outstanding_per_tenant,
                c.query_pool.nice
            ),
            (3, 7, 0)
        );
        args.query_max_concurrent = Some(1);
        assert_eq!(Config::resolve(&args).unwrap().query_pool.max_concurrent, 1);
        args.query_max_concurrent = Some(0);
        assert!(Config::resolve(&args).is_err());
        std::fs::write(&path, "[query]\nnice = 25\n").unwrap();
        let err = Config::resolve(&ServeArgs {
            config: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("nice"), "{err}");
    }
}
