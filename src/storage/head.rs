//! The in-memory head of one stream: the entries received since the last
//! cut, before they become an immutable chunk.
//!
//! Lines and metadata sit back to back in one buffer per head (no `String`
//! per line). Once the open block reaches `block_size` uncompressed bytes it
//! is sorted and compressed into a block of the chunk format, as Loki's head
//! does, so memory stays close to the compressed size. Entries may arrive
//! out of order; exact duplicates (timestamp, line and metadata) of entries
//! still in the open block are dropped. Cutting assembles the blocks into a
//! chunk whose blocks are sorted and do not overlap.

use super::chunk::{
    assemble_chunk, decode_block_raw, encode_block, Chunk, EncodedBlock, RawEntries,
};
use super::enc::DecodeError;
use super::Codec;

#[derive(Default, Debug)]
pub struct Head {
    /// Completed blocks, each sorted; they may overlap each other.
    pub blocks: Vec<EncodedBlock>,
    /// The open block, in arrival order.
    pub cur: RawEntries,
    /// Largest timestamp in `cur` (duplicates can only hide at or below it).
    cur_max: i64,
    /// `cur` is in ascending order (the common case).
    cur_sorted: bool,
    pub min_ts: i64,
    pub max_ts: i64,
    pub entries: usize,
    /// Uncompressed bytes (lines plus any metadata) in the head.
    pub raw_bytes: usize,
}

impl Head {
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Heap bytes held: the open block's buffers by capacity and the
    /// compressed blocks.
    pub fn memory_bytes(&self) -> usize {
        self.cur.capacity_bytes()
            + self.blocks.iter().map(|b| b.data.len()).sum::<usize>()
            + self.blocks.capacity() * std::mem::size_of::<EncodedBlock>()
    }

    /// Adds one entry; `false` if it is an exact duplicate and was dropped.
    pub fn append(
        &mut self,
        ts: i64,
        line: &[u8],
        md: &[u8],
        codec: Codec,
        block_size: usize,
    ) -> bool {
        if !self.cur.is_empty() && ts <= self.cur_max && self.is_dup(ts, line, md) {
            return false;
        }
        if self.entries == 0 {
            self.min_ts = ts;
            self.max_ts = ts;
        } else {
            self.min_ts = self.min_ts.min(ts);
            self.max_ts = self.max_ts.max(ts);
        }
        if self.cur.is_empty() {
            self.cur_max = ts;
            self.cur_sorted = true;
        } else {
            self.cur_sorted &= ts >= self.cur_max;
            self.cur_max = self.cur_max.max(ts);
        }
        self.cur.push(ts, line, md);
        self.entries += 1;
        // Entries without metadata carry only the one-byte empty marker.
        self.raw_bytes += line.len() + if md == [0] { 0 } else { md.len() };
        if self.cur.raw_size() >= block_size {
            self.close_block(codec);
        }
        true
    }

    /// Whether `(ts, line, md)` is already in the open block.
    fn is_dup(&self, ts: i64, line: &[u8], md: &[u8]) -> bool {
        let c = &self.cur;
        if self.cur_sorted {
            // Only the run of entries with this timestamp can match.
            let start = c.ts.partition_point(|&t| t < ts);
            return (start..c.len())
                .take_while(|&i| c.ts[i] == ts)
                .any(|i| c.same(i, ts, line, md));
        }
        (0..c.len()).any(|i| c.ts[i] == ts && c.same(i, ts, line, md))
    }

    /// Sorts and compresses the open block.
    fn close_block(&mut self, codec: Codec) {
        if self.cur.is_empty() {
            return;
        }
        let b = match self.cur.sorted_order() {
            None => encode_block(codec, &self.cur, &mut (0..self.cur.len())),
            Some(o) => encode_block(codec, &self.cur, &mut o.into_iter().map(|i| i as usize)),
        };
        self.blocks.push(b);
        self.cur = RawEntries::default();
    }

    /// Turns the head into a chunk whose blocks are sorted and disjoint in
    /// time, leaving the head empty. `None` when the head is empty.
    pub fn cut(&mut self, codec: Codec, block_size: usize) -> Result<Option<Chunk>, DecodeError> {
        if self.is_empty() {
            return Ok(None);
        }
        self.close_block(codec);
        let mut blocks = std::mem::take(&mut self.blocks);
        *self = Head::default();
        blocks.sort_by_key(|b| (b.meta.min_ts, b.meta.max_ts));
        // Blocks touching at one timestamp may share an exact duplicate: re-sort those too.
        let overlapping = blocks
            .windows(2)
            .any(|w| w[1].meta.min_ts <= w[0].meta.max_ts);
        if overlapping {
            blocks = resort(codec, &blocks, block_size)?;
        }
        Chunk::parse(assemble_chunk(codec, &blocks)).map(Some)
    }
}

/// Decodes overlapping blocks, merges their entries in time order (dropping
/// exact duplicates) and re-encodes them as disjoint blocks.
fn resort(
    codec: Codec,
    blocks: &[EncodedBlock],
    block_size: usize,
) -> Result<Vec<EncodedBlock>, DecodeError> {
    let mut all = RawEntries::default();
    for b in blocks {
        decode_block_raw(codec, &b.data, &mut all)?;
    }
    let mut order: Vec<u32> = (0..all.len() as u32).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (a as usize, b as usize);
        all.ts[a]
            .cmp(&all.ts[b])
            .then_with(|| all.line(a).cmp(all.line(b)))
            .then_with(|| all.md(a).cmp(all.md(b)))
    });
    order.dedup_by(|a, b| {
        let (a, b) = (*a as usize, *b as usize);
        all.same(b, all.ts[a], all.line(a), all.md(a))
    });
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (k, &i) in order.iter().enumerate() {
        size += all.line(i as usize).len() + all.md(i as usize).len();
        if size >= block_size || k + 1 == order.len() {
            out.push(encode_block(
                codec,
                &all,
                &mut order[start..=k].iter().map(|&i| i as usize),
            ));
            start = k + 1;
            size = 0;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::chunk::{decode_block, Interner};
    use crate::storage::{EntryBlock, ReadColumns};

    fn all_entries(c: &Chunk) -> Vec<(i64, String)> {
        let mut v = Vec::new();
        for b in &c.blocks {
            let mut eb = EntryBlock::default();
            decode_block(
                c.codec,
                &b.data,
                ReadColumns::All,
                &mut eb,
                &mut Interner::default(),
            )
            .unwrap();
            for i in 0..eb.len() {
                v.push((
                    eb.timestamps[i],
                    String::from_utf8(eb.line(i).to_vec()).unwrap(),
                ));
            }
        }
        v
    }

    #[test]
    fn out_of_order_and_duplicates() {
        let mut h = Head::default();
        assert!(h.append(10, b"b", &[0], Codec::Zstd, 1 << 20));
        assert!(h.append(5, b"a", &[0], Codec::Zstd, 1 << 20));
        assert!(!h.append(10, b"b", &[0], Codec::Zstd, 1 << 20));
        assert!(h.append(10, b"c", &[0], Codec::Zstd, 1 << 20));
        assert_eq!((h.entries, h.min_ts, h.max_ts, h.raw_bytes), (3, 5, 10, 3));
        let c = h.cut(Codec::Zstd, 1 << 20).unwrap().unwrap();
        assert!(h.is_empty());
        assert_eq!(
            all_entries(&c),
            vec![(5, "a".into()), (10, "b".into()), (10, "c".into())]
        );
    }

    #[test]
    fn duplicates_in_a_sorted_run() {
        let mut h = Head::default();
        for (ts, l, want) in [
            (1, "a", true),
            (2, "a", true),
            (2, "b", true),
            (2, "a", false),
            (2, "b", false),
            (1, "a", false),
            (3, "a", true),
        ] {
            assert_eq!(
                h.append(ts, l.as_bytes(), &[0], Codec::None, 1 << 20),
                want,
                "{ts} {l}"
            );
        }
        // Same line and time, different metadata: not a duplicate.
        assert!(h.append(3, b"a", &[1, 1, b'k', 1, b'v'], Codec::None, 1 << 20));
        assert_eq!(h.entries, 5);
    }

    #[test]
    fn overlapping_blocks_are_resorted() {
        let mut h = Head::default();
        // Block size 8: every 4 one-byte lines (each + 1 metadata byte) close a block.
        for ts in [1, 5, 9, 13, 2, 6, 10, 14, 3, 3] {
            h.append(ts, b"x", &[0], Codec::Snappy, 8);
        }
        // The second 3 is an exact duplicate of the first.
        assert_eq!(h.entries, 9);
        h.append(4, b"y", &[0], Codec::Snappy, 8);
        let c = h.cut(Codec::Snappy, 8).unwrap().unwrap();
        let got: Vec<i64> = all_entries(&c).iter().map(|e| e.0).collect();
        assert_eq!(got, vec![1, 2, 3, 4, 5, 6, 9, 10, 13, 14]);
        for w in c.blocks.windows(2) {
            assert!(w[0].meta.max_ts <= w[1].meta.min_ts);
        }
    }
}
