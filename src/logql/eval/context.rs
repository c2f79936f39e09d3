//! Per-query context: deadline, cancellation and work counters.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::logql::eval::EvalError;
use crate::storage::ReadStats;

/// Deadline and cancellation flag of one query, checked between blocks.
#[derive(Clone, Debug)]
pub struct QueryContext {
    pub deadline: Instant,
    pub cancel: Arc<AtomicBool>,
    pub started: Instant,
    pub stats: Arc<Mutex<QueryStats>>,
}

impl QueryContext {
    pub fn new(timeout: std::time::Duration) -> QueryContext {
        let now = Instant::now();
        QueryContext {
            deadline: now + timeout,
            cancel: Arc::new(AtomicBool::new(false)),
            started: now,
            stats: Arc::new(Mutex::new(QueryStats::default())),
        }
    }

    /// Errors when the query was cancelled or ran past its deadline.
    pub fn check(&self) -> Result<(), EvalError> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(EvalError::Canceled);
        }
        if Instant::now() >= self.deadline {
            return Err(EvalError::Timeout);
        }
        Ok(())
    }

    pub fn add(&self, s: &QueryStats) {
        self.stats.lock().merge(s);
    }
}

/// Work done by a query, reported in the `stats` object.
#[derive(Clone, Debug, Default)]
pub struct QueryStats {
    pub read: ReadStats,
    /// Lines that entered the pipeline.
    pub lines_processed: u64,
    /// Bytes of those lines.
    pub bytes_processed: u64,
    /// Lines that passed the pipeline.
    pub post_filter_lines: u64,
    pub entries_returned: u64,
}

impl QueryStats {
    pub fn merge(&mut self, o: &QueryStats) {
        let (a, b) = (&mut self.read, &o.read);
        a.head_chunk_bytes += b.head_chunk_bytes;
        a.head_chunk_lines += b.head_chunk_lines;
        a.chunks_ref += b.chunks_ref;
        a.chunks_downloaded += b.chunks_downloaded;
        a.compressed_bytes += b.compressed_bytes;
        a.decompressed_bytes += b.decompressed_bytes;
        a.decompressed_lines += b.decompressed_lines;
        a.structured_metadata_bytes += b.structured_metadata_bytes;
        a.duplicates += b.duplicates;
        a.skipped.merge(&b.skipped);
        self.lines_processed += o.lines_processed;
        self.bytes_processed += o.bytes_processed;
        self.post_filter_lines += o.post_filter_lines;
        self.entries_returned += o.entries_returned;
    }
}
