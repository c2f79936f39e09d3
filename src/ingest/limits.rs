//! Per-tenant ingestion limits: the byte-rate token bucket
//! (`ingestion_rate_mb` / `ingestion_burst_size_mb`) and the active-stream
//! limit (`max_global_streams_per_user`), with Loki's 429 messages.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use parking_lot::Mutex;

use crate::labels::Labels;
use crate::storage::PushStream;

const MIB: f64 = (1u64 << 20) as f64;

/// A token bucket per tenant, counting bytes. A request is admitted whole
/// or not at all (Loki's `ReserveN` + cancel). Rate and burst come with
/// each call, so a tenant's new limits apply at once.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A rate in MiB/s (Loki's `MB` is 2^20 bytes) as Loki prints it: whole
/// bytes per second.
pub fn limit_bytes(rate_mb: f64) -> u64 {
    (rate_mb * MIB).max(0.0) as u64
}

impl RateLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes `bytes` tokens for `tenant` if available at `now`, with the
    /// tenant's rate and burst in MiB (a rate `<= 0` disables the limit).
    pub fn allow(
        &self,
        tenant: &str,
        rate_mb: f64,
        burst_mb: f64,
        bytes: usize,
        now: Instant,
    ) -> bool {
        let (rate, burst) = (rate_mb * MIB, burst_mb * MIB);
        if rate <= 0.0 {
            return true;
        }
        let mut m = self.buckets.lock();
        let b = match m.get_mut(tenant) {
            Some(b) => b,
            None => m.entry(tenant.to_string()).or_insert(Bucket {
                tokens: burst,
                last: now,
            }),
        };
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = b.last.max(now);
        let need = bytes as f64;
        if need <= b.tokens {
            b.tokens -= need;
            true
        } else {
            false
        }
    }
}

/// Loki's `RateLimitedErrorMsg`.
pub fn rate_limited_message(tenant: &str, limit: u64, lines: usize, bytes: usize) -> String {
    format!(
        "ingestion rate limit exceeded for user {tenant} (limit: {limit} bytes/sec) while attempting to ingest '{lines}' lines totaling '{bytes}' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased"
    )
}

/// Loki's `StreamLimitErrorMsg`.
pub fn stream_limit_message(labels: &Labels, tenant: &str) -> String {
    format!(
        "maximum active stream limit exceeded when trying to create stream {labels}, reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: '{tenant}'"
    )
}

/// Splits streams into those that may be written and those refused because
/// they would be new streams beyond `limit` (`active` streams exist now;
/// `known` holds hashes of streams already written). Streams repeated in
/// one request count once.
pub fn apply_stream_limit(
    streams: Vec<PushStream>,
    known: &HashSet<u64>,
    active: usize,
    limit: usize,
) -> (Vec<PushStream>, Vec<PushStream>) {
    let mut keep = Vec::with_capacity(streams.len());
    let mut refused = Vec::new();
    let mut admitted_new: HashSet<u64> = HashSet::new();
    let mut count = active;
    for s in streams {
        let h = s.labels.stable_hash();
        if known.contains(&h) || admitted_new.contains(&h) {
            keep.push(s);
        } else if count < limit {
            count += 1;
            admitted_new.insert(h);
            keep.push(s);
        } else {
            refused.push(s);
        }
    }
    (keep, refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::PushEntry;
    use std::time::Duration;

    #[test]
    fn token_bucket_burst_then_refill() {
        // 1 MiB/s, burst 2 MiB.
        let rl = RateLimiter::new();
        let allow = |t: &str, bytes: usize, at: Instant| rl.allow(t, 1.0, 2.0, bytes, at);
        let t0 = Instant::now();
        assert!(allow("t", 1 << 21, t0));
        assert!(!allow("t", 1, t0));
        // Another tenant has its own bucket.
        assert!(allow("u", 1 << 20, t0));
        // Half a second refills 512 KiB.
        let t1 = t0 + Duration::from_millis(500);
        assert!(!allow("t", (1 << 19) + 1024, t1));
        assert!(allow("t", 1 << 19, t1));
        // A request larger than the burst never passes.
        assert!(!allow("t", (2 << 20) + 1, t1 + Duration::from_secs(100)));
        assert_eq!(limit_bytes(1.0), 1 << 20);
        // A tenant's raised limit applies to its existing bucket at once.
        let t2 = t1 + Duration::from_secs(200);
        assert!(rl.allow("t", 8.0, 8.0, 6 << 20, t2));
        // A rate of 0 turns the limit off.
        assert!(rl.allow("t", 0.0, 0.0, 1 << 30, t2));
    }

    #[test]
    fn messages_match_loki() {
        assert_eq!(
            rate_limited_message("fake", 4194304, 3, 100),
            "ingestion rate limit exceeded for user fake (limit: 4194304 bytes/sec) while attempting to ingest '3' lines totaling '100' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased"
        );
        let l = Labels::from_pairs([("app", "x")]);
        assert_eq!(
            stream_limit_message(&l, "fake"),
            "maximum active stream limit exceeded when trying to create stream {app=\"x\"}, reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: 'fake'"
        );
    }

    #[test]
    fn stream_limit_admits_known_and_up_to_limit() {
        let mk = |v: &str| PushStream {
            labels: Labels::from_pairs([("s", v)]),
            entries: vec![PushEntry {
                ts: 1,
                line: "x".into(),
                metadata: vec![],
            }],
        };
        let known: HashSet<u64> = [mk("old").labels.stable_hash()].into_iter().collect();
        // 2 active, limit 3: "old" is known, "a" fits, "a" again is the same, "b" refused.
        let (keep, refused) =
            apply_stream_limit(vec![mk("old"), mk("a"), mk("a"), mk("b")], &known, 2, 3);
        let names: Vec<&str> = keep.iter().map(|s| s.labels.get("s").unwrap()).collect();
        assert_eq!(names, vec!["old", "a", "a"]);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].labels.get("s"), Some("b"));
    }
}
