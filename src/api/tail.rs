//! `GET /loki/api/v1/tail` (and `/api/prom/tail`): live tail over a
//! WebSocket. Parameters are checked before the upgrade, so bad requests get
//! Loki's plain-text 400s. After the upgrade the server sends the newest
//! `limit` entries since `start`, then every second the entries that arrived
//! since (including ones pushed a little late, with older timestamps),
//! older than `delay_for` seconds; one JSON text frame per batch,
//! `{"streams":[...]}`, and a ping every second.
//! Query errors close the socket with code 1011 and the error text.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;

use crate::api::encode::streams_result;
use crate::api::error::ApiError;
use crate::api::handlers::{required_query, wants_categorized};
use crate::api::params::{now_ns, Params};
use crate::api::querypool::PoolError;
use crate::api::AppState;
use crate::logql::eval::{QueryParams, QueryResult, ResultEntry};
use crate::logql::syntax::{ast::Expr, parse_expr};
use crate::storage::Direction;

pub async fn tail(
    State(st): State<Arc<AppState>>,
    ws: WebSocketUpgrade,
    p: Params,
) -> Result<Response, ApiError> {
    let tenant = st.single_tenant(&p.headers)?;
    let query = required_query(&p)?;
    // Parsed once here; every poll evaluates the same expression.
    let expr = parse_expr(query)?;
    if let Expr::Metric(_) = expr {
        return Err(ApiError::bad_request(
            "tail queries must be log queries, not metric queries",
        ));
    }
    let expr = Arc::new(expr);
    let limit = p.limit(100)?;
    let now = now_ns();
    let start = p.time("start", now - 3_600_000_000_000)?;
    let delay: i64 = match p.get("delay_for") {
        None => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(d) if d > 5 => {
                return Err(ApiError::bad_request("delay_for can't be greater than 5"))
            }
            Ok(d) if d >= 0 => d,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid parameter \"delay_for\": {v:?}"
                )))
            }
        },
    };
    let categorize = wants_categorized(&p);
    Ok(ws.on_upgrade(move |socket| {
        tail_loop(
            st,
            socket,
            tenant,
            expr,
            start,
            limit,
            delay * 1_000_000_000,
            categorize,
        )
    }))
}

/// A live tail counted against its tenant's `max_concurrent_tail_requests`;
/// released when the connection ends.
struct TailSlot {
    st: Arc<AppState>,
    tenant: String,
}

impl TailSlot {
    /// Loki's text when the tenant already has its maximum of tails.
    fn acquire(st: &Arc<AppState>, tenant: &str) -> Result<TailSlot, String> {
        let max = st.engine.limits(tenant).max_concurrent_tail_requests;
        let mut active = st.active_tails.lock();
        let n = active.entry(tenant.to_string()).or_insert(0);
        if max > 0 && *n >= max {
            return Err(format!(
                "max concurrent tail requests limit exceeded, count > limit ({} > {max})",
                *n + 1
            ));
        }
        *n += 1;
        Ok(TailSlot {
            st: st.clone(),
            tenant: tenant.to_string(),
        })
    }
}

impl Drop for TailSlot {
    fn drop(&mut self) {
        let mut active = self.st.active_tails.lock();
        if let Some(n) = active.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                active.remove(&self.tenant);
            }
        }
    }
}

/// How far behind the newest entry sent each poll looks again, for entries
/// pushed late (with timestamps older than what was already sent: agents
/// batch for a second or more). Loki's tail follows arrival order, so such
/// entries must not be lost here either.
const LATE_GRACE_NS: i64 = 10 * 1_000_000_000;

/// Which time window each poll reads, and which entries were already sent.
///
/// The first poll returns the newest `limit` entries since `start`, as Loki
/// does. Each later poll reads `[lo, until)` with `lo` at most
/// [`LATE_GRACE_NS`] before `until`, and drops entries it sent before.
struct TailCursor {
    start: i64,
    /// Everything before this was delivered, except late arrivals.
    next: i64,
    first: bool,
    /// (ts, hash of stream, line and metadata) of entries sent at or after
    /// `min(next, until - grace)`.
    sent: HashSet<(i64, u64)>,
}

impl TailCursor {
    fn new(start: i64) -> TailCursor {
        TailCursor {
            start,
            next: start,
            first: true,
            sent: HashSet::new(),
        }
    }

    /// The window start and entry limit of a poll ending at `until`:
    /// `limit` new entries plus every already-sent entry the window may
    /// return again. When that would pass `max` (the engine's
    /// `max_entries_limit_per_query`, 0 for none), the poll skips the
    /// look-back and starts where the last one stopped.
    fn plan(&self, until: i64, limit: usize, max: usize) -> (i64, usize) {
        if self.first {
            return (self.start, limit);
        }
        let resent = |lo: i64| self.sent.iter().filter(|(ts, _)| *ts >= lo).count();
        let lo = self.next.min(until - LATE_GRACE_NS).max(self.start);
        let n = limit.saturating_add(resent(lo));
        if max == 0 || n <= max {
            return (lo, n);
        }
        let lo = self.next.max(self.start);
        (lo, limit.saturating_add(resent(lo)).min(max))
    }

    fn key(e: &ResultEntry) -> (i64, u64) {
        let mut h = DefaultHasher::new();
        e.stream.hash(&mut h);
        e.line.hash(&mut h);
        e.structured_metadata.hash(&mut h);
        (e.ts, h.finish())
    }

    /// Takes a poll's entries (ascending by time), returns the ones to send
    /// (at most `limit`, never one sent before) and moves the window.
    fn accept(&mut self, entries: Vec<ResultEntry>, limit: usize, until: i64) -> Vec<ResultEntry> {
        let mut out = Vec::new();
        let mut backlog = false;
        for e in entries {
            if out.len() == limit {
                backlog = true;
                break;
            }
            if self.sent.insert(Self::key(&e)) {
                out.push(e);
            }
        }
        if self.first || !backlog {
            // The first poll deliberately skips what is older than the
            // newest `limit`; otherwise everything before `until` is sent.
            self.next = self.next.max(until);
        } else if let Some(last) = out.last() {
            // Cut by `limit`: resume right after the last entry sent (it may
            // be before a previous `until` when late entries pile up).
            self.next = last.ts + 1;
        }
        self.first = false;
        let keep_from = self.next.min(until - LATE_GRACE_NS);
        self.sent.retain(|(ts, _)| *ts >= keep_from);
        out
    }
}

#[allow(clippy::too_many_arguments)]
async fn tail_loop(
    st: Arc<AppState>,
    mut socket: WebSocket,
    tenant: String,
    expr: Arc<Expr>,
    start: i64,
    limit: usize,
    delay_ns: i64,
    categorize: bool,
) {
    let _slot = match TailSlot::acquire(&st, &tenant) {
        Ok(s) => s,
        Err(reason) => return close(socket, reason).await,
    };
    let mut cursor = TailCursor::new(start);
    let max_entries = st.engine.limits(&tenant).max_entries_limit_per_query;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let until = now_ns() - delay_ns;
        let (lo, query_limit) = cursor.plan(until, limit, max_entries);
        if until > lo {
            let qp = QueryParams {
                start: lo,
                end: until,
                step: 0,
                interval: 0,
                limit: query_limit,
                direction: if cursor.first {
                    Direction::Backward
                } else {
                    Direction::Forward
                },
                instant: false,
            };
            let (st2, tenant2, expr2) = (st.clone(), tenant.clone(), expr.clone());
            let ctx = st.engine.context(&tenant);
            let ctx2 = ctx.clone();
            let res = st
                .run_in_pool(&tenant, &ctx, move || {
                    st2.engine.eval(&tenant2, &expr2, &qp, &ctx2)
                })
                .await;
            match res {
                Ok(Ok(QueryResult::Streams(mut entries))) => {
                    entries.sort_by_key(|e| e.ts);
                    let batch = cursor.accept(entries, limit, until);
                    if !batch.is_empty() {
                        let mut body = String::from("{");
                        if categorize {
                            body.push_str("\"encodingFlags\":[\"categorize-labels\"],");
                        }
                        body.push_str("\"streams\":");
                        streams_result(&mut body, &batch, categorize);
                        body.push('}');
                        if socket.send(Message::Text(body.into())).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return close(socket, e.to_string()).await,
                // A full queue: this poll is skipped, the next one catches up.
                Err(PoolError::TooManyOutstanding) => {}
                Err(e) => return close(socket, e.to_string()).await,
            }
        }
        tokio::select! {
            _ = tick.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                _ => {}
            },
        }
    }
}

async fn close(mut socket: WebSocket, reason: String) {
    let reason: String = reason.chars().take(120).collect();
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 1011,
            reason: reason.into(),
        })))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;

    const S: i64 = 1_000_000_000;

    fn entry(ts: i64, line: &str) -> ResultEntry {
        ResultEntry {
            ts,
            line: line.to_string(),
            stream: Labels::from_pairs([("app", "x")]),
            structured_metadata: Labels::default(),
            parsed: Labels::default(),
        }
    }

    fn lines(v: &[ResultEntry]) -> Vec<&str> {
        v.iter().map(|e| e.line.as_str()).collect()
    }

    #[test]
    fn tail_entry_pushed_late_is_still_sent() {
        let mut c = TailCursor::new(0);
        // First poll at t=100 s finds nothing.
        assert_eq!(c.plan(100 * S, 100, 0), (0, 100));
        assert!(c.accept(vec![], 100, 100 * S).is_empty());
        // An agent then pushes a line stamped 98 s; the next poll (t=101 s)
        // must look back over it: the window starts 10 s before `until`.
        assert_eq!(c.plan(101 * S, 100, 0).0, 91 * S);
        let sent = c.accept(vec![entry(98 * S, "late")], 100, 101 * S);
        assert_eq!(lines(&sent), ["late"]);
    }

    #[test]
    fn tail_never_sends_an_entry_twice() {
        let mut c = TailCursor::new(0);
        let first = c.accept(vec![entry(99 * S, "a")], 100, 100 * S);
        assert_eq!(lines(&first), ["a"]);
        // The look-back window returns "a" again, plus a new line.
        assert_eq!(c.plan(101 * S, 100, 0), (91 * S, 101));
        let next = c.accept(vec![entry(99 * S, "a"), entry(100 * S, "b")], 100, 101 * S);
        assert_eq!(lines(&next), ["b"]);
        // Once "a" is more than 10 s behind, it is forgotten.
        assert!(c.accept(vec![], 100, 120 * S).is_empty());
        assert_eq!(c.plan(121 * S, 100, 0), (111 * S, 100));
    }

    #[test]
    fn tail_first_batch_is_the_newest_limit_and_older_ones_are_skipped() {
        let mut c = TailCursor::new(0);
        // The first poll is a backward query from `start`, capped at
        // `limit`: it asks for exactly `limit`, sends them all, and does not
        // go back for what is older.
        assert_eq!(c.plan(100 * S, 2, 0), (0, 2));
        let newest = vec![entry(98 * S, "b"), entry(99 * S, "c")];
        assert_eq!(lines(&c.accept(newest, 2, 100 * S)), ["b", "c"]);
        assert_eq!(c.next, 100 * S);
        assert_eq!(c.plan(101 * S, 2, 0), (91 * S, 4));
    }

    #[test]
    fn tail_look_back_never_asks_past_the_entries_limit() {
        let mut c = TailCursor::new(0);
        let batch: Vec<ResultEntry> = (0..3).map(|i| entry(95 * S + i, "x")).collect();
        let named: Vec<ResultEntry> = batch
            .iter()
            .enumerate()
            .map(|(i, e)| entry(e.ts, &format!("x{i}")))
            .collect();
        assert_eq!(c.accept(named, 100, 100 * S).len(), 3);
        // Look-back would need 2 new + 3 resent = 5 > 4: start at `next`.
        assert_eq!(c.plan(101 * S, 2, 4), (100 * S, 2));
        assert_eq!(c.plan(101 * S, 2, 5), (91 * S, 5));
    }

    #[test]
    fn tail_backlog_beyond_limit_continues_after_the_last_sent() {
        let mut c = TailCursor::new(0);
        c.accept(vec![], 2, 100 * S);
        let all: Vec<ResultEntry> = (0..5).map(|i| entry(95 * S + i, "l")).collect();
        let named: Vec<ResultEntry> = all
            .iter()
            .enumerate()
            .map(|(i, e)| entry(e.ts, &format!("l{i}")))
            .collect();
        assert_eq!(lines(&c.accept(named.clone(), 2, 101 * S)), ["l0", "l1"]);
        // Cut by the limit: the window must not jump past l2..l4.
        assert_eq!(c.next, 95 * S + 2);
        assert_eq!(lines(&c.accept(named.clone(), 2, 102 * S)), ["l2", "l3"]);
        assert_eq!(lines(&c.accept(named, 2, 103 * S)), ["l4"]);
        assert_eq!(c.next, 103 * S);
    }
}
