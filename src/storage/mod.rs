//! Storage: everything that touches the data directory.
//!
//! This room owns the write-ahead log, the in-memory heads, the compressed
//! chunk format, the immutable per-block label index, flushing, WAL replay and
//! retention. It knows nothing of HTTP or LogQL syntax: callers speak to it
//! through the narrow interface below —
//!
//! * [`Store::append`]: add entries to streams, durable (in the WAL) on return;
//! * [`Store::select_series`]: which streams match a set of [`Matcher`]s in a
//!   time range;
//! * [`Store::read_stream`]: the entries (or only timestamps and sizes) of
//!   one stream over a half-open time range `[from, through)`, in time order,
//!   as decoded blocks that filters can scan without copying lines;
//! * label names/values and index statistics for the metadata endpoints.
//!
//! Times are Unix nanoseconds (`i64`) everywhere.
//!
//! Layout of the data directory and of every file is in `docs/storage.md`.

mod block;
mod chunk;
mod enc;
mod engine;
mod head;
mod index;
mod read;
mod wal;

use std::path::PathBuf;
use std::sync::Arc;

use crate::labels::Labels;

/// Counters of the storage engine for `/metrics`. Process-wide: one
/// process serves one data directory (it holds `data_dir/LOCK`).
#[derive(Debug)]
pub struct StorageMetrics {
    pub wal_bytes_written: std::sync::atomic::AtomicU64,
    pub wal_fsyncs: std::sync::atomic::AtomicU64,
    pub blocks_flushed: std::sync::atomic::AtomicU64,
    pub chunks_flushed: std::sync::atomic::AtomicU64,
    pub bytes_flushed: std::sync::atomic::AtomicU64,
    /// Damaged block files (or chunks in them) skipped by reads or start-up.
    pub corrupt_reads: std::sync::atomic::AtomicU64,
    /// Gauge: uncompressed bytes in heads (what `max_head_bytes` bounds).
    pub head_bytes: std::sync::atomic::AtomicU64,
    /// Gauge: heap bytes the heads hold (open-block buffers by capacity plus
    /// compressed blocks), as of the last background round.
    pub head_memory_bytes: std::sync::atomic::AtomicU64,
    /// Gauge: bytes of cut chunks in memory waiting for a flush, as of the
    /// last background round.
    pub cut_chunk_bytes: std::sync::atomic::AtomicU64,
}

/// The storage counters of this process.
pub static METRICS: StorageMetrics = StorageMetrics {
    wal_bytes_written: std::sync::atomic::AtomicU64::new(0),
    wal_fsyncs: std::sync::atomic::AtomicU64::new(0),
    blocks_flushed: std::sync::atomic::AtomicU64::new(0),
    chunks_flushed: std::sync::atomic::AtomicU64::new(0),
    bytes_flushed: std::sync::atomic::AtomicU64::new(0),
    corrupt_reads: std::sync::atomic::AtomicU64::new(0),
    head_bytes: std::sync::atomic::AtomicU64::new(0),
    head_memory_bytes: std::sync::atomic::AtomicU64::new(0),
    cut_chunk_bytes: std::sync::atomic::AtomicU64::new(0),
};

impl StorageMetrics {
    /// Appends the counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::sync::atomic::Ordering::Relaxed;
        let rows = [
            (
                "miniloki_wal_bytes_written_total",
                "Bytes written to the write-ahead log.",
                &self.wal_bytes_written,
            ),
            (
                "miniloki_wal_fsyncs_total",
                "fsync calls on WAL segments (one per group commit).",
                &self.wal_fsyncs,
            ),
            (
                "miniloki_blocks_flushed_total",
                "Blocks written to disk.",
                &self.blocks_flushed,
            ),
            (
                "miniloki_chunks_flushed_total",
                "Chunks written to disk in blocks.",
                &self.chunks_flushed,
            ),
            (
                "miniloki_bytes_flushed_total",
                "Bytes of blocks written to disk.",
                &self.bytes_flushed,
            ),
            (
                "miniloki_corrupt_reads_total",
                "Damaged block files or chunks skipped by reads (checksum mismatch, truncation).",
                &self.corrupt_reads,
            ),
        ];
        for (name, help, v) in rows {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Relaxed)
            ));
        }
        let gauges = [
            (
                "miniloki_head_bytes",
                "Uncompressed bytes held in stream heads.",
                &self.head_bytes,
            ),
            (
                "miniloki_head_memory_bytes",
                "Heap bytes held by stream heads (buffers and compressed blocks).",
                &self.head_memory_bytes,
            ),
            (
                "miniloki_cut_chunk_bytes",
                "Bytes of cut chunks in memory waiting to be flushed.",
                &self.cut_chunk_bytes,
            ),
        ];
        for (name, help, v) in gauges {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}\n",
                v.load(Relaxed)
            ));
        }
    }
}

/// How the WAL makes appends durable before [`Store::append`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every append waits for an fsync; concurrent appends share one fsync
    /// (group commit). The default.
    Batch,
    /// fsync at most every given interval; appends return after the write.
    Interval(std::time::Duration),
    /// Never fsync explicitly (the OS decides). For benchmarks and tests.
    None,
}

/// Chunk compression codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Zstd,
    Snappy,
    None,
}

/// Settings of the storage engine, resolved from flags and the config file.
#[derive(Clone, Debug)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    pub sync: SyncPolicy,
    pub codec: Codec,
    /// Cut a head into a chunk when its uncompressed size reaches this.
    pub chunk_target_size: usize,
    /// Uncompressed size of one block inside a chunk.
    pub block_size: usize,
    /// Cut a head that received nothing for this long.
    pub chunk_idle_period: std::time::Duration,
    /// Cut a head whose first entry is older than this (wall clock since the
    /// head was opened).
    pub max_chunk_age: std::time::Duration,
    /// How often cut chunks are written out as a block and the WAL truncated.
    pub flush_interval: std::time::Duration,
    /// Size of one WAL segment file before rotating.
    pub wal_segment_size: u64,
    /// Delete blocks whose newest entry is older than this; `None` keeps all.
    pub retention_period: Option<std::time::Duration>,
    /// Budget for the uncompressed bytes held in heads across all streams;
    /// past it the largest heads are cut early. 0 disables the budget.
    pub max_head_bytes: usize,
    /// Largest block compaction writes (sum of its sources' sizes): bigger
    /// merges would stall flushing for tens of seconds and hold their
    /// index in memory, for little gain in query speed.
    pub max_compacted_block_bytes: u64,
}

impl StorageConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StorageConfig {
            data_dir: data_dir.into(),
            sync: SyncPolicy::Batch,
            codec: Codec::Zstd,
            chunk_target_size: 1_572_864,
            block_size: 256 * 1024,
            chunk_idle_period: std::time::Duration::from_secs(30 * 60),
            max_chunk_age: std::time::Duration::from_secs(2 * 3600),
            flush_interval: std::time::Duration::from_secs(60),
            wal_segment_size: 128 * 1024 * 1024,
            retention_period: None,
            max_head_bytes: 128 << 20,
            max_compacted_block_bytes: 2 << 30,
        }
    }
}

/// One entry to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushEntry {
    pub ts: i64,
    pub line: String,
    /// Structured metadata, in the order given (names already normalised).
    pub metadata: Vec<(String, String)>,
}

/// Entries for one stream, as validated by ingestion.
#[derive(Clone, Debug)]
pub struct PushStream {
    pub labels: Labels,
    pub entries: Vec<PushEntry>,
}

/// What an append did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Entries stored.
    pub accepted: usize,
    /// Exact duplicates (same stream, timestamp, line and metadata) dropped.
    pub duplicates: usize,
    /// Streams that did not exist before this append.
    pub new_streams: usize,
}

/// Label matcher operators, as in a stream selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Eq,
    Neq,
    Re,
    Nre,
}

/// A compiled label matcher. Regexes are fully anchored, as in Loki.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    /// Compiled `^(?:value)$` for `Re`/`Nre`.
    re: Option<regex::Regex>,
}

impl Matcher {
    pub fn new(
        name: impl Into<String>,
        op: MatchOp,
        value: impl Into<String>,
    ) -> Result<Matcher, regex::Error> {
        let value = value.into();
        let re = match op {
            MatchOp::Re | MatchOp::Nre => Some(
                regex::RegexBuilder::new(&format!("^(?:{value})$"))
                    .size_limit(1 << 22)
                    .build()?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.into(),
            op,
            value,
            re,
        })
    }

    /// Whether a label value (empty when the label is absent) matches.
    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Eq => v == self.value,
            MatchOp::Neq => v != self.value,
            MatchOp::Re => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::Nre => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// Whether the matcher accepts a missing label (the empty value).
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    pub fn matches_labels(&self, l: &Labels) -> bool {
        self.matches(l.get(&self.name).unwrap_or(""))
    }
}

/// A stream found by [`Store::select_series`].
#[derive(Clone, Debug)]
pub struct SeriesRef {
    pub labels: Labels,
    /// Storage's handle for the stream within the tenant; opaque to callers.
    pub id: u64,
}

/// Which columns a reader needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadColumns {
    /// Timestamps and line sizes only: lines are not decompressed.
    TimestampsAndSizes,
    /// Everything: timestamps, lines and structured metadata.
    All,
}

/// Direction of a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

/// A decoded run of entries of one stream, sorted by timestamp ascending.
///
/// Lines sit back to back in one buffer so that literal filters can scan
/// them with memchr/memmem without copying. Index `i` runs over
/// `0..self.len()` in ascending time regardless of the read direction; a
/// backward reader yields blocks newest-first and the caller walks each block
/// from the end.
#[derive(Debug, Default, Clone)]
pub struct EntryBlock {
    pub timestamps: Vec<i64>,
    /// Length in bytes of each line (available for every [`ReadColumns`]).
    pub line_lens: Vec<u32>,
    /// All lines concatenated (empty with `TimestampsAndSizes`).
    pub lines: Vec<u8>,
    /// `line_offsets[i]..line_offsets[i+1]` is line `i` (len + 1 entries;
    /// empty with `TimestampsAndSizes`).
    pub line_offsets: Vec<u32>,
    /// Structured metadata of each entry (empty with `TimestampsAndSizes`).
    pub metadata: Vec<Vec<(Arc<str>, Arc<str>)>>,
}

impl EntryBlock {
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }
    pub fn line(&self, i: usize) -> &[u8] {
        &self.lines[self.line_offsets[i] as usize..self.line_offsets[i + 1] as usize]
    }
}

/// Work done by reads, for the `stats` object of query responses.
#[derive(Clone, Debug, Default)]
pub struct ReadStats {
    pub head_chunk_bytes: u64,
    pub head_chunk_lines: u64,
    pub chunks_ref: u64,
    pub chunks_downloaded: u64,
    pub compressed_bytes: u64,
    pub decompressed_bytes: u64,
    pub decompressed_lines: u64,
    pub structured_metadata_bytes: u64,
    pub duplicates: u64,
    /// Damaged data the read skipped, as warnings for the response.
    pub skipped: SkippedReads,
}

/// Warnings about damaged data a read skipped. Shared between clones, so a
/// stream iterator that finds damage while it runs (after
/// [`Store::read_stream`] returned) still reports into its query's stats.
#[derive(Clone, Debug, Default)]
pub struct SkippedReads(Arc<parking_lot::Mutex<Vec<String>>>);

impl SkippedReads {
    /// At most this many distinct warnings are kept per query.
    pub const MAX: usize = 20;

    /// Records one warning (duplicates are kept once).
    pub fn push(&self, warning: String) {
        let mut v = self.0.lock();
        if v.len() < Self::MAX && !v.contains(&warning) {
            v.push(warning);
        }
    }

    /// The warnings recorded so far.
    pub fn list(&self) -> Vec<String> {
        self.0.lock().clone()
    }

    /// Adds the warnings of `other` (no-op when both are the same log).
    pub fn merge(&self, other: &SkippedReads) {
        if Arc::ptr_eq(&self.0, &other.0) {
            return;
        }
        for w in other.list() {
            self.push(w);
        }
    }
}

/// Logs damaged data that a read skips, counts it in
/// `miniloki_corrupt_reads_total`, and records a warning in `sink`.
pub(crate) fn report_corrupt(sink: &SkippedReads, path: &std::path::Path, detail: &str) {
    tracing::warn!(
        message = "Skipping damaged data file.",
        path = %path.display(),
        problem = detail
    );
    METRICS
        .corrupt_reads
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    sink.push(format!(
        "skipped damaged data in {}: {detail}; results may be incomplete",
        path.display()
    ));
}

/// Totals for `/loki/api/v1/index/stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexStats {
    pub streams: u64,
    pub chunks: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// Errors of the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("data corruption in {path}: {detail}")]
    DataCorruption { path: PathBuf, detail: String },
    #[error("storage is shutting down")]
    ShuttingDown,
    #[error("invalid matcher: {0}")]
    InvalidMatcher(String),
    #[error("invalid tenant id: {0:?}")]
    InvalidTenant(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// The storage engine. Cheap to share behind an `Arc`; every method is
/// blocking (call from `spawn_blocking` in async code).
pub struct Store {
    engine: Arc<engine::Engine>,
    /// Stop flag of the background thread, with its wake-up.
    stop: Arc<(parking_lot::Mutex<bool>, parking_lot::Condvar)>,
    bg: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// An iterator over the blocks of one stream in a time range.
pub type BlockIter = Box<dyn Iterator<Item = Result<EntryBlock>> + Send>;

impl Store {
    /// Opens (creating if needed) the data directory and replays the WAL.
    pub fn open(cfg: StorageConfig) -> Result<Arc<Store>> {
        let engine = Arc::new(engine::Engine::open(cfg)?);
        let stop = Arc::new((parking_lot::Mutex::new(false), parking_lot::Condvar::new()));
        let (e, s) = (engine.clone(), stop.clone());
        let bg = std::thread::Builder::new()
            .name("storage-bg".into())
            .spawn(move || {
                let mut last_flush = std::time::Instant::now();
                let period = e.tick_period();
                loop {
                    {
                        let mut stopped = s.0.lock();
                        if !*stopped {
                            s.1.wait_for(&mut stopped, period);
                        }
                        if *stopped {
                            return;
                        }
                    }
                    e.tick(&mut last_flush);
                }
            })
            .map_err(|e| StorageError::Io {
                path: PathBuf::from("<thread>"),
                source: e,
            })?;
        Ok(Arc::new(Store {
            engine,
            stop,
            bg: parking_lot::Mutex::new(Some(bg)),
        }))
    }

    /// Appends entries; on `Ok` they are in the WAL under the sync policy.
    pub fn append(&self, tenant: &str, streams: Vec<PushStream>) -> Result<AppendOutcome> {
        let r = self.engine.append(tenant, streams);
        // Enough cut chunks wait in memory: wake the background thread to
        // flush them now rather than at its next round.
        if self.engine.flush_due() {
            self.stop.1.notify_one();
        }
        r
    }

    /// Streams of `tenant` matching all `matchers` that may have entries in
    /// `[from, through)`, sorted by labels.
    pub fn select_series(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        from: i64,
        through: i64,
    ) -> Result<Vec<SeriesRef>> {
        self.engine.select_series(tenant, matchers, from, through)
    }

    /// Entries of one stream in `[from, through)`, as blocks in `dir` order,
    /// duplicates removed.
    #[allow(clippy::too_many_arguments)]
    pub fn read_stream(
        &self,
        tenant: &str,
        series: &SeriesRef,
        from: i64,
        through: i64,
        dir: Direction,
        cols: ReadColumns,
        stats: &mut ReadStats,
    ) -> Result<BlockIter> {
        Ok(Box::new(self.engine.read_stream(
            tenant, series, from, through, dir, cols, stats,
        )?))
    }

    /// Warnings about blocks of `tenant` skipped at start-up as unreadable
    /// (every query of the tenant reports them).
    pub fn damaged_blocks(&self, tenant: &str) -> Vec<String> {
        self.engine.damaged_blocks(tenant)
    }

    /// Label names of streams matching `matchers` (all streams when empty)
    /// with entries in `[from, through)`, sorted.
    pub fn label_names(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        from: i64,
        through: i64,
    ) -> Result<Vec<String>> {
        self.engine.label_names(tenant, matchers, from, through)
    }

    /// Values of label `name` over matching streams, sorted.
    pub fn label_values(
        &self,
        tenant: &str,
        name: &str,
        matchers: &[Matcher],
        from: i64,
        through: i64,
    ) -> Result<Vec<String>> {
        self.engine
            .label_values(tenant, name, matchers, from, through)
    }

    /// Streams, chunks, entries and bytes of matching streams in the range.
    pub fn index_stats(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        from: i64,
        through: i64,
    ) -> Result<IndexStats> {
        self.engine.index_stats(tenant, matchers, from, through)
    }

    /// Number of streams with data in memory (the active streams) of a tenant.
    pub fn active_streams(&self, tenant: &str) -> usize {
        self.engine.active_streams(tenant)
    }

    /// Cuts every head and writes all cut chunks out as blocks now.
    pub fn flush(&self) -> Result<()> {
        self.engine.flush(true)
    }

    /// Merges small blocks of the same tenant and day now (the background
    /// thread does it after every periodic flush).
    pub fn compact(&self) -> Result<()> {
        self.engine.compact()
    }

    /// Deletes blocks past the retention period now (the background thread
    /// does it after every periodic flush).
    pub fn apply_retention(&self) -> Result<()> {
        self.engine.apply_retention()
    }

    /// Flushes and stops background work; later appends fail.
    pub fn shutdown(&self) -> Result<()> {
        self.stop_bg();
        self.engine.shutdown()
    }

    /// Tenants with any data.
    pub fn tenants(&self) -> Vec<String> {
        self.engine.tenants()
    }

    fn stop_bg(&self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(h) = self.bg.lock().take() {
            let _ = h.join();
        }
    }
}

impl Drop for Store {
    /// Stops the background thread without flushing: the WAL has everything.
    fn drop(&mut self) {
        self.stop_bg();
    }
}

/// Fuzzing hook (see `crate::fuzz`): parses `data` as one encoded chunk
/// and fully decodes each of its blocks. Returns the entries decoded or the
/// decode error's text; must never panic on any input.
pub fn fuzz_decode_chunk(data: &[u8]) -> std::result::Result<usize, String> {
    let c = chunk::Chunk::parse(bytes::Bytes::copy_from_slice(data)).map_err(|e| e.to_string())?;
    let mut out = EntryBlock::default();
    let mut interner = chunk::Interner::default();
    let mut n = 0;
    for b in &c.blocks {
        chunk::decode_block(c.codec, &b.data, ReadColumns::All, &mut out, &mut interner)
            .map_err(|e| e.to_string())?;
        n += out.timestamps.len();
    }
    Ok(n)
}

/// Fuzzing hook (see `crate::fuzz`): decodes `data` as one block of a
/// chunk compressed with `codec` (0 zstd, 1 snappy, other none), all
/// columns. Returns the entries decoded or the decode error's text.
pub fn fuzz_decode_block(codec: u8, data: &[u8]) -> std::result::Result<usize, String> {
    let codec = match codec {
        0 => Codec::Zstd,
        1 => Codec::Snappy,
        _ => Codec::None,
    };
    let mut out = EntryBlock::default();
    let mut interner = chunk::Interner::default();
    chunk::decode_block(codec, data, ReadColumns::All, &mut out, &mut interner)
        .map_err(|e| e.to_string())?;
    Ok(out.timestamps.len())
}

/// Fuzzing hook (see `crate::fuzz`): opens `data` as a block's label index
/// and reads every series, label name, value and posting list through it.
/// Returns the series count or the decode error's text.
pub fn fuzz_decode_index(data: &[u8]) -> std::result::Result<usize, String> {
    let ix = index::IndexReader::open(data).map_err(|e| e.to_string())?;
    let n = ix.series_count();
    for id in 0..n.min(10_000) as u32 {
        let (labels, _) = ix.series(id).map_err(|e| e.to_string())?;
        let _ = ix.find(&labels).map_err(|e| e.to_string())?;
    }
    for name in ix.label_names().into_iter().take(1_000) {
        for value in ix.label_values(name).into_iter().take(1_000) {
            ix.postings(name, value).map_err(|e| e.to_string())?;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
