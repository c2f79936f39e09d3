//! The write-ahead log: `data_dir/wal/NNNNNNNN.wal` segments of records, each
//! `length, CRC32C, type, payload`, after an 8-byte header (magic + version).
//!
//! Appends use group commit: each caller encodes its record straight into a
//! shared buffer under a short lock; the first caller to find no write in
//! progress becomes the leader, takes the whole buffer, writes it and syncs
//! it (per [`SyncPolicy`]) for everyone, while the others wait on a condvar
//! until the sequence number of their record is durable. Segments rotate at
//! `wal_segment_size` between writes.
//!
//! A failed write or sync fails the appends of that batch only: the segment
//! is cut back to its last good length before the next write, so the WAL
//! keeps working once the cause (e.g. a full disk) is gone.
//!
//! Replay reads segments in order and stops a segment at the first damaged
//! record (short, bad CRC, unknown type or undecodable payload): the file is
//! truncated there with a warning, and everything before it is kept.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::{Result, StorageError, SyncPolicy};

pub const WAL_MAGIC: &[u8; 4] = b"MLWL";
pub const WAL_VERSION: u8 = 1;
pub const HEADER_LEN: usize = 8;
/// `length u32, crc u32, type u8`.
pub const RECORD_HEADER: usize = 9;
/// Record type of a push (tenant, streams, entries).
pub const REC_PUSH: u8 = 1;

fn io_err(path: &Path, source: std::io::Error) -> StorageError {
    StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:08}.wal"))
}

/// Segment numbers present in `dir`, ascending.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut v = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(io_err(dir, e)),
    };
    for e in rd {
        let e = e.map_err(|e| io_err(dir, e))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name
            .strip_suffix(".wal")
            .and_then(|s| s.parse::<u64>().ok())
        {
            v.push(n);
        }
    }
    v.sort_unstable();
    Ok(v)
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err(dir, e))
}

struct WalState {
    /// Encoded records waiting for the next write.
    buf: Vec<u8>,
    /// An empty buffer with capacity, swapped in by the leader.
    spare: Vec<u8>,
    /// Sequence number of the last record put in `buf`.
    appended: u64,
    /// Every record up to this sequence number is written (and synced as
    /// the policy requires).
    done: u64,
    /// A leader is writing.
    leader: bool,
    /// Segment the next write goes to.
    segment: u64,
    /// Bytes in the current segment, written or being written.
    seg_bytes: u64,
    /// Recent failed writes: records `lo..=hi` were not made durable, with
    /// the error. A failure does not stop the WAL: the next write first cuts
    /// the segment back to its last good length.
    failed: VecDeque<(u64, u64, String)>,
    last_sync: Instant,
    /// Written but not yet synced data exists.
    dirty: bool,
}

struct SegFile {
    file: File,
    path: PathBuf,
    /// Segment number of `file`.
    n: u64,
    /// Length of the file up to the last successful write.
    good: u64,
    /// A write or sync failed: the file may hold a partial batch past
    /// `good` that must be cut off before the next write.
    needs_repair: bool,
}

/// Failed writes remembered for waiters to find theirs.
const FAILED_KEPT: usize = 1024;

pub struct Wal {
    dir: PathBuf,
    seg_size: u64,
    policy: SyncPolicy,
    state: Mutex<WalState>,
    cv: Condvar,
    /// Touched only by the current leader.
    file: Mutex<SegFile>,
}

fn create_segment(dir: &Path, n: u64) -> Result<SegFile> {
    let path = segment_path(dir, n);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|e| io_err(&path, e))?;
    let mut hdr = [0u8; HEADER_LEN];
    hdr[..4].copy_from_slice(WAL_MAGIC);
    hdr[4] = WAL_VERSION;
    file.write_all(&hdr).map_err(|e| io_err(&path, e))?;
    file.sync_all().map_err(|e| io_err(&path, e))?;
    sync_dir(dir)?;
    Ok(SegFile {
        file,
        path,
        n,
        good: HEADER_LEN as u64,
        needs_repair: false,
    })
}

impl Wal {
    /// Opens the WAL for writing into a fresh segment numbered `segment`.
    pub fn create(dir: &Path, segment: u64, seg_size: u64, policy: SyncPolicy) -> Result<Wal> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let file = create_segment(dir, segment)?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            seg_size: seg_size.max(HEADER_LEN as u64 + 1),
            policy,
            state: Mutex::new(WalState {
                buf: Vec::with_capacity(1 << 20),
                spare: Vec::with_capacity(1 << 20),
                appended: 0,
                done: 0,
                leader: false,
                segment,
                seg_bytes: HEADER_LEN as u64,
                failed: VecDeque::new(),
                last_sync: Instant::now(),
                dirty: false,
            }),
            cv: Condvar::new(),
            file: Mutex::new(file),
        })
    }

    /// The segment new records go to (a lower bound for records being
    /// appended now).
    pub fn current_segment(&self) -> u64 {
        self.state.lock().segment
    }

    /// Appends one record whose payload `encode` writes into the shared
    /// buffer, and returns once it is durable under the sync policy. The
    /// result is a lower bound of the segment holding the record.
    pub fn append(&self, rec_type: u8, encode: impl FnOnce(&mut Vec<u8>)) -> Result<u64> {
        let mut st = self.state.lock();
        let start = st.buf.len();
        st.buf.extend_from_slice(&[0; RECORD_HEADER]);
        st.buf[start + 8] = rec_type;
        encode(&mut st.buf);
        let len = st.buf.len() - start - RECORD_HEADER;
        let crc = crc32c::crc32c(&st.buf[start + 8..]);
        st.buf[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
        st.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        st.appended += 1;
        let me = st.appended;
        let seg = st.segment;
        loop {
            if st.done >= me {
                if let Some((_, _, e)) = st.failed.iter().find(|f| f.0 <= me && me <= f.1) {
                    return Err(io_err(&self.dir, std::io::Error::other(e.clone())));
                }
                return Ok(seg);
            }
            if st.leader {
                self.cv.wait(&mut st);
                continue;
            }
            self.lead(&mut st);
        }
    }

    /// Writes everything buffered, as the leader; called with the lock held
    /// and returns with it held.
    fn lead(&self, st: &mut parking_lot::MutexGuard<'_, WalState>) {
        st.leader = true;
        let upto = st.appended;
        let spare = std::mem::take(&mut st.spare);
        let mut buf = std::mem::replace(&mut st.buf, spare);
        let (prev_segment, prev_bytes) = (st.segment, st.seg_bytes);
        let rotate_to = if st.seg_bytes >= self.seg_size && !buf.is_empty() {
            st.segment += 1;
            st.seg_bytes = HEADER_LEN as u64;
            Some(st.segment)
        } else {
            None
        };
        st.seg_bytes += buf.len() as u64;
        let sync = match self.policy {
            SyncPolicy::Batch => true,
            SyncPolicy::Interval(d) => st.last_sync.elapsed() >= d,
            SyncPolicy::None => false,
        };
        let res = parking_lot::MutexGuard::unlocked(st, || {
            let r = self.write_out(&buf, rotate_to, sync);
            buf.clear();
            // Do not keep the memory of one huge batch forever.
            if buf.capacity() > 16 << 20 {
                buf = Vec::with_capacity(1 << 20);
            }
            (r, buf)
        });
        let (r, buf) = res;
        st.spare = buf;
        let from = st.done + 1;
        st.done = upto;
        match r {
            Ok(()) => {
                if sync {
                    st.last_sync = Instant::now();
                    st.dirty = false;
                } else {
                    st.dirty = true;
                }
            }
            Err(e) => {
                tracing::error!(
                    message = "WAL write failed; the pushes in this batch are rejected.",
                    error = %e
                );
                // Nothing of this batch counts; the next write repairs the
                // segment (or the rotation is retried).
                st.segment = prev_segment;
                st.seg_bytes = prev_bytes;
                if st.failed.len() >= FAILED_KEPT {
                    st.failed.pop_front();
                }
                st.failed
                    .push_back((from, upto, format!("WAL write failed: {e}")));
            }
        }
        st.leader = false;
        self.cv.notify_all();
    }

    fn write_out(&self, buf: &[u8], rotate_to: Option<u64>, sync: bool) -> Result<()> {
        let mut f = self.file.lock();
        let r = Self::write_file(&self.dir, &mut f, self.policy, buf, rotate_to, sync);
        if r.is_err() {
            f.needs_repair = true;
        }
        r
    }

    fn write_file(
        dir: &Path,
        f: &mut SegFile,
        policy: SyncPolicy,
        buf: &[u8],
        rotate_to: Option<u64>,
        sync: bool,
    ) -> Result<()> {
        if f.needs_repair {
            // Cut off whatever a failed write left past the last good
            // length, so replay never stops before later records.
            f.file.set_len(f.good).map_err(|e| io_err(&f.path, e))?;
            f.file
                .seek(SeekFrom::Start(f.good))
                .map_err(|e| io_err(&f.path, e))?;
            f.file.sync_data().map_err(|e| io_err(&f.path, e))?;
            f.needs_repair = false;
            tracing::info!(message = "WAL segment repaired after a failed write.", path = %f.path.display(), length = f.good);
        }
        if let Some(n) = rotate_to.filter(|&n| n != f.n) {
            if policy != SyncPolicy::None {
                f.file.sync_data().map_err(|e| io_err(&f.path, e))?;
            }
            *f = create_segment(dir, n)?;
        }
        if !buf.is_empty() {
            f.file.write_all(buf).map_err(|e| io_err(&f.path, e))?;
            super::METRICS
                .wal_bytes_written
                .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        if sync {
            f.file.sync_data().map_err(|e| io_err(&f.path, e))?;
            super::METRICS
                .wal_fsyncs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        f.good += buf.len() as u64;
        Ok(())
    }

    /// Syncs written data if the policy leaves syncing to a timer.
    pub fn sync_if_dirty(&self) -> Result<()> {
        let mut st = self.state.lock();
        while st.leader {
            self.cv.wait(&mut st);
        }
        if !st.dirty || self.policy == SyncPolicy::None {
            return Ok(());
        }
        st.leader = true;
        let r = parking_lot::MutexGuard::unlocked(&mut st, || {
            let f = self.file.lock();
            super::METRICS
                .wal_fsyncs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            f.file.sync_data().map_err(|e| io_err(&f.path, e))
        });
        if r.is_ok() {
            st.dirty = false;
            st.last_sync = Instant::now();
        }
        st.leader = false;
        self.cv.notify_all();
        r
    }

    /// Writes anything buffered and starts a new segment. Returns the new
    /// segment's number.
    pub fn rotate(&self) -> Result<u64> {
        let mut st = self.state.lock();
        loop {
            while st.leader {
                self.cv.wait(&mut st);
            }
            if st.done >= st.appended {
                break;
            }
            self.lead(&mut st);
        }
        st.leader = true;
        let next = st.segment + 1;
        let r =
            parking_lot::MutexGuard::unlocked(&mut st, || self.write_out(&[], Some(next), false));
        if r.is_ok() {
            st.segment = next;
            st.seg_bytes = HEADER_LEN as u64;
        }
        st.leader = false;
        self.cv.notify_all();
        r.map(|_| next)
    }

    /// Deletes every segment numbered below `below` (never the current one).
    pub fn remove_below(&self, below: u64) -> Result<usize> {
        let cur = self.current_segment();
        let mut n = 0;
        for s in list_segments(&self.dir)? {
            if s < below && s < cur {
                let p = segment_path(&self.dir, s);
                std::fs::remove_file(&p).map_err(|e| io_err(&p, e))?;
                n += 1;
            }
        }
        if n > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(n)
    }
}

/// Why replay stopped reading a segment.
fn check_record(data: &[u8], pos: usize) -> std::result::Result<(u8, usize, usize), String> {
    let rest = &data[pos..];
    if rest.len() < RECORD_HEADER {
        return Err(format!("short record header ({} bytes)", rest.len()));
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    let typ = rest[8];
    if len > rest.len() - RECORD_HEADER {
        return Err(format!(
            "record of {len} bytes runs past the end of the file"
        ));
    }
    if crc32c::crc32c(&rest[8..RECORD_HEADER + len]) != crc {
        return Err("checksum mismatch".into());
    }
    if typ != REC_PUSH {
        return Err(format!("unknown record type {typ}"));
    }
    Ok((typ, pos + RECORD_HEADER, len))
}

/// Replays every segment in `dir` in order, calling `apply(segment, type,
/// payload)` per record. A damaged tail is truncated away with a warning; a
/// payload that `apply` rejects counts as damage. Returns the segments seen.
pub fn replay(
    dir: &Path,
    mut apply: impl FnMut(u64, u8, &[u8]) -> std::result::Result<(), String>,
) -> Result<Vec<u64>> {
    let segs = list_segments(dir)?;
    for &s in &segs {
        let path = segment_path(dir, s);
        let data = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
        if data.is_empty() {
            continue;
        }
        let mut bad: Option<(usize, String)> = None;
        if data.len() < HEADER_LEN || &data[..4] != WAL_MAGIC {
            bad = Some((0, "bad segment header".into()));
        } else if data[4] != WAL_VERSION {
            bad = Some((0, format!("unsupported WAL version {}", data[4])));
        }
        let mut pos = HEADER_LEN;
        while bad.is_none() && pos < data.len() {
            match check_record(&data, pos) {
                Ok((typ, start, len)) => match apply(s, typ, &data[start..start + len]) {
                    Ok(()) => pos = start + len,
                    Err(e) => bad = Some((pos, format!("undecodable record: {e}"))),
                },
                Err(e) => bad = Some((pos, e)),
            }
        }
        if let Some((offset, reason)) = bad {
            tracing::warn!(message = "Truncating damaged WAL segment.", file = %path.display(), offset, reason = %reason);
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| io_err(&path, e))?;
            f.set_len(offset as u64).map_err(|e| io_err(&path, e))?;
            f.sync_all().map_err(|e| io_err(&path, e))?;
        }
    }
    Ok(segs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn collect(dir: &Path) -> Vec<(u64, Vec<u8>)> {
        let mut v = Vec::new();
        replay(dir, |s, _, p| {
            v.push((s, p.to_vec()));
            Ok(())
        })
        .unwrap();
        v
    }

    #[test]
    fn round_trip_and_rotation() {
        let d = tempfile::tempdir().unwrap();
        let wal = Wal::create(d.path(), 1, 64, SyncPolicy::Batch).unwrap();
        for i in 0..10u8 {
            wal.append(REC_PUSH, |b| b.extend_from_slice(&[i; 30]))
                .unwrap();
        }
        drop(wal);
        let got = collect(d.path());
        assert_eq!(got.len(), 10);
        for (i, (_, p)) in got.iter().enumerate() {
            assert_eq!(p, &vec![i as u8; 30]);
        }
        // 8-byte header + 39-byte records, rotating once a segment holds >= 64 bytes.
        let segs = list_segments(d.path()).unwrap();
        assert!(segs.len() >= 5, "{segs:?}");
        assert_eq!(got[0].0, 1);
    }

    #[test]
    fn concurrent_group_commit() {
        let d = tempfile::tempdir().unwrap();
        let wal = Arc::new(Wal::create(d.path(), 1, 1 << 30, SyncPolicy::Batch).unwrap());
        let hs: Vec<_> = (0..4u8)
            .map(|t| {
                let wal = wal.clone();
                std::thread::spawn(move || {
                    for i in 0..50u8 {
                        wal.append(REC_PUSH, |b| b.extend_from_slice(&[t, i]))
                            .unwrap();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        drop(wal);
        let mut got: Vec<Vec<u8>> = collect(d.path()).into_iter().map(|x| x.1).collect();
        got.sort();
        let mut want: Vec<Vec<u8>> = (0..4u8)
            .flat_map(|t| (0..50u8).map(move |i| vec![t, i]))
            .collect();
        want.sort();
        assert_eq!(got, want);
    }

    fn two_records(d: &Path) -> PathBuf {
        let wal = Wal::create(d, 7, 1 << 20, SyncPolicy::None).unwrap();
        wal.append(REC_PUSH, |b| b.extend_from_slice(b"first"))
            .unwrap();
        wal.append(REC_PUSH, |b| b.extend_from_slice(b"second"))
            .unwrap();
        segment_path(d, 7)
    }

    #[test]
    fn garbage_appended_is_truncated() {
        let d = tempfile::tempdir().unwrap();
        let p = two_records(d.path());
        let good = std::fs::metadata(&p).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"\x05\x00\x00\x00garbage!!").unwrap();
        drop(f);
        let got = collect(d.path());
        assert_eq!(
            got.iter().map(|x| x.1.clone()).collect::<Vec<_>>(),
            vec![b"first".to_vec(), b"second".to_vec()]
        );
        assert_eq!(std::fs::metadata(&p).unwrap().len(), good);
        // Idempotent: a second replay sees a clean file.
        assert_eq!(collect(d.path()).len(), 2);
    }

    #[test]
    fn torn_last_record_is_truncated() {
        let d = tempfile::tempdir().unwrap();
        let p = two_records(d.path());
        let len = std::fs::metadata(&p).unwrap().len();
        // The second record is 9 + 6 bytes; cut it in half.
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(len - 8).unwrap();
        drop(f);
        let got = collect(d.path());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, b"first");
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            (HEADER_LEN + RECORD_HEADER + 5) as u64
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let d = tempfile::tempdir().unwrap();
        let mut x: u64 = 88172645463325252;
        for n in 0..200usize {
            let mut v = Vec::new();
            if n % 2 == 0 {
                v.extend_from_slice(WAL_MAGIC);
                v.extend_from_slice(&[WAL_VERSION, 0, 0, 0]);
            }
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.push(x as u8);
            }
            std::fs::write(segment_path(d.path(), 1), &v).unwrap();
            let _ = collect(d.path());
        }
    }
}
