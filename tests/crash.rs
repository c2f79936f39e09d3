//! Durability: a 204 means the entries are in the WAL. A client pushes
//! continuously while the server is killed with SIGKILL at random moments
//! and restarted; at the end every acknowledged entry must be found. A WAL
//! with garbage appended, or with its last record cut short, must start
//! cleanly and keep everything before the damage.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{agent, now_ns, Server};
use rand::Rng;
use serde_json::json;

/// Every line of `app` in `[start, end)`, paging forward 5,000 at a time.
fn read_all(s: &Server, app: &str, start: i64, end: i64) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut from = start;
    loop {
        let v = s.query_range(
            &format!("{{app=\"{app}\"}}"),
            &[
                ("start", &from.to_string()),
                ("end", &end.to_string()),
                ("limit", "5000"),
                ("direction", "forward"),
            ],
        );
        let vals = common::all_values(&v);
        let n = vals.len();
        let mut last = from;
        for (ts, line) in vals {
            last = last.max(ts);
            seen.insert(line);
        }
        if n < 5000 {
            return seen;
        }
        from = last + 1;
    }
}

fn push_batch(addr: &str, app: &str, first: u64, n: u64, base: i64) -> bool {
    let values: Vec<_> = (first..first + n)
        .map(|i| {
            json!([
                (base + i as i64 * 1000).to_string(),
                format!("entry-{i:08}")
            ])
        })
        .collect();
    let body = json!({"streams": [{"stream": {"app": app}, "values": values}]}).to_string();
    match agent()
        .post(&format!("http://{addr}/loki/api/v1/push"))
        .header("Content-Type", "application/json")
        .send(body.as_bytes())
    {
        Ok(r) => r.status().as_u16() == 204,
        Err(_) => false,
    }
}

#[test]
fn random_sigkills_lose_no_acknowledged_entry() {
    let mut s = Server::start();
    let addr = Arc::new(Mutex::new(s.addr.clone()));
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let base = now_ns() - 30 * 60 * 1_000_000_000;
    let pusher = {
        let (addr, acked, stop) = (addr.clone(), acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut next: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let a = addr.lock().unwrap().clone();
                let n = 20;
                if push_batch(&a, "crash", next, n, base) {
                    let mut g = acked.lock().unwrap();
                    for i in next..next + n {
                        g.insert(format!("entry-{i:08}"));
                    }
                } else {
                    std::thread::sleep(Duration::from_millis(5));
                }
                next += n;
            }
        })
    };
    let mut rng = rand::rng();
    let kills = 8;
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(rng.random_range(150..700)));
        if rng.random_bool(0.3) {
            // Sometimes with flushed blocks in the mix.
            let _ = agent().post(&s.url("/flush")).send(&[][..]);
        }
        s.restart_after_kill();
        *addr.lock().unwrap() = s.addr.clone();
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    pusher.join().unwrap();
    s.restart_after_kill();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 100,
        "the pusher got only {} entries acknowledged",
        acked.len()
    );
    let found = read_all(&s, "crash", base, now_ns());
    let missing: Vec<_> = acked.difference(&found).take(10).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged entries lost after {kills} SIGKILLs, e.g. {missing:?}",
        acked.difference(&found).count(),
        acked.len()
    );
}

fn wal_segments(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("wal"))
        .expect("wal dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

#[test]
fn wal_with_garbage_appended_or_torn_tail_starts_and_keeps_the_rest() {
    let mut s = Server::start();
    let base = now_ns() - 60_000_000_000;
    for i in 0..10 {
        assert!(push_batch(&s.addr, "walgarbage", i * 50, 50, base));
    }
    s.kill9();
    let last = wal_segments(&s.dir).pop().expect("a WAL segment");
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(b"\x13\x37garbage that is not a record \xff\xfe\x00\x01");
    std::fs::write(&last, &bytes).unwrap();
    s.restart_after_kill();
    let found = read_all(&s, "walgarbage", base, now_ns());
    assert_eq!(found.len(), 500, "everything before the garbage is kept");

    // Now a torn tail: one more push, then cut its record in half.
    assert!(push_batch(&s.addr, "torn", 0, 100, base));
    assert!(push_batch(&s.addr, "torn", 100, 100, base));
    s.kill9();
    let last = wal_segments(&s.dir).pop().expect("a WAL segment");
    let len = std::fs::metadata(&last).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    f.set_len(len - 200).unwrap();
    drop(f);
    s.restart_after_kill();
    let found = read_all(&s, "torn", base, now_ns());
    for i in 0..100 {
        assert!(
            found.contains(&format!("entry-{i:08}")),
            "entry {i} before the damage was lost"
        );
    }
    assert!(found.len() < 200, "the torn record cannot be complete");
    assert_eq!(read_all(&s, "walgarbage", base, now_ns()).len(), 500);
}
