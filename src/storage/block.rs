//! Immutable on-disk blocks: `tenants/<tenant>/blocks/<block-id>/` holding a
//! `chunks` file (chunks back to back) and an `index` file (see
//! [`super::index`]). A block is written into a temporary directory, its
//! files fsynced, then renamed into place and the parent directory fsynced,
//! so a crash leaves either the whole block or none of it. Both files are
//! read through `memmap2`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::chunk::Chunk;
use super::index::{write_index, ChunkRef, IndexReader};
use super::wal::sync_dir;
use super::{Result, StorageError};
use crate::labels::Labels;

pub const TMP_PREFIX: &str = ".tmp-";

fn io_err(path: &Path, source: std::io::Error) -> StorageError {
    StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, detail: impl std::fmt::Display) -> StorageError {
    StorageError::DataCorruption {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// An open block.
pub struct BlockReader {
    pub id: String,
    pub dir: PathBuf,
    pub chunks_path: PathBuf,
    pub index: IndexReader<memmap2::Mmap>,
    chunks: Bytes,
    pub min_ts: i64,
    pub max_ts: i64,
    /// Bytes of both files.
    pub size: u64,
}

/// While copying chunks out of blocks (compaction), the source mappings are
/// released every this many bytes read.
const RELEASE_EVERY: usize = 8 << 20;

/// The system's page size.
fn page_size() -> usize {
    // Safety: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}

fn map(path: &Path) -> Result<memmap2::Mmap> {
    let f = File::open(path).map_err(|e| io_err(path, e))?;
    // Safety: block files are immutable once renamed into place; miniloki
    // never writes to them again, and deletes them only by unlinking.
    unsafe { memmap2::Mmap::map(&f) }.map_err(|e| io_err(path, e))
}

impl BlockReader {
    pub fn open(dir: &Path) -> Result<BlockReader> {
        let ipath = dir.join("index");
        let cpath = dir.join("chunks");
        let index = IndexReader::open(map(&ipath)?).map_err(|e| corrupt(&ipath, e))?;
        let chunks = Bytes::from_owner(map(&cpath)?);
        let id = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let (min_ts, max_ts) = (index.min_ts, index.max_ts);
        let size = chunks.len() as u64 + index.data_len() as u64;
        Ok(BlockReader {
            id,
            dir: dir.to_path_buf(),
            chunks_path: cpath,
            index,
            chunks,
            min_ts,
            max_ts,
            size,
        })
    }

    pub fn overlaps(&self, from: i64, through: i64) -> bool {
        self.min_ts < through && self.max_ts >= from
    }

    /// Drops this process's mapping of the pages `data` lies on, when `data`
    /// lies in this block's chunks file, so that copying a block's chunks
    /// (compaction) does not leave the whole source resident in the
    /// process's RSS. The pages stay in the page cache; a later read
    /// (of this or a neighbouring chunk sharing a page) faults them back in.
    pub fn release_pages(&self, data: &[u8]) {
        let base = self.chunks.as_ptr() as usize;
        let (start, end) = (data.as_ptr() as usize, data.as_ptr() as usize + data.len());
        if start < base || end > base + self.chunks.len() {
            return;
        }
        let page = page_size();
        // The mapping starts on a page boundary and covers its last page whole.
        let from = start / page * page;
        let to = end.div_ceil(page) * page;
        if to <= from {
            return;
        }
        // Safety: [from, to) is page-aligned and inside a read-only shared
        // file mapping this reader owns; MADV_DONTNEED on such a mapping
        // only drops the page table entries (the contents are re-read from
        // the file on the next access, unchanged).
        unsafe {
            libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_DONTNEED);
        }
    }

    /// [`BlockReader::release_pages`] over the whole chunks file. Releasing
    /// chunk by chunk is not enough: a page fault also maps the cached pages
    /// around it ("fault around"), including those of chunks already
    /// released.
    pub fn release_all(&self) {
        self.release_pages(&self.chunks);
    }

    /// The chunk a reference points at, parsed (the bytes stay mapped).
    pub fn chunk(&self, r: &ChunkRef) -> Result<Chunk> {
        let end = r
            .offset
            .checked_add(r.len)
            .filter(|&e| e <= self.chunks.len() as u64);
        let Some(end) = end else {
            return Err(corrupt(&self.chunks_path, "chunk reference out of bounds"));
        };
        Chunk::parse(self.chunks.slice(r.offset as usize..end as usize))
            .map_err(|e| corrupt(&self.chunks_path, e))
    }
}

static BLOCK_SEQ: AtomicU64 = AtomicU64::new(0);

/// A new block id: the UTC day of its data, then a unique suffix.
pub fn new_block_id(day_ts: i64) -> String {
    let day = chrono::DateTime::from_timestamp_nanos(day_ts).format("%Y%m%d");
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!(
        "{day}-{now:016x}-{:04x}",
        BLOCK_SEQ.fetch_add(1, Ordering::Relaxed) & 0xffff
    )
}

/// The UTC day number of a timestamp.
pub fn day_of(ts: i64) -> i64 {
    ts.div_euclid(86_400 * 1_000_000_000)
}

fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| io_err(path, e))?;
    f.write_all(data).map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))
}

/// Writes chunks of several streams as one block under `blocks_dir` and
/// opens it. Returns the block and the number of bytes written.
pub fn write_block(
    blocks_dir: &Path,
    series: &BTreeMap<Labels, Vec<Arc<Chunk>>>,
    replaces: &[String],
    sources: &[Arc<BlockReader>],
) -> Result<(BlockReader, u64)> {
    std::fs::create_dir_all(blocks_dir).map_err(|e| io_err(blocks_dir, e))?;
    let first = series
        .values()
        .flatten()
        .map(|c| c.min_ts)
        .min()
        .unwrap_or_default();
    let id = new_block_id(first);
    let tmp = blocks_dir.join(format!("{TMP_PREFIX}{id}"));
    let r = write_block_files(blocks_dir, &tmp, &id, series, replaces, sources);
    if r.is_err() {
        // Give the space of a failed attempt back (a full disk is the usual
        // cause, and the flush is retried).
        let _ = std::fs::remove_dir_all(&tmp);
    }
    r
}

fn write_block_files(
    blocks_dir: &Path,
    tmp: &Path,
    id: &str,
    series: &BTreeMap<Labels, Vec<Arc<Chunk>>>,
    replaces: &[String],
    sources: &[Arc<BlockReader>],
) -> Result<(BlockReader, u64)> {
    std::fs::create_dir_all(tmp).map_err(|e| io_err(tmp, e))?;
    // Chunks stream straight from their buffers (or mapped files) to disk.
    let cpath = tmp.join("chunks");
    let file = File::create(&cpath).map_err(|e| io_err(&cpath, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut offset = 0u64;
    let mut copied = 0usize;
    let mut index_series = Vec::with_capacity(series.len());
    for (labels, cs) in series {
        let mut refs = Vec::with_capacity(cs.len());
        let mut sorted: Vec<&Arc<Chunk>> = cs.iter().collect();
        sorted.sort_by_key(|c| (c.min_ts, c.max_ts));
        for c in sorted {
            refs.push(ChunkRef {
                min_ts: c.min_ts,
                max_ts: c.max_ts,
                offset,
                len: c.data.len() as u64,
                entries: c.entries as u64,
                raw: c.blocks.iter().map(|b| b.meta.raw as u64).sum(),
            });
            w.write_all(&c.data).map_err(|e| io_err(&cpath, e))?;
            offset += c.data.len() as u64;
            // Copied: the source blocks' pages need not stay resident.
            copied += c.data.len();
            if copied >= RELEASE_EVERY {
                copied = 0;
                for b in sources {
                    b.release_all();
                }
            }
        }
        index_series.push((labels.clone(), refs));
    }
    for b in sources {
        b.release_all();
    }
    let file = w.into_inner().map_err(|e| io_err(&cpath, e.into_error()))?;
    file.sync_all().map_err(|e| io_err(&cpath, e))?;
    drop(file);
    let index = write_index(&index_series);
    write_file(&tmp.join("index"), &index)?;
    if !replaces.is_empty() {
        write_file(&tmp.join(REPLACES), replaces.join("\n").as_bytes())?;
    }
    sync_dir(tmp)?;
    let dst = blocks_dir.join(id);
    std::fs::rename(tmp, &dst).map_err(|e| io_err(&dst, e))?;
    sync_dir(blocks_dir)?;
    let b = BlockReader::open(&dst)?;
    Ok((b, offset + index.len() as u64))
}

/// In a compacted block: the ids of the blocks it replaces, one per line.
/// Start-up deletes those that a crash left behind.
pub const REPLACES: &str = "replaces";

/// Merges `blocks` (of one tenant) into one new block; the caller swaps it
/// in and deletes the old ones.
pub fn compact(blocks_dir: &Path, blocks: &[Arc<BlockReader>]) -> Result<(BlockReader, u64)> {
    let mut series: BTreeMap<Labels, Vec<Arc<Chunk>>> = BTreeMap::new();
    for b in blocks {
        let mut read = 0usize;
        let ipath = b.dir.join("index");
        for id in 0..b.index.series_count() as u32 {
            let (labels, refs) = b.index.series(id).map_err(|e| corrupt(&ipath, e))?;
            let v = series.entry(labels).or_default();
            for r in &refs {
                let c = b.chunk(r)?;
                // Parsing read the chunk's pages; writing reads them again,
                // one chunk at a time, so they need not all stay resident.
                read += c.data.len();
                if read >= RELEASE_EVERY {
                    read = 0;
                    b.release_all();
                }
                v.push(Arc::new(c));
            }
        }
    }
    let ids: Vec<String> = blocks.iter().map(|b| b.id.clone()).collect();
    write_block(blocks_dir, &series, &ids, blocks)
}

/// Opens every block under `blocks_dir`, removing leftovers of interrupted
/// writes. A block that fails to open (damaged or missing file) is logged,
/// counted in `miniloki_corrupt_reads_total`, skipped, and described in
/// `damaged`.
pub fn open_blocks(blocks_dir: &Path, damaged: &mut Vec<String>) -> Result<Vec<Arc<BlockReader>>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(blocks_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(blocks_dir, e)),
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    // Blocks replaced by a compacted block that a crash left behind.
    let mut replaced = std::collections::HashSet::new();
    for n in &names {
        if let Ok(text) = std::fs::read_to_string(blocks_dir.join(n).join(REPLACES)) {
            replaced.extend(text.lines().map(String::from));
        }
    }
    for n in names {
        let p = blocks_dir.join(&n);
        if replaced.contains(&n) {
            tracing::warn!(message = "Removing block replaced by compaction.", path = %p.display());
            let _ = std::fs::remove_dir_all(&p);
            continue;
        }
        if n.starts_with(TMP_PREFIX) {
            tracing::warn!(message = "Removing incomplete block.", path = %p.display());
            let _ = std::fs::remove_dir_all(&p);
            continue;
        }
        match BlockReader::open(&p) {
            Ok(b) => out.push(Arc::new(b)),
            Err(error) => {
                tracing::error!(message = "Skipping unreadable block.", path = %p.display(), %error);
                super::METRICS.corrupt_reads.fetch_add(1, Ordering::Relaxed);
                damaged.push(format!(
                    "skipped unreadable block {n} at start-up ({error}); results may be incomplete"
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::chunk::{assemble_chunk, encode_block, RawEntries};
    use crate::storage::Codec;

    /// Resident kB of the mappings of `path` in this process.
    fn mapped_rss_kb(path: &Path) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        let mut kb = 0;
        for l in smaps.lines() {
            let first = l.split_whitespace().next().unwrap_or_default();
            let is_header = first.split_once('-').is_some_and(|(a, b)| {
                u64::from_str_radix(a, 16).is_ok() && u64::from_str_radix(b, 16).is_ok()
            });
            if is_header {
                inside = l.ends_with(&*path.to_string_lossy());
            } else if inside && l.starts_with("Rss:") {
                kb += l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap();
            }
        }
        kb
    }

    #[test]
    fn release_pages_drops_a_copied_chunk_from_rss() {
        let d = tempfile::tempdir().unwrap();
        // 2,000 lines of 1,000 bytes, uncompressed: a 2 MB chunk.
        let mut raw = RawEntries::default();
        for i in 0..2000u32 {
            let line = vec![b'a' + (i % 26) as u8; 1000];
            raw.push(i as i64, &line, &[0]);
        }
        let blk = encode_block(Codec::None, &raw, &mut (0..raw.len()));
        let chunk = Chunk::parse(assemble_chunk(Codec::None, &[blk])).unwrap();
        let labels = Labels::from_pairs([("job", "x")]);
        let series = BTreeMap::from([(labels, vec![Arc::new(chunk)])]);
        let (b, _) = write_block(d.path(), &series, &[], &[]).unwrap();
        let (_, refs) = b.index.series(0).unwrap();
        let c = b.chunk(&refs[0]).unwrap();
        let sum: u64 = c.data.iter().map(|&x| x as u64).sum();
        assert!(sum > 0);
        let before = mapped_rss_kb(&b.chunks_path);
        assert!(before >= 1900, "resident after reading: {before} kB");
        // Memory outside the mapping is left alone.
        b.release_pages(&raw.lines);
        assert_eq!(mapped_rss_kb(&b.chunks_path), before);
        b.release_pages(&c.data);
        let after = mapped_rss_kb(&b.chunks_path);
        assert!(after <= 8, "resident after release: {after} kB");
        // The data reads back unchanged.
        assert_eq!(c.data.iter().map(|&x| x as u64).sum::<u64>(), sum);
    }
}
