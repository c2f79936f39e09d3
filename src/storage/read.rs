//! Lazy reads of one stream: a merge over sources (head blocks, the head's
//! open block, unflushed chunks, chunks in blocks), each sorted and
//! internally disjoint in time. A source is opened only when the merge
//! frontier reaches its first timestamp, and decoded one block at a time;
//! when a single source is active and nothing else overlaps its block, the
//! decoded block is passed through without copying. Exact duplicates across
//! sources are dropped and counted.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use super::chunk::{decode_block, EncodedBlock, Interner};
use super::{Codec, Direction, EntryBlock, ReadColumns, Result, SkippedReads, StorageError};

/// Entries per yielded block when merging.
const OUT_ENTRIES: usize = 4096;
const OUT_BYTES: usize = 256 * 1024;

pub enum SrcBlock {
    Encoded(EncodedBlock),
    Decoded(EntryBlock),
}

/// A sorted run of blocks from one place.
pub struct Source {
    pub codec: Codec,
    /// Blocks in ascending time, disjoint.
    pub blocks: Vec<SrcBlock>,
    pub min_ts: i64,
    pub max_ts: i64,
    /// Where the bytes come from, for corruption errors.
    pub origin: Arc<PathBuf>,
}

struct Cursor {
    id: usize,
    codec: Codec,
    origin: Arc<PathBuf>,
    blocks: VecDeque<SrcBlock>,
    cur: EntryBlock,
    /// Next entry to take: ascending index forward, `len - 1 - pos` backward.
    pos: usize,
}

pub struct MergeIter {
    fwd: bool,
    cols: ReadColumns,
    from: i64,
    through: i64,
    /// Not yet opened, the next one to open last.
    pending: Vec<Source>,
    active: Vec<Cursor>,
    next_id: usize,
    interner: Interner,
    out: EntryBlock,
    /// Source of each entry of `out` sharing the last timestamp.
    run_src: Vec<usize>,
    run_start: usize,
    failed: bool,
    /// Exact duplicates dropped so far.
    pub duplicates: u64,
    /// Where damaged on-disk blocks are reported; they are skipped, not
    /// fatal. Damage in memory (origin `<memory>`) stays an error.
    pub skipped: SkippedReads,
}

/// Origin of sources that live in memory.
pub const MEMORY_ORIGIN: &str = "<memory>";

impl MergeIter {
    pub fn new(
        mut sources: Vec<Source>,
        from: i64,
        through: i64,
        dir: Direction,
        cols: ReadColumns,
    ) -> MergeIter {
        let fwd = dir == Direction::Forward;
        sources.retain(|s| s.min_ts < through && s.max_ts >= from && !s.blocks.is_empty());
        if fwd {
            sources.sort_by_key(|s| std::cmp::Reverse(s.min_ts));
        } else {
            sources.sort_by_key(|s| s.max_ts);
        }
        MergeIter {
            fwd,
            cols,
            from,
            through,
            pending: sources,
            active: Vec::new(),
            next_id: 0,
            interner: Interner::default(),
            out: EntryBlock::default(),
            run_src: Vec::new(),
            run_start: 0,
            failed: false,
            duplicates: 0,
            skipped: SkippedReads::default(),
        }
    }

    fn ts_at(&self, c: &Cursor) -> i64 {
        let i = if self.fwd {
            c.pos
        } else {
            c.cur.len() - 1 - c.pos
        };
        c.cur.timestamps[i]
    }

    /// Makes sure cursor `k` has an entry, decoding blocks as needed;
    /// `false` when it is exhausted.
    fn fill(&mut self, k: usize) -> Result<bool> {
        loop {
            let c = &mut self.active[k];
            if c.pos < c.cur.len() {
                return Ok(true);
            }
            let next = if self.fwd {
                c.blocks.pop_front()
            } else {
                c.blocks.pop_back()
            };
            let Some(b) = next else { return Ok(false) };
            c.pos = 0;
            match b {
                SrcBlock::Decoded(eb) => c.cur = eb,
                SrcBlock::Encoded(eb) => {
                    if eb.meta.max_ts < self.from || eb.meta.min_ts >= self.through {
                        c.cur = EntryBlock::default();
                        continue;
                    }
                    let r =
                        decode_block(c.codec, &eb.data, self.cols, &mut c.cur, &mut self.interner);
                    if let Err(e) = r {
                        if c.origin.as_os_str() == MEMORY_ORIGIN {
                            return Err(StorageError::DataCorruption {
                                path: (*c.origin).clone(),
                                detail: e.to_string(),
                            });
                        }
                        super::report_corrupt(&self.skipped, &c.origin, &e.to_string());
                        c.cur = EntryBlock::default();
                        continue;
                    }
                }
            }
            trim(&mut c.cur, self.from, self.through);
        }
    }

    fn open_pending(&mut self) -> Result<()> {
        loop {
            let frontier = self.active.iter().map(|c| self.ts_at(c)).reduce(|a, b| {
                if self.fwd {
                    a.min(b)
                } else {
                    a.max(b)
                }
            });
            let Some(p) = self.pending.last() else {
                return Ok(());
            };
            let due = match frontier {
                None => true,
                Some(f) => {
                    if self.fwd {
                        p.min_ts <= f
                    } else {
                        p.max_ts >= f
                    }
                }
            };
            if !due {
                return Ok(());
            }
            let Some(s) = self.pending.pop() else {
                return Ok(());
            };
            self.active.push(Cursor {
                id: self.next_id,
                codec: s.codec,
                origin: s.origin,
                blocks: s.blocks.into(),
                cur: EntryBlock::default(),
                pos: 0,
            });
            self.next_id += 1;
            let k = self.active.len() - 1;
            if !self.fill(k)? {
                self.active.swap_remove(k);
            }
        }
    }

    /// Whether the entry at cursor `k` duplicates one already in `out`.
    fn is_dup(&self, k: usize, ts: i64) -> bool {
        let c = &self.active[k];
        let i = if self.fwd {
            c.pos
        } else {
            c.cur.len() - 1 - c.pos
        };
        for (j, &src) in self.run_src.iter().enumerate() {
            let o = self.run_start + j;
            if src == c.id
                || self.out.timestamps[o] != ts
                || self.out.line_lens[o] != c.cur.line_lens[i]
            {
                continue;
            }
            if self.cols == ReadColumns::TimestampsAndSizes
                || (self.out.line(o) == c.cur.line(i) && self.out.metadata[o] == c.cur.metadata[i])
            {
                return true;
            }
        }
        false
    }

    fn push_entry(&mut self, k: usize) {
        let c = &self.active[k];
        let i = if self.fwd {
            c.pos
        } else {
            c.cur.len() - 1 - c.pos
        };
        let ts = c.cur.timestamps[i];
        if self.out.timestamps.last() != Some(&ts) {
            self.run_src.clear();
            self.run_start = self.out.len();
        }
        self.out.timestamps.push(ts);
        self.out.line_lens.push(c.cur.line_lens[i]);
        if self.cols == ReadColumns::All {
            if self.out.line_offsets.is_empty() {
                self.out.line_offsets.push(0);
            }
            self.out.lines.extend_from_slice(c.cur.line(i));
            self.out.line_offsets.push(self.out.lines.len() as u32);
            self.out.metadata.push(c.cur.metadata[i].clone());
        }
        self.run_src.push(c.id);
    }

    fn take_out(&mut self) -> EntryBlock {
        self.run_src.clear();
        self.run_start = 0;
        let mut b = std::mem::take(&mut self.out);
        if !self.fwd {
            reverse(&mut b);
        }
        b
    }

    fn step(&mut self) -> Result<Option<EntryBlock>> {
        loop {
            self.open_pending()?;
            if self.active.is_empty() {
                return Ok(if self.out.is_empty() {
                    None
                } else {
                    Some(self.take_out())
                });
            }
            // Pass a whole decoded block through when nothing else overlaps it.
            if self.active.len() == 1 && self.out.is_empty() && self.active[0].pos == 0 {
                let c = &self.active[0];
                let clear = match self.pending.last() {
                    None => true,
                    Some(p) => match (c.cur.timestamps.first(), c.cur.timestamps.last()) {
                        (Some(&first), Some(&last)) => {
                            if self.fwd {
                                p.min_ts > last
                            } else {
                                p.max_ts < first
                            }
                        }
                        _ => true,
                    },
                };
                if clear {
                    let b = std::mem::take(&mut self.active[0].cur);
                    if !self.fill(0)? {
                        self.active.clear();
                    }
                    return Ok(Some(b));
                }
            }
            // Take the earliest entry (in read direction) over active cursors.
            let mut best = 0;
            let mut best_ts = self.ts_at(&self.active[0]);
            for k in 1..self.active.len() {
                let t = self.ts_at(&self.active[k]);
                if (self.fwd && t < best_ts) || (!self.fwd && t > best_ts) {
                    best = k;
                    best_ts = t;
                }
            }
            let last = self.out.timestamps.last().copied();
            if last != Some(best_ts)
                && (self.out.len() >= OUT_ENTRIES || self.out.lines.len() >= OUT_BYTES)
            {
                return Ok(Some(self.take_out()));
            }
            if last == Some(best_ts) && self.is_dup(best, best_ts) {
                self.duplicates += 1;
            } else {
                self.push_entry(best);
            }
            self.active[best].pos += 1;
            if !self.fill(best)? {
                self.active.swap_remove(best);
            }
        }
    }
}

impl Iterator for MergeIter {
    type Item = Result<EntryBlock>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            match self.step() {
                Ok(Some(b)) if b.is_empty() => continue,
                Ok(Some(b)) => return Some(Ok(b)),
                Ok(None) => return None,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Keeps only entries in `[from, through)` (the block is sorted).
pub fn trim(b: &mut EntryBlock, from: i64, through: i64) {
    let lo = b.timestamps.partition_point(|&t| t < from);
    let hi = b.timestamps.partition_point(|&t| t < through);
    if lo == 0 && hi == b.len() {
        return;
    }
    let hi = hi.max(lo);
    b.timestamps.truncate(hi);
    b.timestamps.drain(..lo);
    b.line_lens.truncate(hi);
    b.line_lens.drain(..lo);
    if !b.metadata.is_empty() {
        b.metadata.truncate(hi);
        b.metadata.drain(..lo);
    }
    if !b.line_offsets.is_empty() {
        let (s, e) = (b.line_offsets[lo] as usize, b.line_offsets[hi] as usize);
        b.lines.truncate(e);
        b.lines.drain(..s);
        b.line_offsets.truncate(hi + 1);
        b.line_offsets.drain(..lo);
        for o in b.line_offsets.iter_mut() {
            *o -= s as u32;
        }
    }
}

/// Turns a block collected newest-first into ascending order.
fn reverse(b: &mut EntryBlock) {
    b.timestamps.reverse();
    b.line_lens.reverse();
    b.metadata.reverse();
    if b.line_offsets.is_empty() {
        return;
    }
    let mut lines = Vec::with_capacity(b.lines.len());
    let mut offs = Vec::with_capacity(b.line_offsets.len());
    offs.push(0u32);
    for i in (0..b.line_offsets.len() - 1).rev() {
        lines.extend_from_slice(
            &b.lines[b.line_offsets[i] as usize..b.line_offsets[i + 1] as usize],
        );
        offs.push(lines.len() as u32);
    }
    b.lines = lines;
    b.line_offsets = offs;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::chunk::{encode_block, RawEntries};

    fn source(origin: &str, ts: &[i64], damage: bool) -> Source {
        let mut r = RawEntries::default();
        for &t in ts {
            r.push(t, format!("line {t}").as_bytes(), &[0]);
        }
        let mut b = encode_block(Codec::Snappy, &r, &mut (0..r.len()));
        if damage {
            let mut v = b.data.to_vec();
            let mid = v.len() / 2;
            v[mid] ^= 0xff;
            b.data = v.into();
        }
        Source {
            codec: Codec::Snappy,
            min_ts: b.meta.min_ts,
            max_ts: b.meta.max_ts,
            blocks: vec![SrcBlock::Encoded(b)],
            origin: Arc::new(PathBuf::from(origin)),
        }
    }

    fn run(sources: Vec<Source>) -> (Result<Vec<i64>>, Vec<String>) {
        let mut it = MergeIter::new(sources, 0, 100, Direction::Forward, ReadColumns::All);
        let log = SkippedReads::default();
        it.skipped = log.clone();
        let mut out = Vec::new();
        for b in it {
            match b {
                Ok(b) => out.extend(b.timestamps),
                Err(e) => return (Err(e), log.list()),
            }
        }
        (Ok(out), log.list())
    }

    #[test]
    fn damaged_disk_block_is_skipped_with_a_warning() {
        let (got, warnings) = run(vec![
            source("/d/blocks/x/chunks", &[1, 3, 5], true),
            source("/d/blocks/y/chunks", &[2, 4], false),
        ]);
        assert_eq!(got.unwrap(), vec![2, 4]);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("/d/blocks/x/chunks"), "{warnings:?}");
    }

    #[test]
    fn damaged_memory_block_is_an_error() {
        let (got, warnings) = run(vec![source(MEMORY_ORIGIN, &[1, 2], true)]);
        assert!(matches!(got, Err(StorageError::DataCorruption { .. })));
        assert!(warnings.is_empty());
    }

    #[test]
    fn skipped_reads_dedupe_cap_and_merge() {
        let a = SkippedReads::default();
        for i in 0..(SkippedReads::MAX + 5) {
            a.push(format!("w{i}"));
            a.push(format!("w{i}"));
        }
        assert_eq!(a.list().len(), SkippedReads::MAX);
        let b = SkippedReads::default();
        b.push("w0".into());
        b.push("other".into());
        let c = SkippedReads::default();
        c.merge(&b);
        c.merge(&b);
        c.merge(&c.clone());
        assert_eq!(c.list(), vec!["w0".to_string(), "other".to_string()]);
    }
}
