//! Faults: damaged block files and failing WAL writes.
//!
//! * A block whose `chunks` or `index` file has flipped bytes or was cut
//!   short never crashes the server nor fails a query: start-up and reads
//!   skip the damage, the response is a 200 with the undamaged data and a
//!   top-level `warnings` entry, and `miniloki_corrupt_reads_total` counts it.
//! * A WAL write that fails (here: the file size limit `RLIMIT_FSIZE` of the
//!   running server lowered with `prlimit`, so writes fail with EFBIG) turns
//!   the push into a 500 naming the WAL; entries acknowledged before stay
//!   readable, pushes succeed again once the limit is raised, and after a
//!   SIGKILL and restart every acknowledged entry is there and no rejected
//!   one is.

mod common;

use std::path::{Path, PathBuf};

use common::{now_ns, Server};
use serde_json::json;

fn push_one(s: &Server, app: &str, ts: i64, line: &str) -> common::Resp {
    s.push_json(&json!({"streams": [{"stream": {"app": app}, "values": [[ts.to_string(), line]]}]}))
}

/// Lines of `{app="<app>"}` in `[start, end)`, with the response's warnings.
fn lines_of(s: &Server, query: &str, start: i64, end: i64) -> (u16, Vec<String>, Vec<String>) {
    let r = s.get(
        "/loki/api/v1/query_range",
        &[
            ("query", query),
            ("start", &start.to_string()),
            ("end", &end.to_string()),
            ("limit", "1000"),
            ("direction", "forward"),
        ],
    );
    if r.status != 200 {
        return (r.status, vec![], vec![r.body]);
    }
    let v = r.json();
    let mut lines: Vec<String> = common::all_values(&v).into_iter().map(|(_, l)| l).collect();
    lines.sort();
    let warnings = v["warnings"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|w| w.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    (200, lines, warnings)
}

fn set_fsize_limit(pid: u32, soft: u64) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // Safety: plain syscalls on valid pointers.
    let rc = unsafe { libc::prlimit(pid as i32, libc::RLIMIT_FSIZE, std::ptr::null(), &mut old) };
    assert_eq!(rc, 0, "prlimit get");
    let new = libc::rlimit {
        rlim_cur: soft.min(old.rlim_max),
        rlim_max: old.rlim_max,
    };
    let rc = unsafe { libc::prlimit(pid as i32, libc::RLIMIT_FSIZE, &new, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit set");
}

/// Size of the newest WAL segment.
fn wal_tail_len(dir: &Path) -> u64 {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segs.sort();
    std::fs::metadata(segs.last().expect("a WAL segment"))
        .unwrap()
        .len()
}

#[test]
fn wal_write_failure_rejects_push_and_recovers() {
    let mut s = Server::start();
    let pid = s.pid().unwrap();
    let base = now_ns() - 60_000_000_000;
    let ts = |i: i64| base + i * 1_000_000;
    assert_eq!(push_one(&s, "w", ts(1), "a-acked").status, 204);

    // Room for 100 more bytes only: the next record (a 4 KiB line) is
    // written partly, then the write fails with EFBIG.
    let len = wal_tail_len(&s.dir);
    set_fsize_limit(pid, len + 100);
    let big = format!("b-rejected-{}", "x".repeat(4096));
    let r = push_one(&s, "w", ts(2), &big);
    assert_eq!(r.status, 500, "push past the file size limit: {}", r.body);
    assert!(
        r.body.contains("WAL write failed"),
        "error says what failed: {}",
        r.body
    );
    // Acknowledged data is still served; the rejected entry is not.
    let (st, lines, _) = lines_of(&s, "{app=\"w\"}", base, ts(100));
    assert_eq!(st, 200);
    assert_eq!(lines, vec!["a-acked".to_string()]);

    // Space returns: pushes work again, and the partial record is gone
    // from the segment (else replay would stop before the next record).
    set_fsize_limit(pid, u64::MAX);
    assert_eq!(push_one(&s, "w", ts(3), "c-acked").status, 204);

    // Every write fails (the file is already past the limit), then recovers.
    set_fsize_limit(pid, 1);
    let r = push_one(&s, "w", ts(4), "d-rejected");
    assert_eq!(r.status, 500, "{}", r.body);
    let r = push_one(&s, "w", ts(5), "e-rejected");
    assert_eq!(r.status, 500, "{}", r.body);
    set_fsize_limit(pid, u64::MAX);
    assert_eq!(push_one(&s, "w", ts(6), "f-acked").status, 204);
    assert_eq!(push_one(&s, "w", ts(7), "g-acked").status, 204);

    let want: Vec<String> = ["a-acked", "c-acked", "f-acked", "g-acked"]
        .iter()
        .map(|x| x.to_string())
        .collect();
    let (_, lines, _) = lines_of(&s, "{app=\"w\"}", base, ts(100));
    assert_eq!(lines, want);

    // Nothing acknowledged is lost across a crash, nothing rejected returns
    // (the partial record of step one must not hide the records after it).
    s.restart_after_kill();
    let (st, lines, _) = lines_of(&s, "{app=\"w\"}", base, ts(100));
    assert_eq!(st, 200);
    assert_eq!(lines, want, "after a crash");
    let pid = s.pid().unwrap();

    // A flush that cannot write its block fails, leaves no partial block
    // behind, keeps the data in memory and the WAL, and works once the
    // limit is raised.
    set_fsize_limit(pid, 1);
    let r = s.post("/flush", "text/plain", b"", &[]);
    assert_eq!(r.status, 500, "flush past the file size limit: {}", r.body);
    let blocks_dir = s.dir.join("tenants/fake/blocks");
    let leftovers: Vec<_> = std::fs::read_dir(&blocks_dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "no partial block: {leftovers:?}");
    let (_, lines, _) = lines_of(&s, "{app=\"w\"}", base, ts(100));
    assert_eq!(lines, want);
    set_fsize_limit(pid, u64::MAX);
    s.flush();
    assert_eq!(std::fs::read_dir(&blocks_dir).unwrap().count(), 1);
    assert_eq!(push_one(&s, "w", ts(8), "h-acked").status, 204);
    let mut want = want;
    want.push("h-acked".to_string());

    // And across a second crash, with the data now in a block.
    s.restart_after_kill();
    let (st, lines, _) = lines_of(&s, "{app=\"w\"}", base, ts(100));
    assert_eq!(st, 200);
    assert_eq!(lines, want);
}

const N: i64 = 60;

/// Pushes `N` entries each for `app="a"` (flushed into the first block),
/// `app="b"` (the second block) and `app="c"` (left in the WAL), applies
/// `damage` to the first block's directory, restarts, and checks that the
/// server serves `b` and `c` completely with a warning and counts the
/// damage. Returns the lines of `a` still served.
fn damaged_block_scenario(damage: impl Fn(&Path)) -> Vec<String> {
    let mut s = Server::start();
    let base = now_ns() - 600_000_000_000;
    let ts = |app: i64, i: i64| base + app * 100_000_000_000 + i * 1_000_000;
    let lines = |app: &str| -> Vec<String> {
        let mut v: Vec<String> = (0..N)
            .map(|i| format!("{app} line {i:03} payload"))
            .collect();
        v.sort();
        v
    };
    for (k, app) in ["a", "b", "c"].iter().enumerate() {
        let values: Vec<_> = (0..N)
            .map(|i| {
                json!([
                    ts(k as i64, i).to_string(),
                    format!("{app} line {i:03} payload")
                ])
            })
            .collect();
        let r = s.push_json(&json!({"streams": [{"stream": {"app": app}, "values": values}]}));
        assert_eq!(r.status, 204, "{}", r.body);
        if *app != "c" {
            s.flush();
        }
    }
    let blocks_dir = s.dir.join("tenants/fake/blocks");
    let mut blocks: Vec<PathBuf> = std::fs::read_dir(&blocks_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    blocks.sort();
    assert_eq!(blocks.len(), 2, "one block per flush: {blocks:?}");
    s.kill9();
    damage(&blocks[0]);
    s.restart_after_kill();

    let end = now_ns() + 1_000_000_000;
    for app in ["b", "c"] {
        let (st, got, _) = lines_of(&s, &format!("{{app=\"{app}\"}}"), base, end);
        assert_eq!(st, 200);
        assert_eq!(got, lines(app), "undamaged stream {app} is complete");
    }
    // A query of the damaged stream alone: 200 and a warning.
    let (st, only_a, warnings) = lines_of(&s, "{app=\"a\"}", base, end);
    assert_eq!(st, 200, "{warnings:?}");
    assert!(
        !warnings.is_empty(),
        "a warning for {{app=\"a\"}}: {only_a:?}"
    );
    let (st, all, warnings) = lines_of(&s, "{app=~\"a|b|c\"}", base, end);
    assert_eq!(st, 200, "{warnings:?}");
    assert!(!warnings.is_empty(), "a warning about the damage");
    assert!(
        warnings
            .iter()
            .all(|w| w.contains("damaged") || w.contains("unreadable")),
        "{warnings:?}"
    );
    let survivors: Vec<String> = all
        .iter()
        .filter(|l| l.starts_with("a "))
        .cloned()
        .collect();
    assert_eq!(all.len(), survivors.len() + 2 * N as usize);
    assert!(survivors.iter().all(|l| lines("a").contains(l)));

    // A metric query over the damage: 200, b and c fully counted.
    let r = s.get(
        "/loki/api/v1/query",
        &[
            (
                "query",
                "sum by (app) (count_over_time({app=~\"a|b|c\"}[1h]))",
            ),
            ("time", &end.to_string()),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    for row in v["data"]["result"].as_array().unwrap() {
        let app = row["metric"]["app"].as_str().unwrap();
        let n: f64 = row["value"][1].as_str().unwrap().parse().unwrap();
        if app != "a" {
            assert_eq!(n, N as f64, "count of {app}");
        }
    }
    assert!(
        v["warnings"].as_array().is_some_and(|w| !w.is_empty()),
        "{v}"
    );
    // Label and series endpoints keep working.
    for path in [
        "/loki/api/v1/labels",
        "/loki/api/v1/label/app/values",
        "/loki/api/v1/series",
    ] {
        let r = s.get(path, &[("match[]", "{app=~\".+\"}")]);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    // The damage is counted.
    let m = s.get("/metrics", &[]);
    let count: f64 = m
        .body
        .lines()
        .find_map(|l| l.strip_prefix("miniloki_corrupt_reads_total "))
        .expect("counter rendered")
        .trim()
        .parse()
        .unwrap();
    assert!(count > 0.0, "miniloki_corrupt_reads_total = {count}");
    // New pushes still work next to the damaged block.
    assert_eq!(push_one(&s, "d", end - 1000, "after").status, 204);
    survivors
}

fn flip_bytes(path: &Path) {
    let mut data = std::fs::read(path).unwrap();
    let mid = data.len() / 2;
    for b in &mut data[mid..mid + 8] {
        *b ^= 0xff;
    }
    std::fs::write(path, data).unwrap();
}

fn truncate_half(path: &Path) {
    let len = std::fs::metadata(path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len / 2).unwrap();
}

#[test]
fn flipped_bytes_in_chunks_file() {
    // The only chunk of `a` has a checksum mismatch: all of `a` is gone.
    let survivors = damaged_block_scenario(|b| flip_bytes(&b.join("chunks")));
    assert!(survivors.is_empty(), "{survivors:?}");
}

#[test]
fn truncated_chunks_file() {
    let survivors = damaged_block_scenario(|b| truncate_half(&b.join("chunks")));
    assert!(survivors.is_empty(), "{survivors:?}");
}

#[test]
fn flipped_bytes_in_index_file() {
    let survivors = damaged_block_scenario(|b| flip_bytes(&b.join("index")));
    assert!(survivors.is_empty(), "{survivors:?}");
}

#[test]
fn truncated_index_file() {
    let survivors = damaged_block_scenario(|b| truncate_half(&b.join("index")));
    assert!(survivors.is_empty(), "{survivors:?}");
}

/// Concurrent pushes (sharing group commits) while the file size limit
/// flips between "nothing fits" and "unlimited": every acknowledged entry
/// survives a SIGKILL, and no rejected one comes back.
#[test]
fn concurrent_pushes_under_flapping_write_errors() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    let mut s = Server::start();
    let pid = s.pid().unwrap();
    let base = now_ns() - 60_000_000_000;
    let url = s.url("/loki/api/v1/push");
    let acked = Mutex::new(Vec::new());
    let rejected = Mutex::new(Vec::new());
    let running = AtomicBool::new(true);
    std::thread::scope(|sc| {
        let mut workers = Vec::new();
        for w in 0..4i64 {
            let (url, acked, rejected) = (&url, &acked, &rejected);
            workers.push(sc.spawn(move || {
                let agent = common::agent();
                for i in 0..100i64 {
                    let line = format!("w{w}-{i:03}");
                    let ts = base + (w * 1000 + i) * 1_000_000;
                    let body = json!({"streams": [{"stream": {"app": "flap"},
                        "values": [[ts.to_string(), line]]}]})
                    .to_string();
                    let r = agent
                        .post(url)
                        .header("Content-Type", "application/json")
                        .send(body.as_bytes())
                        .expect("HTTP");
                    match r.status().as_u16() {
                        204 => acked.lock().unwrap().push(line),
                        500 => rejected.lock().unwrap().push(line),
                        other => panic!("unexpected status {other}"),
                    }
                }
            }));
        }
        let running = &running;
        sc.spawn(move || {
            let mut low = true;
            while running.load(Ordering::Relaxed) {
                set_fsize_limit(pid, if low { 1 } else { u64::MAX });
                low = !low;
                std::thread::sleep(std::time::Duration::from_millis(7));
            }
            set_fsize_limit(pid, u64::MAX);
        });
        for w in workers {
            w.join().unwrap();
        }
        running.store(false, Ordering::Relaxed);
    });
    let acked = acked.into_inner().unwrap();
    let rejected = rejected.into_inner().unwrap();
    assert_eq!(acked.len() + rejected.len(), 400);
    assert!(
        !acked.is_empty() && !rejected.is_empty(),
        "{} acked, {} rejected",
        acked.len(),
        rejected.len()
    );

    s.restart_after_kill();
    let (st, got, _) = lines_of(&s, "{app=\"flap\"}", base, base + 10_000_000_000);
    assert_eq!(st, 200);
    let mut want = acked.clone();
    want.sort();
    assert_eq!(got, want, "exactly the acknowledged entries after a crash");
}
