//! The engine behind [`super::Store`]: tenants, their in-memory streams
//! (head plus cut-but-unflushed chunks) and on-disk blocks; append through
//! the WAL, replay, flushing, WAL truncation, retention and reads.
//!
//! Locking: `gate` is held shared by every append from WAL write to head
//! update, and exclusively only to cut all heads with a WAL rotation, or to
//! compute the WAL truncation point, so no record can be durable in the WAL
//! yet invisible to that computation. Streams each have their own mutex.
//! Readers look at streams before blocks, and flushing adds a block before
//! it drops the chunks it holds, so a concurrent read never misses data (it
//! may see both copies, which the merge drops as duplicates).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use super::block::{compact, day_of, open_blocks, write_block, BlockReader};
use super::chunk::{decode_block_raw, encode_metadata, Chunk, EncodedBlock, RawEntries};
use super::enc::{
    escape_tenant, put_bytes, put_uvarint, put_varint, unescape_tenant, valid_tenant, Reader,
};
use super::head::Head;
use super::read::{MergeIter, Source, SrcBlock, MEMORY_ORIGIN};
use super::wal::{self, Wal, REC_PUSH};
use super::*;
use crate::units::now_ns;

struct CutChunk {
    chunk: Arc<Chunk>,
    /// Lowest WAL segment that may hold its entries.
    min_seg: u64,
}

struct StreamState {
    head: Head,
    head_min_seg: u64,
    head_opened: Instant,
    last_append: Instant,
    cut: Vec<CutChunk>,
    /// The part of `head.raw_bytes` counted in [`Engine::head_bytes`].
    accounted: usize,
    /// Set when the stream left the tenant's map; appenders then look again.
    removed: bool,
}

impl StreamState {
    fn is_empty(&self) -> bool {
        self.head.is_empty() && self.cut.is_empty()
    }
    fn overlaps(&self, from: i64, through: i64) -> bool {
        (!self.head.is_empty() && self.head.min_ts < through && self.head.max_ts >= from)
            || self
                .cut
                .iter()
                .any(|c| c.chunk.min_ts < through && c.chunk.max_ts >= from)
    }
}

struct Stream {
    labels: Labels,
    st: Mutex<StreamState>,
}

struct Tenant {
    dir: PathBuf,
    /// Streams in memory by `Labels::stable_hash`, with collisions side by side.
    streams: RwLock<HashMap<u64, Vec<Arc<Stream>>>>,
    blocks: RwLock<Vec<Arc<BlockReader>>>,
    /// Warnings about blocks skipped at start-up because they could not be
    /// opened; every read of the tenant reports them.
    damaged: Vec<String>,
}

impl Tenant {
    fn find(&self, labels: &Labels, hash: u64) -> Option<Arc<Stream>> {
        self.streams
            .read()
            .get(&hash)?
            .iter()
            .find(|s| s.labels == *labels)
            .cloned()
    }
    fn all_streams(&self) -> Vec<Arc<Stream>> {
        self.streams.read().values().flatten().cloned().collect()
    }
    fn blocks_in(&self, from: i64, through: i64) -> Vec<Arc<BlockReader>> {
        self.blocks
            .read()
            .iter()
            .filter(|b| b.overlaps(from, through))
            .cloned()
            .collect()
    }
}

pub struct Engine {
    cfg: StorageConfig,
    /// Holds an exclusive `flock` on `data_dir/LOCK` for the engine's life,
    /// so two processes never share a data directory.
    _lock: std::fs::File,
    wal: Wal,
    gate: RwLock<()>,
    tenants: RwLock<HashMap<String, Arc<Tenant>>>,
    shutting_down: AtomicBool,
    flush_lock: Mutex<()>,
    /// Encoded bytes of chunks cut since the last flush started. The
    /// background thread flushes early once this passes
    /// [`FLUSH_PENDING_BYTES`], so a fast ingest does not hold a whole
    /// `flush_interval` of chunks in memory.
    cut_pending_bytes: std::sync::atomic::AtomicU64,
    /// Uncompressed bytes in all heads, as settled after each batch of
    /// appends to a stream (see [`Engine::settle`]).
    head_bytes: AtomicUsize,
    /// Held by the one appender that enforces the head budget for everyone.
    budget_lock: Mutex<()>,
    /// When the pages of the mapped chunk files were last released.
    pages_released: Mutex<Instant>,
}

/// How often the pages queries touched in mapped chunk files are dropped
/// from the process (they stay in the page cache): this bounds the
/// file-backed part of RSS to what queries read in that long, instead of
/// every page of every block read since it was opened.
const RELEASE_MAPPED_EVERY: Duration = Duration::from_secs(10);

/// Cut-but-unflushed chunk bytes that trigger a flush before the interval.
const FLUSH_PENDING_BYTES: u64 = 32 << 20;

fn corrupt_mem(e: impl std::fmt::Display) -> StorageError {
    StorageError::DataCorruption {
        path: PathBuf::from("<memory>"),
        detail: e.to_string(),
    }
}

fn io_err(path: &Path, source: std::io::Error) -> StorageError {
    StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Takes an exclusive lock on `dir/LOCK`.
fn lock_dir(dir: &Path) -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = dir.join("LOCK");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_err(&path, e))?;
    // Safety: flock on a valid, owned file descriptor.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(io_err(
            &path,
            std::io::Error::new(
                e.kind(),
                format!("data directory is in use by another process: {e}"),
            ),
        ));
    }
    Ok(f)
}

/// Encodes a push record's payload (see `docs/storage.md`).
fn encode_push(buf: &mut Vec<u8>, tenant: &str, streams: &[PushStream]) {
    put_bytes(buf, tenant.as_bytes());
    put_uvarint(buf, streams.len() as u64);
    for s in streams {
        put_uvarint(buf, s.labels.len() as u64);
        for (k, v) in s.labels.iter() {
            put_bytes(buf, k.as_bytes());
            put_bytes(buf, v.as_bytes());
        }
        put_uvarint(buf, s.entries.len() as u64);
        for e in &s.entries {
            put_varint(buf, e.ts);
            put_bytes(buf, e.line.as_bytes());
            encode_metadata(&e.metadata, buf);
        }
    }
}

impl Engine {
    pub fn open(cfg: StorageConfig) -> Result<Engine> {
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| io_err(&cfg.data_dir, e))?;
        let lock = lock_dir(&cfg.data_dir)?;
        let tdir = cfg.data_dir.join("tenants");
        std::fs::create_dir_all(&tdir).map_err(|e| io_err(&tdir, e))?;
        let mut tenants = HashMap::new();
        for e in std::fs::read_dir(&tdir).map_err(|e| io_err(&tdir, e))? {
            let e = e.map_err(|e| io_err(&tdir, e))?;
            let Some(name) = e.file_name().to_str().and_then(unescape_tenant) else {
                continue;
            };
            let dir = e.path();
            let mut damaged = Vec::new();
            let blocks = open_blocks(&dir.join("blocks"), &mut damaged)?;
            tenants.insert(
                name,
                Arc::new(Tenant {
                    dir,
                    streams: RwLock::default(),
                    blocks: RwLock::new(blocks),
                    damaged,
                }),
            );
        }
        let wal_dir = cfg.data_dir.join("wal");
        std::fs::create_dir_all(&wal_dir).map_err(|e| io_err(&wal_dir, e))?;
        // New records go to a fresh segment after every existing one; replay
        // then rebuilds the heads from the old segments.
        let next = wal::list_segments(&wal_dir)?.last().map_or(1, |m| m + 1);
        let wal = Wal::create(&wal_dir, next, cfg.wal_segment_size, cfg.sync)?;
        let eng = Engine {
            _lock: lock,
            wal,
            cfg,
            gate: RwLock::new(()),
            tenants: RwLock::new(tenants),
            shutting_down: AtomicBool::new(false),
            flush_lock: Mutex::new(()),
            cut_pending_bytes: std::sync::atomic::AtomicU64::new(0),
            head_bytes: AtomicUsize::new(0),
            budget_lock: Mutex::new(()),
            pages_released: Mutex::new(Instant::now()),
        };
        let started = Instant::now();
        let mut records = 0u64;
        let segs = wal::replay(&wal_dir, |seg, _typ, payload| {
            records += 1;
            eng.replay_record(seg, payload)
        })?;
        if records > 0 {
            tracing::info!(
                message = "Replayed WAL.",
                segments = segs.len(),
                records,
                elapsed_ms = started.elapsed().as_millis() as u64
            );
            eng.drop_replayed_duplicates()?;
        }
        Ok(eng)
    }

    /// After a crash, a kept WAL segment may hold entries that a block
    /// already has (the segment also held entries of other, unflushed
    /// streams). Replay put them back into the heads; drop them again so
    /// they are not flushed twice.
    fn drop_replayed_duplicates(&self) -> Result<()> {
        let mut dropped = 0usize;
        for t in self.all_tenants() {
            if t.blocks.read().is_empty() {
                continue;
            }
            for s in t.all_streams() {
                let mut st = s.st.lock();
                let (min, max) = {
                    let mut r = (i64::MAX, i64::MIN);
                    if !st.head.is_empty() {
                        r = (st.head.min_ts, st.head.max_ts);
                    }
                    for c in &st.cut {
                        r = (r.0.min(c.chunk.min_ts), r.1.max(c.chunk.max_ts));
                    }
                    r
                };
                if min > max {
                    continue;
                }
                // Entries of this stream already in blocks, over the range.
                let mut flushed = RawEntries::default();
                // Damaged block data is skipped here (reads report it).
                let skipped = SkippedReads::default();
                for b in t.blocks_in(min, max.saturating_add(1)) {
                    let ipath = b.dir.join("index");
                    let refs = match b.index.find(&s.labels).and_then(|id| match id {
                        Some(id) => b.index.series(id).map(|(_, refs)| refs),
                        None => Ok(Vec::new()),
                    }) {
                        Ok(refs) => refs,
                        Err(e) => {
                            report_corrupt(&skipped, &ipath, &e.to_string());
                            continue;
                        }
                    };
                    for r in refs
                        .iter()
                        .filter(|r| overlaps(r.min_ts, r.max_ts, min, max.saturating_add(1)))
                    {
                        let c = match b.chunk(r) {
                            Ok(c) => c,
                            Err(e) => {
                                report_corrupt(&skipped, &b.chunks_path, &e.to_string());
                                continue;
                            }
                        };
                        for blk in &c.blocks {
                            let before = flushed.len();
                            if let Err(e) = decode_block_raw(c.codec, &blk.data, &mut flushed) {
                                flushed.truncate(before);
                                report_corrupt(&skipped, &b.chunks_path, &e.to_string());
                            }
                        }
                    }
                }
                if flushed.is_empty() {
                    continue;
                }
                let seen: std::collections::HashSet<(i64, &[u8], &[u8])> = (0..flushed.len())
                    .map(|i| (flushed.ts[i], flushed.line(i), flushed.md(i)))
                    .collect();
                // Everything of the stream in memory, decoded.
                let mut mem = RawEntries::default();
                let mut min_seg = st.head_min_seg;
                self.cut_locked(&mut st);
                for c in std::mem::take(&mut st.cut) {
                    min_seg = min_seg.min(c.min_seg);
                    for blk in &c.chunk.blocks {
                        decode_block_raw(c.chunk.codec, &blk.data, &mut mem)
                            .map_err(corrupt_mem)?;
                    }
                }
                self.begin(&mut st, min_seg);
                for i in 0..mem.len() {
                    if seen.contains(&(mem.ts[i], mem.line(i), mem.md(i))) {
                        dropped += 1;
                    } else {
                        self.add(&mut st, min_seg, mem.ts[i], mem.line(i), mem.md(i));
                    }
                }
                self.settle(&mut st);
            }
        }
        if dropped > 0 {
            tracing::info!(
                message = "Dropped replayed entries already in blocks.",
                entries = dropped
            );
        }
        Ok(())
    }

    fn tenant(&self, name: &str) -> Option<Arc<Tenant>> {
        self.tenants.read().get(name).cloned()
    }

    fn tenant_or_create(&self, name: &str) -> Arc<Tenant> {
        if let Some(t) = self.tenant(name) {
            return t;
        }
        let mut w = self.tenants.write();
        w.entry(name.to_string())
            .or_insert_with(|| {
                let dir = self.cfg.data_dir.join("tenants").join(escape_tenant(name));
                Arc::new(Tenant {
                    dir,
                    streams: RwLock::default(),
                    blocks: RwLock::default(),
                    damaged: Vec::new(),
                })
            })
            .clone()
    }

    /// Runs `f` on the locked state of a stream, creating it if needed.
    /// Returns whether the stream was created.
    fn with_stream<R>(
        &self,
        t: &Tenant,
        labels: &Labels,
        f: impl FnOnce(&mut StreamState) -> R,
    ) -> (R, bool) {
        let hash = labels.stable_hash();
        let mut f = Some(f);
        loop {
            let mut created = false;
            let s = match t.find(labels, hash) {
                Some(s) => s,
                None => {
                    let mut w = t.streams.write();
                    let v = w.entry(hash).or_default();
                    match v.iter().find(|s| s.labels == *labels) {
                        Some(s) => s.clone(),
                        None => {
                            let now = Instant::now();
                            let s = Arc::new(Stream {
                                labels: labels.clone(),
                                st: Mutex::new(StreamState {
                                    head: Head::default(),
                                    head_min_seg: u64::MAX,
                                    head_opened: now,
                                    last_append: now,
                                    cut: Vec::new(),
                                    accounted: 0,
                                    removed: false,
                                }),
                            });
                            v.push(s.clone());
                            created = true;
                            s
                        }
                    }
                }
            };
            let mut st = s.st.lock();
            if st.removed {
                continue;
            }
            if let Some(f) = f.take() {
                return (f(&mut st), created);
            }
        }
    }

    fn cut_locked(&self, st: &mut StreamState) {
        let min_seg = st.head_min_seg;
        self.head_bytes
            .fetch_sub(std::mem::take(&mut st.accounted), Ordering::Relaxed);
        match st.head.cut(self.cfg.codec, self.cfg.block_size) {
            Ok(Some(c)) => {
                self.cut_pending_bytes
                    .fetch_add(c.data.len() as u64, Ordering::Relaxed);
                st.cut.push(CutChunk {
                    chunk: Arc::new(c),
                    min_seg,
                })
            }
            Ok(None) => {}
            // Only reachable through a bug: the head's own blocks did not decode.
            Err(error) => tracing::error!(message = "Failed to cut head; entries lost.", %error),
        }
        st.head_min_seg = u64::MAX;
    }

    /// Counts what the head of `st` grew by since the last call in the
    /// engine-wide head size (once per batch, not per entry: the counter is
    /// shared by every appending thread).
    fn settle(&self, st: &mut StreamState) {
        let grown = st.head.raw_bytes.saturating_sub(st.accounted);
        if grown > 0 {
            st.accounted = st.head.raw_bytes;
            self.head_bytes.fetch_add(grown, Ordering::Relaxed);
        }
    }

    /// Whether enough cut chunks wait in memory for an early flush.
    pub fn flush_due(&self) -> bool {
        self.cut_pending_bytes.load(Ordering::Relaxed) >= FLUSH_PENDING_BYTES
    }

    /// Prepares a stream's head for entries from WAL segment `seg`.
    fn begin(&self, st: &mut StreamState, seg: u64) {
        let now = Instant::now();
        if st.head.is_empty() {
            st.head_opened = now;
        }
        st.last_append = now;
        st.head_min_seg = st.head_min_seg.min(seg);
    }

    /// Adds one entry to a stream's head (after [`Engine::begin`]); `false`
    /// for a dropped duplicate. Cuts the head once it reaches its target size.
    fn add(&self, st: &mut StreamState, seg: u64, ts: i64, line: &[u8], md: &[u8]) -> bool {
        let ok = st
            .head
            .append(ts, line, md, self.cfg.codec, self.cfg.block_size);
        if st.head.raw_bytes >= self.cfg.chunk_target_size {
            self.cut_locked(st);
            st.head_min_seg = seg;
            st.head_opened = st.last_append;
        }
        ok
    }

    fn replay_record(&self, seg: u64, payload: &[u8]) -> std::result::Result<(), String> {
        let mut r = Reader::new(payload);
        let tenant = r.str().map_err(|e| e.to_string())?;
        if !valid_tenant(tenant) {
            return Err("invalid tenant".into());
        }
        let t = self.tenant_or_create(tenant);
        let n = r.len(r.remaining()).map_err(|e| e.to_string())?;
        for _ in 0..n {
            let (labels, raw) = decode_stream(&mut r).map_err(|e| e.to_string())?;
            self.with_stream(&t, &labels, |st| {
                self.begin(st, seg);
                for i in 0..raw.len() {
                    self.add(st, seg, raw.ts[i], raw.line(i), raw.md(i));
                }
                self.settle(st);
            });
        }
        if !r.is_empty() {
            return Err("trailing bytes".into());
        }
        Ok(())
    }

    pub fn append(&self, tenant: &str, streams: Vec<PushStream>) -> Result<AppendOutcome> {
        if !valid_tenant(tenant) {
            return Err(StorageError::InvalidTenant(tenant.to_string()));
        }
        let _g = self.gate.read();
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(StorageError::ShuttingDown);
        }
        let mut out = AppendOutcome::default();
        if streams.iter().all(|s| s.entries.is_empty()) {
            return Ok(out);
        }
        let seg = self
            .wal
            .append(REC_PUSH, |buf| encode_push(buf, tenant, &streams))?;
        let t = self.tenant_or_create(tenant);
        let mut md = Vec::with_capacity(64);
        for s in &streams {
            if s.entries.is_empty() {
                continue;
            }
            let ((acc, dup), created) = self.with_stream(&t, &s.labels, |st| {
                self.begin(st, seg);
                let (mut acc, mut dup) = (0, 0);
                for e in &s.entries {
                    md.clear();
                    encode_metadata(&e.metadata, &mut md);
                    if self.add(st, seg, e.ts, e.line.as_bytes(), &md) {
                        acc += 1;
                    } else {
                        dup += 1;
                    }
                }
                self.settle(st);
                (acc, dup)
            });
            out.accepted += acc;
            out.duplicates += dup;
            out.new_streams += created as usize;
        }
        // Keep the heads within their budget here rather than at the next
        // background round: a fast ingest would otherwise overshoot it by up
        // to a second of data. The appender that finds the budget exceeded
        // compresses the largest heads itself, which also slows the ingest
        // down to what compression can keep up with.
        if self.over_budget() {
            if let Some(_b) = self.budget_lock.try_lock() {
                self.enforce_head_budget();
            }
        }
        Ok(out)
    }
}

/// Decodes one stream of a push record into labels and raw entries.
fn decode_stream(r: &mut Reader<'_>) -> super::enc::DecodeResult<(Labels, RawEntries)> {
    let nl = r.len(r.remaining())?;
    let mut pairs = Vec::with_capacity(nl);
    for _ in 0..nl {
        let k = r.str()?;
        let v = r.str()?;
        pairs.push((k.to_string(), v.to_string()));
    }
    let labels = Labels::from_pairs(pairs);
    let ne = r.len(r.remaining())?;
    let mut raw = RawEntries::default();
    for _ in 0..ne {
        let ts = r.varint()?;
        let line = r.len_bytes()?;
        let before = *r;
        let n = r.len(r.remaining())?;
        for _ in 0..n {
            r.str()?;
            r.str()?;
        }
        let md_len = r.pos() - before.pos();
        let md = before.clone().bytes(md_len)?;
        raw.push(ts, line, md);
    }
    Ok((labels, raw))
}

fn overlaps(min: i64, max: i64, from: i64, through: i64) -> bool {
    min < through && max >= from
}

/// What a visit reports per chunk of a matching stream.
struct ChunkInfo {
    entries: u64,
    bytes: u64,
}

/// Builds a sorted, range-trimmed block from a head's open block.
fn open_block_entries(
    raw: &RawEntries,
    from: i64,
    through: i64,
    cols: ReadColumns,
) -> std::result::Result<EntryBlock, StorageError> {
    let mut idx: Vec<usize> = (0..raw.len())
        .filter(|&i| raw.ts[i] >= from && raw.ts[i] < through)
        .collect();
    idx.sort_by_key(|&i| raw.ts[i]);
    let mut b = EntryBlock::default();
    let all = cols == ReadColumns::All;
    if all {
        b.line_offsets.push(0);
    }
    for i in idx {
        b.timestamps.push(raw.ts[i]);
        let line = raw.line(i);
        b.line_lens.push(line.len() as u32);
        if all {
            b.lines.extend_from_slice(line);
            b.line_offsets.push(b.lines.len() as u32);
            let mut r = Reader::new(raw.md(i));
            let n = r.len(r.remaining()).map_err(corrupt_mem)?;
            let mut md = Vec::with_capacity(n);
            for _ in 0..n {
                let k = r.str().map_err(corrupt_mem)?;
                let v = r.str().map_err(corrupt_mem)?;
                md.push((Arc::from(k), Arc::from(v)));
            }
            b.metadata.push(md);
        }
    }
    Ok(b)
}

impl Engine {
    /// Calls `f` for every chunk (a head counts as one) of every stream of
    /// `t` matching `matchers` with data in `[from, through)`. Streams are
    /// visited before blocks (see the module comment).
    fn visit(
        &self,
        t: &Tenant,
        matchers: &[Matcher],
        from: i64,
        through: i64,
        f: &mut dyn FnMut(&Labels, Option<ChunkInfo>),
    ) -> Result<()> {
        for s in t.all_streams() {
            if !matchers.iter().all(|m| m.matches_labels(&s.labels)) {
                continue;
            }
            let st = s.st.lock();
            if !st.head.is_empty() && overlaps(st.head.min_ts, st.head.max_ts, from, through) {
                f(
                    &s.labels,
                    Some(ChunkInfo {
                        entries: st.head.entries as u64,
                        bytes: st.head.raw_bytes as u64,
                    }),
                );
            }
            for c in &st.cut {
                if overlaps(c.chunk.min_ts, c.chunk.max_ts, from, through) {
                    let bytes = c.chunk.blocks.iter().map(|b| b.meta.raw as u64).sum();
                    f(
                        &s.labels,
                        Some(ChunkInfo {
                            entries: c.chunk.entries as u64,
                            bytes,
                        }),
                    );
                }
            }
        }
        for b in t.blocks_in(from, through) {
            let ipath = b.dir.join("index");
            let ids = match b.index.select(matchers) {
                Ok(ids) => ids,
                Err(e) => {
                    report_corrupt(&SkippedReads::default(), &ipath, &e.to_string());
                    continue;
                }
            };
            for id in ids {
                let (l, refs) = match b.index.series(id) {
                    Ok(x) => x,
                    Err(e) => {
                        report_corrupt(&SkippedReads::default(), &ipath, &e.to_string());
                        continue;
                    }
                };
                for r in refs
                    .iter()
                    .filter(|r| overlaps(r.min_ts, r.max_ts, from, through))
                {
                    f(
                        &l,
                        Some(ChunkInfo {
                            entries: r.entries,
                            bytes: r.raw,
                        }),
                    );
                }
            }
        }
        Ok(())
    }

    pub fn select_series(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        from: i64,
        through: i64,
    ) -> Result<Vec<SeriesRef>> {
        let Some(t) = self.tenant(tenant) else {
            return Ok(Vec::new());
        };
        let mut found = BTreeSet::new();
        self.visit(&t, matchers, from, through, &mut |l, _| {
            if !found.contains(l) {
                found.insert(l.clone());
            }
        })?;
        Ok(found
            .into_iter()
            .map(|labels| SeriesRef {
                id: labels.stable_hash(),
                labels,
            })
            .collect())
    }

    pub fn index_stats(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        from: i64,
        through: i64,
    ) -> Result<IndexStats> {
        let Some(t) = self.tenant(tenant) else {
            return Ok(IndexStats::default());
        };
        let mut streams = BTreeSet::new();
        let mut out = IndexStats::default();
        self.visit(&t, matchers, from, through, &mut |l, c| {
            if !streams.contains(l) {
                streams.insert(l.clone());
            }
            if let Some(c) = c {
                out.chunks += 1;
                out.entries += c.entries;
                out.bytes += c.bytes;
            }
        })?;
        out.streams = streams.len() as u64;
        Ok(out)
    }

    pub fn label_names(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        from: i64,
        through: i64,
    ) -> Result<Vec<String>> {
        let Some(t) = self.tenant(tenant) else {
            return Ok(Vec::new());
        };
        let mut names = BTreeSet::new();
        if matchers.is_empty() {
            for s in t.all_streams() {
                if s.st.lock().overlaps(from, through) {
                    names.extend(s.labels.iter().map(|(k, _)| k.to_string()));
                }
            }
            for b in t.blocks_in(from, through) {
                names.extend(b.index.label_names().into_iter().map(String::from));
            }
        } else {
            for s in self.select_series(tenant, matchers, from, through)? {
                names.extend(s.labels.iter().map(|(k, _)| k.to_string()));
            }
        }
        Ok(names.into_iter().collect())
    }

    pub fn label_values(
        &self,
        tenant: &str,
        name: &str,
        matchers: &[Matcher],
        from: i64,
        through: i64,
    ) -> Result<Vec<String>> {
        let Some(t) = self.tenant(tenant) else {
            return Ok(Vec::new());
        };
        let mut vals = BTreeSet::new();
        if matchers.is_empty() {
            for s in t.all_streams() {
                if let Some(v) = s.labels.get(name) {
                    if s.st.lock().overlaps(from, through) {
                        vals.insert(v.to_string());
                    }
                }
            }
            for b in t.blocks_in(from, through) {
                vals.extend(b.index.label_values(name).into_iter().map(String::from));
            }
        } else {
            for s in self.select_series(tenant, matchers, from, through)? {
                if let Some(v) = s.labels.get(name) {
                    vals.insert(v.to_string());
                }
            }
        }
        Ok(vals.into_iter().collect())
    }

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
    ) -> Result<MergeIter> {
        let mut sources = Vec::new();
        let codec = self.cfg.codec;
        let mem = Arc::new(PathBuf::from(MEMORY_ORIGIN));
        let Some(t) = self.tenant(tenant) else {
            return Ok(MergeIter::new(sources, from, through, dir, cols));
        };
        for w in &t.damaged {
            stats.skipped.push(w.clone());
        }
        let chunk_source = |c: &Chunk, origin: &Arc<PathBuf>, stats: &mut ReadStats| {
            stats.chunks_ref += 1;
            stats.chunks_downloaded += 1;
            let mut blocks = Vec::new();
            for b in c
                .blocks
                .iter()
                .filter(|b| overlaps(b.meta.min_ts, b.meta.max_ts, from, through))
            {
                stats.compressed_bytes += b.data.len() as u64;
                stats.decompressed_bytes += b.meta.raw as u64;
                stats.decompressed_lines += b.meta.entries as u64;
                blocks.push(SrcBlock::Encoded(b.clone()));
            }
            Source {
                codec: c.codec,
                blocks,
                min_ts: c.min_ts,
                max_ts: c.max_ts,
                origin: origin.clone(),
            }
        };
        if let Some(s) = t.find(&series.labels, series.labels.stable_hash()) {
            let st = s.st.lock();
            if !st.head.is_empty() && overlaps(st.head.min_ts, st.head.max_ts, from, through) {
                for b in st
                    .head
                    .blocks
                    .iter()
                    .filter(|b| overlaps(b.meta.min_ts, b.meta.max_ts, from, through))
                {
                    stats.head_chunk_bytes += b.meta.raw as u64;
                    stats.head_chunk_lines += b.meta.entries as u64;
                    let src: &EncodedBlock = b;
                    sources.push(Source {
                        codec,
                        blocks: vec![SrcBlock::Encoded(src.clone())],
                        min_ts: b.meta.min_ts,
                        max_ts: b.meta.max_ts,
                        origin: mem.clone(),
                    });
                }
                let eb = open_block_entries(&st.head.cur, from, through, cols)?;
                if let (Some(&min_ts), Some(&max_ts)) =
                    (eb.timestamps.first(), eb.timestamps.last())
                {
                    stats.head_chunk_lines += eb.len() as u64;
                    stats.head_chunk_bytes += eb.line_lens.iter().map(|&l| l as u64).sum::<u64>();
                    sources.push(Source {
                        codec,
                        blocks: vec![SrcBlock::Decoded(eb)],
                        min_ts,
                        max_ts,
                        origin: mem.clone(),
                    });
                }
            }
            for c in st
                .cut
                .iter()
                .filter(|c| overlaps(c.chunk.min_ts, c.chunk.max_ts, from, through))
            {
                sources.push(chunk_source(&c.chunk, &mem, stats));
            }
        }
        for b in t.blocks_in(from, through) {
            let ipath = b.dir.join("index");
            let refs = match b.index.find(&series.labels).and_then(|id| match id {
                Some(id) => b.index.series(id).map(|(_, refs)| refs),
                None => Ok(Vec::new()),
            }) {
                Ok(refs) => refs,
                Err(e) => {
                    report_corrupt(&stats.skipped, &ipath, &e.to_string());
                    continue;
                }
            };
            let origin = Arc::new(b.chunks_path.clone());
            for r in refs
                .iter()
                .filter(|r| overlaps(r.min_ts, r.max_ts, from, through))
            {
                match b.chunk(r) {
                    Ok(c) => sources.push(chunk_source(&c, &origin, stats)),
                    // A damaged chunk is skipped, the rest of the stream read.
                    Err(e) => report_corrupt(&stats.skipped, &b.chunks_path, &e.to_string()),
                }
            }
        }
        let mut it = MergeIter::new(sources, from, through, dir, cols);
        it.skipped = stats.skipped.clone();
        Ok(it)
    }

    pub fn damaged_blocks(&self, tenant: &str) -> Vec<String> {
        self.tenant(tenant)
            .map(|t| t.damaged.clone())
            .unwrap_or_default()
    }

    pub fn active_streams(&self, tenant: &str) -> usize {
        self.tenant(tenant)
            .map_or(0, |t| t.streams.read().values().map(|v| v.len()).sum())
    }

    pub fn tenants(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .tenants
            .read()
            .iter()
            .filter(|(_, t)| !t.streams.read().is_empty() || !t.blocks.read().is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }

    fn all_tenants(&self) -> Vec<Arc<Tenant>> {
        self.tenants.read().values().cloned().collect()
    }

    /// Cuts heads that idled for `chunk_idle_period` or are older than
    /// `max_chunk_age` (all heads with `all`).
    pub fn cut_heads(&self, all: bool) {
        let now = Instant::now();
        let (mut head_mem, mut cut_mem) = (0usize, 0usize);
        for t in self.all_tenants() {
            for s in t.all_streams() {
                let mut st = s.st.lock();
                if !st.head.is_empty() {
                    let idle = now.duration_since(st.last_append) >= self.cfg.chunk_idle_period;
                    let old = now.duration_since(st.head_opened) >= self.cfg.max_chunk_age;
                    if all || idle || old {
                        self.cut_locked(&mut st);
                    }
                }
                head_mem += st.head.memory_bytes();
                cut_mem += st.cut.iter().map(|c| c.chunk.data.len()).sum::<usize>();
            }
        }
        {
            use std::sync::atomic::Ordering::Relaxed;
            let m = &super::METRICS;
            m.head_bytes
                .store(self.head_bytes.load(Relaxed) as u64, Relaxed);
            m.head_memory_bytes.store(head_mem as u64, Relaxed);
            m.cut_chunk_bytes.store(cut_mem as u64, Relaxed);
        }
        if self.over_budget() {
            let _b = self.budget_lock.lock();
            self.enforce_head_budget();
        }
    }

    fn over_budget(&self) -> bool {
        let budget = self.cfg.max_head_bytes;
        budget > 0 && self.head_bytes.load(Ordering::Relaxed) > budget
    }

    /// Over the head memory budget (many streams written at once): cuts the
    /// largest heads into compressed chunks until a quarter under it. Called
    /// with `budget_lock` held.
    fn enforce_head_budget(&self) {
        let budget = self.cfg.max_head_bytes;
        if !self.over_budget() {
            return;
        }
        let mut open: Vec<(usize, Arc<Stream>)> = Vec::new();
        for t in self.all_tenants() {
            for s in t.all_streams() {
                let size = s.st.lock().head.raw_bytes;
                if size > 0 {
                    open.push((size, s));
                }
            }
        }
        open.sort_unstable_by_key(|b| std::cmp::Reverse(b.0));
        let target = budget - budget / 4;
        let mut cut = 0usize;
        for (_, s) in &open {
            if self.head_bytes.load(Ordering::Relaxed) <= target {
                break;
            }
            let mut st = s.st.lock();
            if !st.head.is_empty() {
                self.cut_locked(&mut st);
                cut += 1;
            }
        }
        tracing::debug!(
            message = "Cut heads over the memory budget.",
            heads = cut,
            budget_bytes = budget,
            pending_bytes = self.cut_pending_bytes.load(Ordering::Relaxed)
        );
    }

    /// Writes cut chunks as blocks (all heads cut first with `force`), then
    /// truncates the WAL.
    pub fn flush(&self, force: bool) -> Result<()> {
        let _f = self.flush_lock.lock();
        if force {
            let _g = self.gate.write();
            self.cut_heads(true);
            // Everything before is now in cut chunks; once they are written,
            // the old segments can all go.
            self.wal.rotate()?;
        }
        // Chunks cut from here on belong to the next flush.
        self.cut_pending_bytes.store(0, Ordering::Relaxed);
        for t in self.all_tenants() {
            self.write_tenant_blocks(&t)?;
        }
        self.truncate_wal()
    }

    fn write_tenant_blocks(&self, t: &Tenant) -> Result<()> {
        let streams = t.all_streams();
        let mut by_day: BTreeMap<i64, BTreeMap<Labels, Vec<Arc<Chunk>>>> = BTreeMap::new();
        let mut flushed = std::collections::HashSet::new();
        for s in &streams {
            let st = s.st.lock();
            for c in &st.cut {
                flushed.insert(Arc::as_ptr(&c.chunk) as usize);
                by_day
                    .entry(day_of(c.chunk.min_ts))
                    .or_default()
                    .entry(s.labels.clone())
                    .or_default()
                    .push(c.chunk.clone());
            }
        }
        if by_day.is_empty() {
            return Ok(());
        }
        let bdir = t.dir.join("blocks");
        for series in by_day.values() {
            let started = Instant::now();
            let (b, bytes) = write_block(&bdir, series, &[], &[])?;
            let chunks: usize = series.values().map(|v| v.len()).sum();
            {
                use std::sync::atomic::Ordering::Relaxed;
                super::METRICS.blocks_flushed.fetch_add(1, Relaxed);
                super::METRICS
                    .chunks_flushed
                    .fetch_add(chunks as u64, Relaxed);
                super::METRICS.bytes_flushed.fetch_add(bytes, Relaxed);
            }
            tracing::info!(message = "Flushed block.", block = %b.id, chunks, streams = series.len(), bytes, elapsed_ms = started.elapsed().as_millis() as u64);
            t.blocks.write().push(Arc::new(b));
        }
        // Only now drop the chunks from memory (readers look at streams first).
        for s in &streams {
            s.st.lock()
                .cut
                .retain(|c| !flushed.contains(&(Arc::as_ptr(&c.chunk) as usize)));
        }
        let mut w = t.streams.write();
        for s in &streams {
            let mut st = s.st.lock();
            if st.is_empty() && !st.removed {
                st.removed = true;
                let h = s.labels.stable_hash();
                if let Some(v) = w.get_mut(&h) {
                    v.retain(|x| !Arc::ptr_eq(x, s));
                    if v.is_empty() {
                        w.remove(&h);
                    }
                }
            }
        }
        Ok(())
    }

    /// Deletes WAL segments whose entries are all in blocks.
    fn truncate_wal(&self) -> Result<()> {
        let min = {
            let _g = self.gate.write();
            let mut m = self.wal.current_segment();
            for t in self.all_tenants() {
                for s in t.all_streams() {
                    let st = s.st.lock();
                    if !st.head.is_empty() {
                        m = m.min(st.head_min_seg);
                    }
                    for c in &st.cut {
                        m = m.min(c.min_seg);
                    }
                }
            }
            m
        };
        let n = self.wal.remove_below(min)?;
        if n > 0 {
            tracing::info!(
                message = "Truncated WAL.",
                segments_removed = n,
                oldest_kept = min
            );
        }
        Ok(())
    }

    /// Merges blocks of one tenant and UTC day whose sizes are within a
    /// factor of four of each other, once there are `COMPACT_MIN` of them
    /// (size-tiered, so data is rewritten O(log n) times), oldest first and
    /// never into a block larger than `max_compacted_block_bytes`.
    pub fn compact(&self) -> Result<()> {
        const COMPACT_MIN: usize = 4;
        for t in self.all_tenants() {
            let mut tiers: BTreeMap<(i64, u32), Vec<Arc<BlockReader>>> = BTreeMap::new();
            for b in t.blocks.read().iter() {
                let tier = (64 - b.size.leading_zeros()) / 2;
                tiers
                    .entry((day_of(b.min_ts), tier))
                    .or_default()
                    .push(b.clone());
            }
            let cap = self.cfg.max_compacted_block_bytes;
            let groups = tiers.into_values().filter_map(|mut g| {
                g.sort_by_key(|b| b.min_ts);
                let mut total = 0u64;
                let fit = g
                    .iter()
                    .take_while(|b| {
                        total = total.saturating_add(b.size);
                        total <= cap
                    })
                    .count();
                g.truncate(fit);
                (g.len() >= COMPACT_MIN).then_some(g)
            });
            for group in groups {
                let started = Instant::now();
                let (nb, bytes) = compact(&t.dir.join("blocks"), &group)?;
                let nb = Arc::new(nb);
                {
                    let mut w = t.blocks.write();
                    w.retain(|b| !group.iter().any(|g| Arc::ptr_eq(b, g)));
                    w.push(nb.clone());
                }
                for b in &group {
                    match std::fs::remove_dir_all(&b.dir) {
                        // Retention may have deleted it meanwhile.
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(io_err(&b.dir, e))
                        }
                        _ => {}
                    }
                }
                tracing::info!(
                    message = "Compacted blocks.",
                    block = %nb.id,
                    sources = group.len(),
                    bytes,
                    elapsed_ms = started.elapsed().as_millis() as u64
                );
            }
        }
        Ok(())
    }

    /// Deletes blocks whose newest entry is older than the retention period.
    pub fn apply_retention(&self) -> Result<()> {
        let Some(p) = self.cfg.retention_period else {
            return Ok(());
        };
        let cutoff = now_ns().saturating_sub(i64::try_from(p.as_nanos()).unwrap_or(i64::MAX));
        for t in self.all_tenants() {
            let old: Vec<Arc<BlockReader>> = {
                let mut w = t.blocks.write();
                let (old, keep) = w.drain(..).partition(|b| b.max_ts < cutoff);
                *w = keep;
                old
            };
            for b in old {
                std::fs::remove_dir_all(&b.dir).map_err(|e| io_err(&b.dir, e))?;
                tracing::info!(message = "Deleted block past retention.", block = %b.id, max_ts = b.max_ts);
            }
        }
        Ok(())
    }

    /// Drops the process's page-table entries for every mapped chunk file
    /// (see [`RELEASE_MAPPED_EVERY`]); safe while queries read them, which
    /// fault the pages back in from the page cache.
    fn release_mapped_pages(&self) {
        for t in self.all_tenants() {
            for b in t.blocks.read().iter() {
                b.release_all();
            }
        }
    }

    /// One round of background work.
    pub fn tick(&self, last_flush: &mut Instant) {
        {
            let mut at = self.pages_released.lock();
            if at.elapsed() >= RELEASE_MAPPED_EVERY {
                *at = Instant::now();
                drop(at);
                self.release_mapped_pages();
            }
        }
        self.cut_heads(false);
        if let Err(error) = self.wal.sync_if_dirty() {
            tracing::error!(message = "Failed to sync WAL.", %error);
        }
        let pending = self.cut_pending_bytes.load(Ordering::Relaxed);
        if last_flush.elapsed() >= self.cfg.flush_interval || pending >= FLUSH_PENDING_BYTES {
            *last_flush = Instant::now();
            if let Err(error) = self.flush(false) {
                tracing::error!(message = "Failed to flush.", %error);
            }
            if let Err(error) = self.compact() {
                tracing::error!(message = "Failed to compact blocks.", %error);
            }
            if let Err(error) = self.apply_retention() {
                tracing::error!(message = "Failed to apply retention.", %error);
            }
        }
    }

    pub fn tick_period(&self) -> Duration {
        // Often enough that the head memory budget and the early flush keep
        // up with a fast ingest.
        let mut p = self.cfg.flush_interval.min(Duration::from_secs(1));
        if let SyncPolicy::Interval(d) = self.cfg.sync {
            p = p.min(d);
        }
        p.max(Duration::from_millis(10))
    }

    pub fn shutdown(&self) -> Result<()> {
        {
            let _g = self.gate.write();
            if self.shutting_down.swap(true, Ordering::AcqRel) {
                return Ok(());
            }
        }
        self.flush(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_keep_heads_within_the_budget_without_a_background_round() {
        let d = tempfile::tempdir().unwrap();
        let mut cfg = StorageConfig::new(d.path());
        cfg.sync = SyncPolicy::None;
        cfg.max_head_bytes = 64 << 10;
        let eng = Engine::open(cfg).unwrap();
        let line = "x".repeat(100);
        for s in 0..100 {
            // 20 entries of 100 bytes: 2,000 bytes per push, 200,000 in all.
            let entries = (0..20)
                .map(|i| PushEntry {
                    ts: i,
                    line: line.clone(),
                    metadata: Vec::new(),
                })
                .collect();
            let labels = Labels::from_pairs([("s", s.to_string().as_str())]);
            eng.append("t", vec![PushStream { labels, entries }])
                .unwrap();
            // Cut back to 48 KiB whenever a push passes 64 KiB.
            assert!(eng.head_bytes.load(Ordering::Relaxed) <= 64 << 10);
        }
        // The running total matches the heads.
        let sum: usize = eng
            .all_tenants()
            .iter()
            .flat_map(|t| t.all_streams())
            .map(|s| s.st.lock().head.raw_bytes)
            .sum();
        assert_eq!(eng.head_bytes.load(Ordering::Relaxed), sum);
        assert!(sum > 0);
        // What was cut waits as chunks: 200,000 bytes in all, the rest in heads.
        let cut_entries: usize = eng
            .all_tenants()
            .iter()
            .flat_map(|t| t.all_streams())
            .map(|s| {
                s.st.lock()
                    .cut
                    .iter()
                    .map(|c| c.chunk.entries as usize)
                    .sum::<usize>()
            })
            .sum();
        assert_eq!(cut_entries * 100 + sum, 200_000);
        eng.flush(true).unwrap();
        assert_eq!(eng.head_bytes.load(Ordering::Relaxed), 0);
    }
}
