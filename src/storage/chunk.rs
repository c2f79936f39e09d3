//! The chunk format: a stream's entries, cut into blocks of up to
//! `block_size` uncompressed bytes, each sorted by timestamp.
//!
//! Every block keeps its timestamps (delta varints) and line lengths
//! (varints) in plain columns *outside* the compressed data, each covered by
//! its own CRC32C, so that [`ReadColumns::TimestampsAndSizes`] never touches
//! or decompresses the lines. Lines, and structured metadata in its own
//! column, are compressed with the chunk's [`Codec`]. Byte layout:
//! `docs/storage.md`. Decoding never panics: every length is checked, and
//! decompressed sizes are capped before anything is allocated.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use super::enc::{put_uvarint, put_varint, DecodeError, DecodeResult, Reader};
use super::{Codec, EntryBlock, ReadColumns};

pub const CHUNK_MAGIC: &[u8; 4] = b"MLCK";
pub const CHUNK_VERSION: u8 = 1;
const CHUNK_HEADER: usize = 8;
const TABLE_ENTRY: usize = 32;
const FOOTER: usize = 36;
const BLOCK_HEADER: usize = 28;
/// Upper bound of one block's decompressed lines or metadata (sanity cap).
pub const MAX_BLOCK_RAW: usize = 512 << 20;

pub fn codec_byte(c: Codec) -> u8 {
    match c {
        Codec::None => 0,
        Codec::Snappy => 1,
        Codec::Zstd => 2,
    }
}

pub fn codec_from_byte(b: u8) -> DecodeResult<Codec> {
    match b {
        0 => Ok(Codec::None),
        1 => Ok(Codec::Snappy),
        2 => Ok(Codec::Zstd),
        _ => Err(DecodeError(format!("unknown codec {b}"))),
    }
}

/// Per-thread buffers and compression context for [`encode_block`], reused
/// from block to block: building a block then allocates only its exact-size
/// output, instead of growing four columns by doubling and a zstd context
/// and output of the block's raw size each time (which churned the
/// allocator and kept freed memory fragmented under a sustained ingest).
#[derive(Default)]
struct EncodeScratch {
    ts_col: Vec<u8>,
    lens_col: Vec<u8>,
    lines: Vec<u8>,
    md: Vec<u8>,
    lines_comp: Vec<u8>,
    md_comp: Vec<u8>,
    zstd: Option<zstd::bulk::Compressor<'static>>,
}

/// Scratch buffers larger than this are released after use (a re-sort can
/// build blocks well over `block_size`; typical blocks stay far below).
const SCRATCH_KEEP: usize = 4 << 20;

impl EncodeScratch {
    fn trim(&mut self) {
        for v in [
            &mut self.ts_col,
            &mut self.lens_col,
            &mut self.lines,
            &mut self.md,
            &mut self.lines_comp,
            &mut self.md_comp,
        ] {
            v.clear();
            if v.capacity() > SCRATCH_KEEP {
                *v = Vec::new();
            }
        }
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<EncodeScratch> = std::cell::RefCell::default();
}

/// Compresses `raw` into `out` (cleared first).
fn compress(
    codec: Codec,
    raw: &[u8],
    out: &mut Vec<u8>,
    zstd: &mut Option<zstd::bulk::Compressor<'static>>,
) {
    out.clear();
    if raw.is_empty() {
        return;
    }
    match codec {
        Codec::None => out.extend_from_slice(raw),
        Codec::Snappy => {
            out.resize(snap::raw::max_compress_len(raw.len()), 0);
            match snap::raw::Encoder::new().compress(raw, out) {
                Ok(n) => out.truncate(n),
                // Unreachable for inputs under 4 GiB; keep the data anyway.
                Err(_) => {
                    out.clear();
                    out.extend_from_slice(raw)
                }
            }
        }
        Codec::Zstd => {
            if zstd.is_none() {
                *zstd = zstd::bulk::Compressor::new(1).ok();
            }
            out.reserve(zstd::zstd_safe::compress_bound(raw.len()));
            let ok = zstd
                .as_mut()
                .is_some_and(|z| z.compress_to_buffer(raw, out).is_ok());
            if !ok {
                out.clear();
                out.extend_from_slice(raw);
            }
        }
    }
}

fn decompress(codec: Codec, data: &[u8], raw_len: usize, out: &mut Vec<u8>) -> DecodeResult<()> {
    out.clear();
    if raw_len == 0 {
        return if data.is_empty() {
            Ok(())
        } else {
            Err(DecodeError("data for an empty column".into()))
        };
    }
    if raw_len > MAX_BLOCK_RAW {
        return Err(DecodeError(format!(
            "block of {raw_len} bytes exceeds the cap"
        )));
    }
    match codec {
        Codec::None => out.extend_from_slice(data),
        Codec::Snappy => {
            let n =
                snap::raw::decompress_len(data).map_err(|e| DecodeError(format!("snappy: {e}")))?;
            if n != raw_len {
                return Err(DecodeError(format!(
                    "snappy length {n}, expected {raw_len}"
                )));
            }
            out.resize(n, 0);
            snap::raw::Decoder::new()
                .decompress(data, out)
                .map_err(|e| DecodeError(format!("snappy: {e}")))?;
        }
        Codec::Zstd => {
            *out = zstd::bulk::decompress(data, raw_len)
                .map_err(|e| DecodeError(format!("zstd: {e}")))?;
        }
    }
    if out.len() != raw_len {
        return Err(DecodeError(format!(
            "decompressed {} bytes, expected {raw_len}",
            out.len()
        )));
    }
    Ok(())
}

/// Description of one encoded block (kept in the chunk's block table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockMeta {
    pub entries: u32,
    /// Uncompressed bytes of lines plus metadata.
    pub raw: u32,
    pub min_ts: i64,
    pub max_ts: i64,
}

/// An encoded block, sharing the bytes of its chunk, head or mmapped file.
#[derive(Clone, Debug)]
pub struct EncodedBlock {
    pub data: Bytes,
    pub meta: BlockMeta,
}

/// Entries in the raw form the head stores and blocks are built from:
/// lines and per-entry metadata (varint count, then length-prefixed name and
/// value pairs) back to back.
#[derive(Default, Debug, Clone)]
pub struct RawEntries {
    pub ts: Vec<i64>,
    /// End offset of each line in `lines`.
    pub line_end: Vec<u32>,
    pub lines: Vec<u8>,
    /// End offset of each entry's metadata in `md`.
    pub md_end: Vec<u32>,
    pub md: Vec<u8>,
}

impl RawEntries {
    /// Keeps the first `n` entries (drops what a failed decode appended).
    pub fn truncate(&mut self, n: usize) {
        if n >= self.len() {
            return;
        }
        let end = |v: &[u32]| if n == 0 { 0 } else { v[n - 1] as usize };
        let (le, me) = (end(&self.line_end), end(&self.md_end));
        self.ts.truncate(n);
        self.line_end.truncate(n);
        self.lines.truncate(le);
        self.md_end.truncate(n);
        self.md.truncate(me);
    }

    pub fn len(&self) -> usize {
        self.ts.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }
    pub fn line(&self, i: usize) -> &[u8] {
        let s = if i == 0 {
            0
        } else {
            self.line_end[i - 1] as usize
        };
        &self.lines[s..self.line_end[i] as usize]
    }
    pub fn md(&self, i: usize) -> &[u8] {
        let s = if i == 0 {
            0
        } else {
            self.md_end[i - 1] as usize
        };
        &self.md[s..self.md_end[i] as usize]
    }
    /// Heap bytes the buffers hold (by capacity).
    pub fn capacity_bytes(&self) -> usize {
        self.ts.capacity() * 8
            + (self.line_end.capacity() + self.md_end.capacity()) * 4
            + self.lines.capacity()
            + self.md.capacity()
    }
    /// Uncompressed size (lines plus metadata).
    pub fn raw_size(&self) -> usize {
        self.lines.len() + self.md.len()
    }
    pub fn push(&mut self, ts: i64, line: &[u8], md: &[u8]) {
        self.ts.push(ts);
        self.lines.extend_from_slice(line);
        self.line_end.push(self.lines.len() as u32);
        self.md.extend_from_slice(md);
        self.md_end.push(self.md.len() as u32);
    }
    /// Whether entry `i` equals `(ts, line, md)`.
    pub fn same(&self, i: usize, ts: i64, line: &[u8], md: &[u8]) -> bool {
        self.ts[i] == ts && self.line(i) == line && self.md(i) == md
    }
    /// The permutation that sorts the entries by timestamp (stable).
    pub fn sorted_order(&self) -> Option<Vec<u32>> {
        if self.ts.windows(2).all(|w| w[0] <= w[1]) {
            return None;
        }
        let mut idx: Vec<u32> = (0..self.ts.len() as u32).collect();
        idx.sort_by_key(|&i| self.ts[i as usize]);
        Some(idx)
    }
}

/// Encodes metadata pairs in the raw per-entry form.
pub fn encode_metadata(pairs: &[(String, String)], out: &mut Vec<u8>) {
    put_uvarint(out, pairs.len() as u64);
    for (k, v) in pairs {
        super::enc::put_bytes(out, k.as_bytes());
        super::enc::put_bytes(out, v.as_bytes());
    }
}

/// Encodes entries `order` (indices into `src`, ascending ts) as one block.
pub fn encode_block(
    codec: Codec,
    src: &RawEntries,
    order: &mut dyn Iterator<Item = usize>,
) -> EncodedBlock {
    SCRATCH.with(|sc| match sc.try_borrow_mut() {
        Ok(mut sc) => {
            let b = encode_block_with(codec, src, order, &mut sc);
            sc.trim();
            b
        }
        // Not reachable (encoding does not re-enter); stay correct anyway.
        Err(_) => encode_block_with(codec, src, order, &mut EncodeScratch::default()),
    })
}

fn encode_block_with(
    codec: Codec,
    src: &RawEntries,
    order: &mut dyn Iterator<Item = usize>,
    sc: &mut EncodeScratch,
) -> EncodedBlock {
    let EncodeScratch {
        ts_col,
        lens_col,
        lines,
        md,
        lines_comp,
        md_comp,
        zstd,
    } = sc;
    ts_col.clear();
    lens_col.clear();
    lines.clear();
    md.clear();
    let mut any_md = false;
    let (mut prev, mut n, mut min_ts, mut max_ts) = (0i64, 0u32, i64::MAX, i64::MIN);
    for i in order {
        let ts = src.ts[i];
        put_varint(ts_col, ts.wrapping_sub(prev));
        prev = ts;
        min_ts = min_ts.min(ts);
        max_ts = max_ts.max(ts);
        let l = src.line(i);
        put_uvarint(lens_col, l.len() as u64);
        lines.extend_from_slice(l);
        let m = src.md(i);
        if m != [0] {
            any_md = true;
        }
        if m.is_empty() {
            md.push(0);
        } else {
            md.extend_from_slice(m);
        }
        n += 1;
    }
    if !any_md {
        md.clear();
    }
    compress(codec, lines, lines_comp, zstd);
    compress(codec, md, md_comp, zstd);
    // Exactly the block's size: the block lives on in a head or chunk.
    let mut out = Vec::with_capacity(
        BLOCK_HEADER + ts_col.len() + lens_col.len() + 4 + lines_comp.len() + md_comp.len() + 4,
    );
    out.resize(BLOCK_HEADER, 0);
    out.extend_from_slice(ts_col);
    out.extend_from_slice(lens_col);
    out.extend_from_slice(&[0; 4]); // column CRC, filled in below
    let data_start = out.len();
    out.extend_from_slice(lines_comp);
    out.extend_from_slice(md_comp);
    let dcrc = crc32c::crc32c(&out[data_start..]);
    out.extend_from_slice(&dcrc.to_le_bytes());
    let hdr = [
        n,
        ts_col.len() as u32,
        lens_col.len() as u32,
        lines_comp.len() as u32,
        lines.len() as u32,
        md_comp.len() as u32,
        md.len() as u32,
    ];
    for (i, v) in hdr.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    // The header is covered by the column CRC too.
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&out[..BLOCK_HEADER]),
        ts_col_and_lens(&out, &hdr),
    );
    let pos = BLOCK_HEADER + hdr[1] as usize + hdr[2] as usize;
    out[pos..pos + 4].copy_from_slice(&crc.to_le_bytes());
    if n == 0 {
        min_ts = 0;
        max_ts = 0;
    }
    debug_assert_eq!(out.len(), out.capacity());
    EncodedBlock {
        data: Bytes::from(out),
        meta: BlockMeta {
            entries: n,
            raw: (lines.len() + md.len()) as u32,
            min_ts,
            max_ts,
        },
    }
}

fn ts_col_and_lens<'a>(out: &'a [u8], hdr: &[u32; 7]) -> &'a [u8] {
    &out[BLOCK_HEADER..BLOCK_HEADER + hdr[1] as usize + hdr[2] as usize]
}

/// Parsed fixed header of a block.
struct BlockLayout<'a> {
    entries: usize,
    ts: &'a [u8],
    lens: &'a [u8],
    lines: &'a [u8],
    lines_raw: usize,
    md: &'a [u8],
    md_raw: usize,
}

fn layout(data: &[u8], want_data: bool) -> DecodeResult<BlockLayout<'_>> {
    let mut r = Reader::new(data);
    let mut h = [0u32; 7];
    for v in h.iter_mut() {
        *v = r.u32()?;
    }
    let ts = r.bytes(h[1] as usize)?;
    let lens = r.bytes(h[2] as usize)?;
    let crc = r.u32()?;
    let want = crc32c::crc32c_append(
        crc32c::crc32c(&data[..BLOCK_HEADER]),
        &data[BLOCK_HEADER..BLOCK_HEADER + ts.len() + lens.len()],
    );
    if crc != want {
        return Err(DecodeError("block column checksum mismatch".into()));
    }
    let data_start = r.pos();
    let lines = r.bytes(h[3] as usize)?;
    let md = r.bytes(h[5] as usize)?;
    let data_end = r.pos();
    let dcrc = r.u32()?;
    if want_data && dcrc != crc32c::crc32c(&data[data_start..data_end]) {
        return Err(DecodeError("block data checksum mismatch".into()));
    }
    Ok(BlockLayout {
        entries: h[0] as usize,
        ts,
        lens,
        lines,
        lines_raw: h[4] as usize,
        md,
        md_raw: h[6] as usize,
    })
}

/// Interns metadata strings within one decode.
#[derive(Default)]
pub struct Interner {
    map: HashMap<Box<[u8]>, Arc<str>>,
}

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.map.get(s.as_bytes()) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        if self.map.len() < 4096 {
            self.map.insert(s.as_bytes().into(), a.clone());
        }
        a
    }
}

/// Decodes the timestamp and line-length columns into `out` (cleared
/// first), and with [`ReadColumns::All`] the lines and metadata too.
pub fn decode_block(
    codec: Codec,
    data: &[u8],
    cols: ReadColumns,
    out: &mut EntryBlock,
    interner: &mut Interner,
) -> DecodeResult<()> {
    let all = cols == ReadColumns::All;
    let l = layout(data, all)?;
    out.timestamps.clear();
    out.line_lens.clear();
    out.lines.clear();
    out.line_offsets.clear();
    out.metadata.clear();
    // Each entry takes at least one byte in each column.
    if l.entries > l.ts.len() || l.entries > l.lens.len() {
        return Err(DecodeError("entry count exceeds the columns".into()));
    }
    out.timestamps.reserve(l.entries);
    out.line_lens.reserve(l.entries);
    let mut tr = Reader::new(l.ts);
    let mut lr = Reader::new(l.lens);
    let mut prev = 0i64;
    let mut total: u64 = 0;
    for _ in 0..l.entries {
        prev = prev.wrapping_add(tr.varint()?);
        if out.timestamps.last().is_some_and(|&p| p > prev) {
            return Err(DecodeError("timestamps not sorted".into()));
        }
        out.timestamps.push(prev);
        let n = lr.len(u32::MAX as usize)?;
        total += n as u64;
        out.line_lens.push(n as u32);
    }
    if !tr.is_empty() || !lr.is_empty() {
        return Err(DecodeError("trailing bytes in block columns".into()));
    }
    if total != l.lines_raw as u64 {
        return Err(DecodeError("line lengths do not add up".into()));
    }
    if !all {
        return Ok(());
    }
    decompress(codec, l.lines, l.lines_raw, &mut out.lines)?;
    out.line_offsets.reserve(l.entries + 1);
    let mut off = 0u32;
    out.line_offsets.push(0);
    for &n in &out.line_lens {
        off += n;
        out.line_offsets.push(off);
    }
    if l.md_raw == 0 {
        if !l.md.is_empty() {
            return Err(DecodeError("metadata without size".into()));
        }
        out.metadata.resize(l.entries, Vec::new());
        return Ok(());
    }
    let mut md = Vec::new();
    decompress(codec, l.md, l.md_raw, &mut md)?;
    let mut r = Reader::new(&md);
    out.metadata.reserve(l.entries);
    for _ in 0..l.entries {
        let n = r.len(r.remaining())?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let k = interner.get(r.str()?);
            let val = interner.get(r.str()?);
            v.push((k, val));
        }
        out.metadata.push(v);
    }
    if !r.is_empty() {
        return Err(DecodeError("trailing bytes in metadata".into()));
    }
    Ok(())
}

/// Decodes a block into raw entries (used to re-sort overlapping blocks).
pub fn decode_block_raw(codec: Codec, data: &[u8], out: &mut RawEntries) -> DecodeResult<()> {
    let l = layout(data, true)?;
    let mut eb = EntryBlock::default();
    decode_block(
        codec,
        data,
        ReadColumns::TimestampsAndSizes,
        &mut eb,
        &mut Interner::default(),
    )?;
    let mut lines = Vec::new();
    decompress(codec, l.lines, l.lines_raw, &mut lines)?;
    let mut md = Vec::new();
    decompress(codec, l.md, l.md_raw, &mut md)?;
    let mut mr = Reader::new(&md);
    let mut off = 0usize;
    for (i, &ts) in eb.timestamps.iter().enumerate() {
        let n = eb.line_lens[i] as usize;
        let line = lines
            .get(off..off + n)
            .ok_or_else(|| DecodeError("line out of range".into()))?;
        off += n;
        let md_slice: &[u8] = if l.md_raw == 0 {
            &[0]
        } else {
            let start = mr.pos();
            let cnt = mr.len(mr.remaining())?;
            for _ in 0..cnt {
                mr.len_bytes()?;
                mr.len_bytes()?;
            }
            &md[start..mr.pos()]
        };
        out.push(ts, line, md_slice);
    }
    Ok(())
}

/// Assembles a chunk from blocks that are sorted and do not overlap.
pub fn assemble_chunk(codec: Codec, blocks: &[EncodedBlock]) -> Bytes {
    let body: usize = blocks.iter().map(|b| b.data.len()).sum();
    let mut out = Vec::with_capacity(CHUNK_HEADER + body + blocks.len() * TABLE_ENTRY + FOOTER);
    out.extend_from_slice(CHUNK_MAGIC);
    out.extend_from_slice(&[CHUNK_VERSION, codec_byte(codec), 0, 0]);
    let mut table = Vec::with_capacity(blocks.len() * TABLE_ENTRY);
    let (mut entries, mut min, mut max) = (0u32, i64::MAX, i64::MIN);
    for b in blocks {
        table.extend_from_slice(&(out.len() as u32).to_le_bytes());
        table.extend_from_slice(&(b.data.len() as u32).to_le_bytes());
        table.extend_from_slice(&b.meta.entries.to_le_bytes());
        table.extend_from_slice(&b.meta.raw.to_le_bytes());
        table.extend_from_slice(&b.meta.min_ts.to_le_bytes());
        table.extend_from_slice(&b.meta.max_ts.to_le_bytes());
        out.extend_from_slice(&b.data);
        entries += b.meta.entries;
        min = min.min(b.meta.min_ts);
        max = max.max(b.meta.max_ts);
    }
    if blocks.is_empty() {
        min = 0;
        max = 0;
    }
    let table_off = out.len() as u32;
    out.extend_from_slice(&table);
    let footer_start = out.len();
    out.extend_from_slice(&table_off.to_le_bytes());
    out.extend_from_slice(&(blocks.len() as u32).to_le_bytes());
    out.extend_from_slice(&entries.to_le_bytes());
    out.extend_from_slice(&min.to_le_bytes());
    out.extend_from_slice(&max.to_le_bytes());
    let crc = chunk_crc(&out[..CHUNK_HEADER], &table, &out[footer_start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(CHUNK_MAGIC);
    Bytes::from(out)
}

/// CRC32C over the chunk header, block table and footer fields.
fn chunk_crc(header: &[u8], table: &[u8], footer: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c_append(crc32c::crc32c(header), table), footer)
}

/// A parsed chunk: its codec and blocks (sharing the chunk's bytes).
#[derive(Clone, Debug)]
pub struct Chunk {
    pub codec: Codec,
    pub blocks: Vec<EncodedBlock>,
    pub entries: u32,
    pub min_ts: i64,
    pub max_ts: i64,
    /// The whole encoded chunk.
    pub data: Bytes,
}

impl Chunk {
    pub fn parse(data: Bytes) -> DecodeResult<Chunk> {
        let n = data.len();
        if n < CHUNK_HEADER + FOOTER {
            return Err(DecodeError(format!("chunk of {n} bytes is too short")));
        }
        if &data[..4] != CHUNK_MAGIC || &data[n - 4..] != CHUNK_MAGIC {
            return Err(DecodeError("bad chunk magic".into()));
        }
        if data[4] != CHUNK_VERSION {
            return Err(DecodeError(format!(
                "unsupported chunk version {}",
                data[4]
            )));
        }
        let codec = codec_from_byte(data[5])?;
        let mut f = Reader::new(&data[n - FOOTER..]);
        let table_off = f.u32()? as usize;
        let nblocks = f.u32()? as usize;
        let entries = f.u32()?;
        let min_ts = f.i64()?;
        let max_ts = f.i64()?;
        let crc = f.u32()?;
        let table_end = nblocks
            .checked_mul(TABLE_ENTRY)
            .and_then(|t| t.checked_add(table_off))
            .filter(|&e| e == n - FOOTER && table_off >= CHUNK_HEADER)
            .ok_or_else(|| DecodeError("bad block table bounds".into()))?;
        let table = &data[table_off..table_end];
        if crc != chunk_crc(&data[..CHUNK_HEADER], table, &data[n - FOOTER..n - 8]) {
            return Err(DecodeError("chunk table checksum mismatch".into()));
        }
        let mut r = Reader::new(table);
        let mut blocks = Vec::with_capacity(nblocks);
        for _ in 0..nblocks {
            let off = r.u32()? as usize;
            let len = r.u32()? as usize;
            let meta = BlockMeta {
                entries: r.u32()?,
                raw: r.u32()?,
                min_ts: r.i64()?,
                max_ts: r.i64()?,
            };
            if off < CHUNK_HEADER || off.checked_add(len).is_none_or(|e| e > table_off) {
                return Err(DecodeError("block out of bounds".into()));
            }
            blocks.push(EncodedBlock {
                data: data.slice(off..off + len),
                meta,
            });
        }
        Ok(Chunk {
            codec,
            blocks,
            entries,
            min_ts,
            max_ts,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RawEntries {
        let mut r = RawEntries::default();
        let mut md = Vec::new();
        for i in 0..500i64 {
            md.clear();
            if i % 3 == 0 {
                encode_metadata(
                    &[
                        ("trace_id".into(), format!("t{i}")),
                        ("user".into(), "bob".into()),
                    ],
                    &mut md,
                );
            } else {
                md.push(0);
            }
            let line = format!("line {i} level=info msg=\"hello world\"");
            r.push(
                1_700_000_000_000_000_000 + i * 1_000_001 + 7,
                line.as_bytes(),
                &md,
            );
        }
        r
    }

    fn blocks_of(codec: Codec, r: &RawEntries, per: usize) -> Vec<EncodedBlock> {
        (0..r.len())
            .step_by(per)
            .map(|s| encode_block(codec, r, &mut (s..(s + per).min(r.len()))))
            .collect()
    }

    #[test]
    fn round_trip_every_codec_and_column_set() {
        let r = sample();
        for codec in [Codec::Zstd, Codec::Snappy, Codec::None] {
            let bytes = assemble_chunk(codec, &blocks_of(codec, &r, 128));
            let c = Chunk::parse(bytes).unwrap();
            assert_eq!(c.codec, codec);
            assert_eq!(c.blocks.len(), 4);
            assert_eq!(c.entries, 500);
            assert_eq!(c.min_ts, 1_700_000_000_000_000_007);
            assert_eq!(c.max_ts, 1_700_000_000_000_000_007 + 499 * 1_000_001);
            let mut i = 0usize;
            let mut it = Interner::default();
            for b in &c.blocks {
                let mut ts_only = EntryBlock::default();
                decode_block(
                    c.codec,
                    &b.data,
                    ReadColumns::TimestampsAndSizes,
                    &mut ts_only,
                    &mut it,
                )
                .unwrap();
                assert!(ts_only.lines.is_empty() && ts_only.metadata.is_empty());
                let mut eb = EntryBlock::default();
                decode_block(c.codec, &b.data, ReadColumns::All, &mut eb, &mut it).unwrap();
                assert_eq!(eb.timestamps, ts_only.timestamps);
                assert_eq!(eb.line_lens, ts_only.line_lens);
                for j in 0..eb.len() {
                    assert_eq!(eb.timestamps[j], r.ts[i]);
                    assert_eq!(eb.line(j), r.line(i));
                    assert_eq!(eb.line_lens[j] as usize, r.line(i).len());
                    if i.is_multiple_of(3) {
                        assert_eq!(eb.metadata[j].len(), 2);
                        assert_eq!(&*eb.metadata[j][0].0, "trace_id");
                        assert_eq!(&*eb.metadata[j][0].1, format!("t{i}"));
                        assert_eq!(&*eb.metadata[j][1].1, "bob");
                    } else {
                        assert!(eb.metadata[j].is_empty());
                    }
                    i += 1;
                }
            }
            assert_eq!(i, 500);
        }
    }

    #[test]
    fn no_metadata_and_raw_decode() {
        let mut r = RawEntries::default();
        r.push(-5, b"a", &[0]);
        r.push(3, b"", &[0]);
        r.push(3, b"ccc", &[0]);
        let b = encode_block(Codec::Zstd, &r, &mut (0..3));
        assert_eq!(
            b.meta,
            BlockMeta {
                entries: 3,
                raw: 4,
                min_ts: -5,
                max_ts: 3
            }
        );
        let mut back = RawEntries::default();
        decode_block_raw(Codec::Zstd, &b.data, &mut back).unwrap();
        assert_eq!(back.ts, vec![-5, 3, 3]);
        assert_eq!(back.line(2), b"ccc");
        assert_eq!(back.md(1), &[0]);
    }

    #[test]
    fn raw_entries_truncate_keeps_a_prefix() {
        let mut r = RawEntries::default();
        r.push(1, b"aa", &[0]);
        r.push(2, b"bbb", &[1, 2]);
        r.push(3, b"c", &[]);
        r.truncate(5);
        assert_eq!(r.len(), 3);
        r.truncate(1);
        assert_eq!(r.ts, vec![1]);
        assert_eq!(r.line(0), b"aa");
        assert_eq!(r.md(0), &[0]);
        assert_eq!((r.lines.len(), r.md.len()), (2, 1));
        r.push(9, b"z", &[7]);
        assert_eq!(r.line(1), b"z");
        assert_eq!(r.md(1), &[7]);
        r.truncate(0);
        assert!(r.is_empty() && r.lines.is_empty() && r.md.is_empty());
    }

    #[test]
    fn corruption_is_an_error() {
        let r = sample();
        let bytes = assemble_chunk(Codec::Snappy, &blocks_of(Codec::Snappy, &r, 100));
        // Truncations and bit flips anywhere: parse or decode fails, never panics.
        for cut in [0, 3, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(Chunk::parse(bytes.slice(..cut)).is_err());
        }
        let mut failures = 0;
        for pos in (0..bytes.len()).step_by(97) {
            let mut v = bytes.to_vec();
            v[pos] ^= 0x40;
            let res = Chunk::parse(Bytes::from(v)).and_then(|c| {
                let mut eb = EntryBlock::default();
                for b in &c.blocks {
                    decode_block(
                        c.codec,
                        &b.data,
                        ReadColumns::All,
                        &mut eb,
                        &mut Interner::default(),
                    )?;
                }
                Ok(())
            });
            if res.is_err() {
                failures += 1;
            }
        }
        // Every flipped byte is covered by a checksum.
        assert_eq!(failures, bytes.len().div_ceil(97));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..300usize {
            let mut v = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.push(x as u8);
            }
            let _ = Chunk::parse(Bytes::from(v.clone()));
            let _ = decode_block(
                Codec::Zstd,
                &v,
                ReadColumns::All,
                &mut EntryBlock::default(),
                &mut Interner::default(),
            );
        }
    }
}
