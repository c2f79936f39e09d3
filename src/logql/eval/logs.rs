//! Log queries: select the streams, run the pipeline over each stream's
//! entries, and keep the first `limit` entries overall in `direction` order.
//!
//! Memory stays bounded by `limit` plus one decoded block per worker: each
//! worker keeps a bounded heap of its best entries, and a stream stops being
//! read as soon as its next entry could no longer make the heap (streams are
//! read in direction order, so nothing after it could either). Streams are
//! spread over the machine's cores. With `interval`, the choice of an entry
//! depends on the entry kept before it across all streams, so those queries
//! take a k-way merge over lazily decoded blocks instead.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;

use crate::labels::Labels;
use crate::logql::eval::context::{QueryContext, QueryStats};
use crate::logql::eval::selector::storage_matchers;
use crate::logql::eval::tenants::{self, TenantSeries};
use crate::logql::eval::{EvalError, QueryParams, ResultEntry};
use crate::logql::log::{Pipeline, ResultLabels, StreamPipeline};
use crate::logql::syntax::ast::LogExpr;
use crate::storage::{Direction, EntryBlock, ReadColumns, Store};

/// A kept entry with its ordering key: smaller `key` is better (`ts` going
/// forward, `-ts` going backward); `seq` breaks ties by stream order.
struct Kept {
    key: i64,
    seq: (usize, u32),
    entry: ResultEntry,
}

impl PartialEq for Kept {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key && self.seq == o.seq
    }
}
impl Eq for Kept {}
impl PartialOrd for Kept {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Kept {
    /// Max-heap order: the worst kept entry is on top.
    fn cmp(&self, o: &Self) -> CmpOrdering {
        self.key.cmp(&o.key).then(self.seq.cmp(&o.seq))
    }
}

fn key_of(ts: i64, dir: Direction) -> i64 {
    match dir {
        Direction::Forward => ts,
        Direction::Backward => ts.saturating_neg(),
    }
}

fn to_entry(ts: i64, line: &[u8], rl: &ResultLabels) -> ResultEntry {
    ResultEntry {
        ts,
        line: String::from_utf8_lossy(line).into_owned(),
        stream: rl.stream.clone(),
        structured_metadata: rl.structured_metadata.clone(),
        parsed: rl.parsed.clone(),
    }
}

/// Runs a log query; entries come back in direction order. `tenant` may
/// name several tenants (`a|b`, see [`tenants`]).
pub fn eval_logs(
    store: &Store,
    tenant: &str,
    expr: &LogExpr,
    params: &QueryParams,
    ctx: &QueryContext,
) -> Result<Vec<ResultEntry>, EvalError> {
    let matchers = storage_matchers(&expr.selector)?;
    let pipeline = Pipeline::new(&expr.pipeline).map_err(|e| EvalError::Pipeline(e.to_string()))?;
    let (from, through) = (params.start, params.end);
    let series = tenants::select_series(store, tenant, &matchers, from, through)?;
    if params.interval > 0 {
        return merge_with_interval(store, &series, &pipeline, params, ctx);
    }
    let limit = params.limit.max(1);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(series.len().max(1));
    let per_worker: Vec<Vec<(usize, &TenantSeries)>> = {
        let mut v: Vec<Vec<(usize, &TenantSeries)>> = (0..workers).map(|_| Vec::new()).collect();
        for (i, s) in series.iter().enumerate() {
            v[i % workers].push((i, s));
        }
        v
    };
    let results: Vec<Result<BinaryHeap<Kept>, EvalError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = per_worker
            .into_iter()
            .map(|mine| {
                let pipeline = &pipeline;
                scope.spawn(move || scan_streams(store, &mine, pipeline, params, limit, ctx))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(EvalError::BadRequest("query worker panicked".into())))
            })
            .collect()
    });
    let mut all: Vec<Kept> = Vec::new();
    for r in results {
        all.extend(r?.into_vec());
    }
    all.sort();
    all.truncate(limit);
    ctx.stats.lock().entries_returned += all.len() as u64;
    Ok(all.into_iter().map(|k| k.entry).collect())
}

fn scan_streams(
    store: &Store,
    series: &[(usize, &TenantSeries)],
    pipeline: &Pipeline,
    params: &QueryParams,
    limit: usize,
    ctx: &QueryContext,
) -> Result<BinaryHeap<Kept>, EvalError> {
    let mut heap: BinaryHeap<Kept> = BinaryHeap::with_capacity(limit.min(4096) + 1);
    let mut stats = QueryStats::default();
    let dir = params.direction;
    // Filter-only pipelines test a whole block with one memmem pass over
    // its concatenated lines; only the lines that pass go through the
    // per-line pipeline (which supplies their labels).
    let block_filter = pipeline.is_filter_only();
    let mut keep: Vec<bool> = Vec::new();
    for &(si, s) in series {
        ctx.check()?;
        let mut sp = pipeline.for_stream(s.labels());
        let blocks = store.read_stream(
            s.tenant,
            &s.series,
            params.start,
            params.end,
            dir,
            ReadColumns::All,
            &mut stats.read,
        )?;
        let mut n: u32 = 0;
        'stream: for block in blocks {
            let block = block?;
            ctx.check()?;
            let len = block.len();
            if block_filter {
                pipeline.filter_block(&block.lines, &block.line_offsets, &mut keep);
            }
            for j in 0..len {
                let i = match dir {
                    Direction::Forward => j,
                    Direction::Backward => len - 1 - j,
                };
                let ts = block.timestamps[i];
                let key = key_of(ts, dir);
                if heap.len() >= limit && heap.peek().is_some_and(|w| key >= w.key) {
                    break 'stream;
                }
                let line = block.line(i);
                stats.lines_processed += 1;
                stats.bytes_processed += line.len() as u64;
                if block_filter && !keep.get(i).copied().unwrap_or(true) {
                    continue;
                }
                if let Some((out, rl)) = sp.process(ts, line, &block.metadata[i]) {
                    stats.post_filter_lines += 1;
                    n += 1;
                    let kept = Kept {
                        key,
                        seq: (si, n),
                        entry: to_entry(ts, out, rl),
                    };
                    if heap.len() >= limit {
                        heap.pop();
                    }
                    heap.push(kept);
                }
            }
        }
    }
    ctx.add(&stats);
    Ok(heap)
}

/// One stream's lazily decoded blocks, positioned at its next entry.
struct Cursor {
    sp: StreamPipeline,
    blocks: crate::storage::BlockIter,
    block: EntryBlock,
    pos: usize,
}

impl Cursor {
    /// Index into `block` of the current entry in read direction.
    fn index(&self, dir: Direction) -> usize {
        match dir {
            Direction::Forward => self.pos,
            Direction::Backward => self.block.len() - 1 - self.pos,
        }
    }

    /// Advances to a block with entries; false when the stream is done.
    fn fill(&mut self) -> Result<bool, EvalError> {
        while self.pos >= self.block.len() {
            match self.blocks.next() {
                Some(b) => {
                    self.block = b?;
                    self.pos = 0;
                }
                None => return Ok(false),
            }
        }
        Ok(true)
    }
}

/// k-way merge of all streams in direction order, keeping an entry only if
/// it is at least `interval` after the last entry kept (Loki's rule).
fn merge_with_interval(
    store: &Store,
    series: &[TenantSeries],
    pipeline: &Pipeline,
    params: &QueryParams,
    ctx: &QueryContext,
) -> Result<Vec<ResultEntry>, EvalError> {
    let dir = params.direction;
    let mut stats = QueryStats::default();
    let mut cursors: Vec<Cursor> = Vec::with_capacity(series.len());
    // Min-heap over (key, cursor index).
    let mut heap: BinaryHeap<std::cmp::Reverse<(i64, usize)>> = BinaryHeap::new();
    for s in series {
        let blocks = store.read_stream(
            s.tenant,
            &s.series,
            params.start,
            params.end,
            dir,
            ReadColumns::All,
            &mut stats.read,
        )?;
        let mut c = Cursor {
            sp: pipeline.for_stream(s.labels()),
            blocks,
            block: EntryBlock::default(),
            pos: 0,
        };
        if c.fill()? {
            let i = c.index(dir);
            heap.push(std::cmp::Reverse((
                key_of(c.block.timestamps[i], dir),
                cursors.len(),
            )));
            cursors.push(c);
        }
    }
    let mut out = Vec::new();
    let mut last: Option<i64> = None;
    while let Some(std::cmp::Reverse((_, ci))) = heap.pop() {
        if out.len() >= params.limit {
            break;
        }
        ctx.check()?;
        let c = &mut cursors[ci];
        let i = c.index(dir);
        let ts = c.block.timestamps[i];
        let line = c.block.line(i);
        stats.lines_processed += 1;
        stats.bytes_processed += line.len() as u64;
        let due = match (last, dir) {
            (None, _) => true,
            (Some(l), Direction::Forward) => ts >= l.saturating_add(params.interval),
            (Some(l), Direction::Backward) => ts <= l.saturating_sub(params.interval),
        };
        if due {
            if let Some((o, rl)) = c.sp.process(ts, line, &c.block.metadata[i]) {
                stats.post_filter_lines += 1;
                out.push(to_entry(ts, o, rl));
                last = Some(ts);
            }
        }
        c.pos += 1;
        if c.fill()? {
            let i = c.index(dir);
            heap.push(std::cmp::Reverse((key_of(c.block.timestamps[i], dir), ci)));
        }
    }
    stats.entries_returned = out.len() as u64;
    ctx.add(&stats);
    Ok(out)
}

/// Groups entries into result streams by a label key, streams sorted by
/// their labels, entries keeping their (direction) order.
pub fn group_streams<F>(entries: &[ResultEntry], key: F) -> Vec<(Labels, Vec<&ResultEntry>)>
where
    F: Fn(&ResultEntry) -> Labels,
{
    let mut map: std::collections::BTreeMap<Labels, Vec<&ResultEntry>> =
        std::collections::BTreeMap::new();
    for e in entries {
        map.entry(key(e)).or_default().push(e);
    }
    map.into_iter().collect()
}
