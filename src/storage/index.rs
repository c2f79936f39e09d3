//! The per-block label index, TSDB-like: a symbol table of sorted unique
//! strings, the series (label sets as symbol references, sorted, so that a
//! series id is its position), per-series chunk references, a label table
//! (name → sorted values, each with the offset of its postings) and the
//! postings themselves (roaring bitmaps of series ids), then a fixed table
//! of contents with a CRC32C over the whole file. Layout: `docs/storage.md`.
//!
//! The reader checks the CRC and parses the symbol and label tables once at
//! open; series and postings are decoded on demand from the mapped bytes.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;

use super::enc::{put_bytes, put_uvarint, put_varint, DecodeError, DecodeResult, Reader};
use super::{MatchOp, Matcher};
use crate::labels::Labels;

pub const INDEX_MAGIC: &[u8; 4] = b"MLIX";
pub const INDEX_VERSION: u8 = 1;
const TOC_LEN: usize = 72;

/// Where a chunk of a series lives in the block's `chunks` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRef {
    pub min_ts: i64,
    pub max_ts: i64,
    pub offset: u64,
    pub len: u64,
    pub entries: u64,
    /// Uncompressed bytes (lines and metadata).
    pub raw: u64,
}

/// Writes an index for `series`, which must be sorted by labels and unique.
pub fn write_index(series: &[(Labels, Vec<ChunkRef>)]) -> Vec<u8> {
    let mut syms: BTreeMap<&str, u32> = BTreeMap::new();
    for (l, _) in series {
        for (k, v) in l.iter() {
            syms.insert(k, 0);
            syms.insert(v, 0);
        }
    }
    for (i, v) in syms.values_mut().enumerate() {
        *v = i as u32;
    }
    let mut out = Vec::new();
    out.extend_from_slice(INDEX_MAGIC);
    out.extend_from_slice(&[INDEX_VERSION, 0, 0, 0]);
    let symbols_off = out.len() as u64;
    put_uvarint(&mut out, syms.len() as u64);
    for s in syms.keys() {
        put_bytes(&mut out, s.as_bytes());
    }
    let series_off = out.len() as u64;
    let mut table = Vec::with_capacity(series.len() * 4);
    // name sym -> value sym -> series ids
    let mut post: BTreeMap<u32, BTreeMap<u32, RoaringBitmap>> = BTreeMap::new();
    let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
    for (id, (l, chunks)) in series.iter().enumerate() {
        table.extend_from_slice(&(out.len() as u32).to_le_bytes());
        put_uvarint(&mut out, l.len() as u64);
        for (k, v) in l.iter() {
            let (ks, vs) = (syms[k], syms[v]);
            put_uvarint(&mut out, ks as u64);
            put_uvarint(&mut out, vs as u64);
            post.entry(ks)
                .or_default()
                .entry(vs)
                .or_default()
                .insert(id as u32);
        }
        put_uvarint(&mut out, chunks.len() as u64);
        for c in chunks {
            put_varint(&mut out, c.min_ts);
            put_uvarint(&mut out, c.max_ts.wrapping_sub(c.min_ts) as u64);
            put_uvarint(&mut out, c.offset);
            put_uvarint(&mut out, c.len);
            put_uvarint(&mut out, c.entries);
            put_uvarint(&mut out, c.raw);
            min_ts = min_ts.min(c.min_ts);
            max_ts = max_ts.max(c.max_ts);
        }
    }
    let table_off = out.len() as u64;
    out.extend_from_slice(&table);
    let mut postings = Vec::new();
    let labels_off = out.len() as u64;
    put_uvarint(&mut out, post.len() as u64);
    for (name, vals) in &post {
        put_uvarint(&mut out, *name as u64);
        put_uvarint(&mut out, vals.len() as u64);
        for (val, bm) in vals {
            put_uvarint(&mut out, *val as u64);
            put_uvarint(&mut out, postings.len() as u64);
            let start = postings.len();
            // Writing into a Vec cannot fail.
            let _ = bm.serialize_into(&mut postings);
            put_uvarint(&mut out, (postings.len() - start) as u64);
        }
    }
    let postings_off = out.len() as u64;
    out.extend_from_slice(&postings);
    if series.is_empty() || min_ts > max_ts {
        min_ts = 0;
        max_ts = 0;
    }
    for v in [
        symbols_off,
        series_off,
        table_off,
        series.len() as u64,
        labels_off,
        postings_off,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&min_ts.to_le_bytes());
    out.extend_from_slice(&max_ts.to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(INDEX_MAGIC);
    out
}

struct LabelEntry {
    name: u32,
    /// (value symbol, postings offset, postings length), sorted by value.
    values: Vec<(u32, usize, usize)>,
}

/// A parsed index over its bytes (usually a memory map).
pub struct IndexReader<D: AsRef<[u8]>> {
    data: D,
    symbols: Vec<Box<str>>,
    series_table: usize,
    nseries: usize,
    labels: Vec<LabelEntry>,
    postings: usize,
    pub min_ts: i64,
    pub max_ts: i64,
}

fn bad<T>(s: &str) -> DecodeResult<T> {
    Err(DecodeError(s.to_string()))
}

impl<D: AsRef<[u8]>> IndexReader<D> {
    pub fn open(data: D) -> DecodeResult<Self> {
        let b = data.as_ref();
        let n = b.len();
        if n < 8 + TOC_LEN || &b[..4] != INDEX_MAGIC || &b[n - 4..] != INDEX_MAGIC {
            return bad("not an index file (bad magic or too short)");
        }
        if b[4] != INDEX_VERSION {
            return bad("unsupported index version");
        }
        let mut t = Reader::new(&b[n - TOC_LEN..]);
        let mut toc = [0u64; 6];
        for v in toc.iter_mut() {
            *v = t.u64()?;
        }
        let min_ts = t.i64()?;
        let max_ts = t.i64()?;
        let crc = t.u32()?;
        if crc != crc32c::crc32c(&b[..n - 8]) {
            return bad("index checksum mismatch");
        }
        let body = n - TOC_LEN;
        let [sym_off, _series_off, table_off, nseries, labels_off, postings_off] = toc;
        if [sym_off, table_off, labels_off, postings_off]
            .iter()
            .any(|&o| o > body as u64)
        {
            return bad("index section out of bounds");
        }
        let (sym_off, table_off, labels_off, postings_off) = (
            sym_off as usize,
            table_off as usize,
            labels_off as usize,
            postings_off as usize,
        );
        if nseries
            .checked_mul(4)
            .is_none_or(|l| table_off as u64 + l > labels_off as u64)
        {
            return bad("series table out of bounds");
        }
        let mut r = Reader::new(&b[sym_off..body]);
        let nsym = r.len(r.remaining())?;
        let mut symbols = Vec::with_capacity(nsym);
        for _ in 0..nsym {
            symbols.push(Box::from(r.str()?));
        }
        let mut r = Reader::new(&b[labels_off..postings_off.max(labels_off)]);
        let nnames = r.len(r.remaining())?;
        let mut labels = Vec::with_capacity(nnames);
        let plen = body - postings_off;
        for _ in 0..nnames {
            let name = r.len(nsym.saturating_sub(1))? as u32;
            let nv = r.len(r.remaining())?;
            let mut values = Vec::with_capacity(nv);
            for _ in 0..nv {
                let v = r.len(nsym.saturating_sub(1))? as u32;
                let off = r.len(plen)?;
                let len = r.len(plen - off)?;
                values.push((v, off, len));
            }
            labels.push(LabelEntry { name, values });
        }
        if nsym == 0 && nnames > 0 {
            return bad("labels without symbols");
        }
        Ok(IndexReader {
            data,
            symbols,
            series_table: table_off,
            nseries: nseries as usize,
            labels,
            postings: postings_off,
            min_ts,
            max_ts,
        })
    }

    fn sym(&self, i: u64) -> DecodeResult<&str> {
        match self.symbols.get(i as usize) {
            Some(s) => Ok(s),
            None => bad("symbol reference out of range"),
        }
    }

    pub fn series_count(&self) -> usize {
        self.nseries
    }

    /// Size of the index file.
    pub fn data_len(&self) -> usize {
        self.data.as_ref().len()
    }

    fn series_reader(&self, id: u32) -> DecodeResult<Reader<'_>> {
        let b = self.data.as_ref();
        if id as usize >= self.nseries {
            return bad("series id out of range");
        }
        let p = self.series_table + id as usize * 4;
        let off = u32::from_le_bytes([b[p], b[p + 1], b[p + 2], b[p + 3]]) as usize;
        if off >= self.series_table {
            return bad("series offset out of range");
        }
        Ok(Reader::new(&b[off..self.series_table]))
    }

    /// The labels of series `id`.
    #[cfg(test)]
    pub fn labels(&self, id: u32) -> DecodeResult<Labels> {
        let mut r = self.series_reader(id)?;
        self.read_labels(&mut r)
    }

    fn read_labels(&self, r: &mut Reader<'_>) -> DecodeResult<Labels> {
        let n = r.len(r.remaining())?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let k = self.sym(r.uvarint()?)?;
            let val = self.sym(r.uvarint()?)?;
            v.push((k.to_string(), val.to_string()));
        }
        Ok(Labels::from_pairs(v))
    }

    /// The labels and chunk references of series `id`.
    pub fn series(&self, id: u32) -> DecodeResult<(Labels, Vec<ChunkRef>)> {
        let mut r = self.series_reader(id)?;
        let l = self.read_labels(&mut r)?;
        let n = r.len(r.remaining())?;
        let mut chunks = Vec::with_capacity(n);
        for _ in 0..n {
            let min_ts = r.varint()?;
            let max_ts = min_ts.wrapping_add(r.uvarint()? as i64);
            chunks.push(ChunkRef {
                min_ts,
                max_ts,
                offset: r.uvarint()?,
                len: r.uvarint()?,
                entries: r.uvarint()?,
                raw: r.uvarint()?,
            });
        }
        Ok((l, chunks))
    }

    /// Compares the labels of series `id` with `l` as `Labels`' `Ord` does
    /// (pair by pair, then by length), without allocating.
    fn cmp_series(&self, id: u32, l: &Labels) -> DecodeResult<std::cmp::Ordering> {
        let mut r = self.series_reader(id)?;
        let n = r.len(r.remaining())?;
        let pairs = l.pairs();
        for i in 0..n {
            let k = self.sym(r.uvarint()?)?;
            let v = self.sym(r.uvarint()?)?;
            let Some((lk, lv)) = pairs.get(i) else {
                return Ok(std::cmp::Ordering::Greater);
            };
            let o = k.cmp(lk.as_str()).then_with(|| v.cmp(lv.as_str()));
            if o.is_ne() {
                return Ok(o);
            }
        }
        Ok(n.cmp(&pairs.len()))
    }

    /// Finds a series by its exact label set (binary search).
    pub fn find(&self, l: &Labels) -> DecodeResult<Option<u32>> {
        let (mut lo, mut hi) = (0usize, self.nseries);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.cmp_series(mid as u32, l)? {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(mid as u32)),
            }
        }
        Ok(None)
    }

    fn label_entry(&self, name: &str) -> Option<&LabelEntry> {
        let i = self
            .labels
            .binary_search_by(|e| {
                self.symbols
                    .get(e.name as usize)
                    .map_or("", |s| s)
                    .cmp(name)
            })
            .ok()?;
        self.labels.get(i)
    }

    fn bitmap(&self, off: usize, len: usize) -> DecodeResult<RoaringBitmap> {
        let b = self.data.as_ref();
        let s = self.postings + off;
        let slice = b
            .get(s..s + len)
            .ok_or_else(|| DecodeError("postings out of bounds".into()))?;
        RoaringBitmap::deserialize_from(slice)
            .map_err(|e| DecodeError(format!("bad postings: {e}")))
    }

    /// Label names, sorted.
    pub fn label_names(&self) -> Vec<&str> {
        self.labels
            .iter()
            .filter_map(|e| self.symbols.get(e.name as usize).map(|s| &**s))
            .collect()
    }

    /// Values of label `name`, sorted.
    pub fn label_values(&self, name: &str) -> Vec<&str> {
        self.label_entry(name)
            .map(|e| {
                e.values
                    .iter()
                    .filter_map(|v| self.symbols.get(v.0 as usize).map(|s| &**s))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Series ids carrying `name="value"`.
    pub fn postings(&self, name: &str, value: &str) -> DecodeResult<RoaringBitmap> {
        let Some(e) = self.label_entry(name) else {
            return Ok(RoaringBitmap::new());
        };
        match e
            .values
            .binary_search_by(|v| self.symbols.get(v.0 as usize).map_or("", |s| s).cmp(value))
        {
            Ok(i) => self.bitmap(e.values[i].1, e.values[i].2),
            Err(_) => Ok(RoaringBitmap::new()),
        }
    }

    fn all(&self) -> RoaringBitmap {
        let mut b = RoaringBitmap::new();
        if self.nseries > 0 {
            b.insert_range(0..self.nseries as u32);
        }
        b
    }

    /// Series ids matching every matcher: equality through postings, other
    /// operators by scanning the name's values.
    pub fn select(&self, matchers: &[Matcher]) -> DecodeResult<RoaringBitmap> {
        let mut acc: Option<RoaringBitmap> = None;
        // Equality matchers first: they are cheapest and most selective.
        let mut order: Vec<&Matcher> = matchers.iter().collect();
        order.sort_by_key(|m| m.op != MatchOp::Eq || m.value.is_empty());
        for m in order {
            if acc.as_ref().is_some_and(|a| a.is_empty()) {
                break;
            }
            let set = if m.op == MatchOp::Eq && !m.value.is_empty() {
                self.postings(&m.name, &m.value)?
            } else {
                let empty_ok = m.matches_empty();
                let mut u = RoaringBitmap::new();
                if let Some(e) = self.label_entry(&m.name) {
                    for &(v, off, len) in &e.values {
                        let val = self.sym(v as u64)?;
                        // Collect the values that decide membership: matching
                        // ones, or the non-matching ones when the empty value
                        // (an absent label) matches.
                        if m.matches(val) != empty_ok {
                            u |= self.bitmap(off, len)?;
                        }
                    }
                }
                if empty_ok {
                    self.all() - u
                } else {
                    u
                }
            };
            acc = Some(match acc {
                None => set,
                Some(a) => a & set,
            });
        }
        Ok(acc.unwrap_or_else(|| self.all()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MatchOp;

    fn cref(i: u64) -> ChunkRef {
        ChunkRef {
            min_ts: -(i as i64) * 10,
            max_ts: i as i64 * 1000 + 5,
            offset: i * 100,
            len: 100,
            entries: i + 1,
            raw: 1000 + i,
        }
    }

    fn sample() -> Vec<(Labels, Vec<ChunkRef>)> {
        let mut v: Vec<(Labels, Vec<ChunkRef>)> = vec![
            (
                Labels::from_pairs([("app", "api"), ("env", "prod")]),
                vec![cref(1)],
            ),
            (
                Labels::from_pairs([("app", "api"), ("env", "dev")]),
                vec![cref(2), cref(3)],
            ),
            (
                Labels::from_pairs([("app", "web"), ("env", "prod"), ("pod", "w-1")]),
                vec![cref(4)],
            ),
            (Labels::from_pairs([("app", "db")]), vec![]),
        ];
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn names(r: &IndexReader<Vec<u8>>, bm: &RoaringBitmap) -> Vec<String> {
        bm.iter()
            .map(|i| r.labels(i).unwrap().to_string())
            .collect()
    }

    fn m(n: &str, op: MatchOp, v: &str) -> Matcher {
        Matcher::new(n, op, v).unwrap()
    }

    #[test]
    fn write_read_select() {
        let s = sample();
        let r = IndexReader::open(write_index(&s)).unwrap();
        assert_eq!(r.series_count(), 4);
        // Sorted: {app="api", env="dev"}, {app="api", env="prod"}, {app="db"}, {app="web",...}
        assert_eq!(r.series(0).unwrap(), s[0].clone());
        assert_eq!(r.series(1).unwrap().1, vec![cref(1)]);
        assert_eq!(r.series(0).unwrap().1, vec![cref(2), cref(3)]);
        assert_eq!((r.min_ts, r.max_ts), (-40, 4005));
        assert_eq!(r.label_names(), vec!["app", "env", "pod"]);
        assert_eq!(r.label_values("app"), vec!["api", "db", "web"]);
        assert_eq!(r.label_values("nope"), Vec::<&str>::new());
        let sel = r
            .select(&[m("app", MatchOp::Eq, "api"), m("env", MatchOp::Eq, "prod")])
            .unwrap();
        assert_eq!(names(&r, &sel), vec![r#"{app="api", env="prod"}"#]);
        let sel = r.select(&[m("env", MatchOp::Re, "pr.*")]).unwrap();
        assert_eq!(
            names(&r, &sel),
            vec![
                r#"{app="api", env="prod"}"#,
                r#"{app="web", env="prod", pod="w-1"}"#
            ]
        );
        // != matches series without the label too.
        let sel = r.select(&[m("env", MatchOp::Neq, "prod")]).unwrap();
        assert_eq!(
            names(&r, &sel),
            vec![r#"{app="api", env="dev"}"#, r#"{app="db"}"#]
        );
        let sel = r.select(&[m("app", MatchOp::Nre, "a.*|w.*")]).unwrap();
        assert_eq!(names(&r, &sel), vec![r#"{app="db"}"#]);
        let sel = r.select(&[m("pod", MatchOp::Eq, "")]).unwrap();
        assert_eq!(sel.len(), 3);
        let sel = r
            .select(&[m("app", MatchOp::Re, ".+"), m("env", MatchOp::Eq, "nope")])
            .unwrap();
        assert!(sel.is_empty());
        assert_eq!(r.select(&[]).unwrap().len(), 4);
        for (i, (l, _)) in s.iter().enumerate() {
            assert_eq!(r.find(l).unwrap(), Some(i as u32));
        }
        // A prefix of a stored label set sorts before it and is not found.
        assert_eq!(r.find(&Labels::from_pairs([("app", "api")])).unwrap(), None);
        assert_eq!(
            r.find(&Labels::from_pairs([
                ("app", "web"),
                ("env", "prod"),
                ("pod", "w-1"),
                ("z", "1")
            ]))
            .unwrap(),
            None
        );
        assert_eq!(r.find(&Labels::from_pairs([("app", "zzz")])).unwrap(), None);
    }

    #[test]
    fn corrupt_index_is_an_error() {
        let b = write_index(&sample());
        for pos in (0..b.len()).step_by(7) {
            let mut v = b.clone();
            v[pos] ^= 1;
            assert!(IndexReader::open(v).is_err(), "flip at {pos}");
        }
        for cut in [0, 10, b.len() - 1] {
            assert!(IndexReader::open(b[..cut].to_vec()).is_err());
        }
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for len in 0..400usize {
            let mut v: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            if len > 100 {
                v[..8].copy_from_slice(&b[..8]);
                let n = v.len();
                v[n - 4..].copy_from_slice(INDEX_MAGIC);
            }
            assert!(IndexReader::open(v).is_err());
        }
        let empty = IndexReader::open(write_index(&[])).unwrap();
        assert_eq!(empty.series_count(), 0);
        assert!(empty
            .select(&[m("a", MatchOp::Re, ".*")])
            .unwrap()
            .is_empty());
    }
}
