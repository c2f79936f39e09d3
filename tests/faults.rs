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

    // Nothing acknowledged is lost across a crash, nothing rejected returns.
    s.restart_after_kill();
    let (st, lines, _) = lines_of(&s, "{app=\"w\"}", base, ts(100));
    assert_eq!(st, 200);
    assert_eq!(lines, want);
}
