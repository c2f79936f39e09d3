//! `GET /loki/api/v1/tail` (and `/api/prom/tail`): live tail over a
//! WebSocket. Parameters are checked before the upgrade, so bad requests get
//! Loki's plain-text 400s. After the upgrade the server sends the entries
//! since `start` (at most `limit`), then every second the entries that
//! arrived since the last one sent, older than `delay_for` seconds; one JSON
//! text frame per batch, `{"streams":[...]}`, and a ping every second.
//! Query errors close the socket with code 1011 and the error text.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;

use crate::api::encode::streams_result;
use crate::api::error::ApiError;
use crate::api::params::{now_ns, Params};
use crate::api::AppState;
use crate::logql::eval::{QueryParams, QueryResult};
use crate::logql::syntax::{ast::Expr, parse_expr};
use crate::storage::Direction;

pub async fn tail(
    State(st): State<Arc<AppState>>,
    ws: WebSocketUpgrade,
    p: Params,
) -> Result<Response, ApiError> {
    let tenant = st.tenant(&p.headers)?;
    let query = p
        .get("query")
        .ok_or_else(|| ApiError::bad_request("query parameter is required"))?
        .to_string();
    if let Expr::Metric(_) = parse_expr(&query)? {
        return Err(ApiError::bad_request(
            "tail queries must be log queries, not metric queries",
        ));
    }
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
    let categorize = p.header("x-loki-response-encoding-flags").is_some_and(|v| {
        v.split(',')
            .any(|f| f.trim().eq_ignore_ascii_case("categorize-labels"))
    });
    Ok(ws.on_upgrade(move |socket| {
        tail_loop(
            st,
            socket,
            tenant,
            query,
            start,
            limit,
            delay * 1_000_000_000,
            categorize,
        )
    }))
}

#[allow(clippy::too_many_arguments)]
async fn tail_loop(
    st: Arc<AppState>,
    mut socket: WebSocket,
    tenant: String,
    query: String,
    start: i64,
    limit: usize,
    delay_ns: i64,
    categorize: bool,
) {
    let mut from = start;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let until = now_ns() - delay_ns;
        if until > from {
            let qp = QueryParams {
                start: from,
                end: until,
                step: 0,
                interval: 0,
                limit,
                direction: Direction::Forward,
                instant: false,
            };
            let (st2, tenant2, query2) = (st.clone(), tenant.clone(), query.clone());
            let ctx = st.engine.context();
            let res =
                tokio::task::spawn_blocking(move || st2.engine.query(&tenant2, &query2, &qp, &ctx))
                    .await;
            match res {
                Ok(Ok(QueryResult::Streams(entries))) => {
                    if let Some(last) = entries.iter().map(|e| e.ts).max() {
                        // Continue after the newest entry sent; when the
                        // batch was cut by `limit`, continue from there.
                        from = last + 1;
                        let mut body = String::from("{");
                        if categorize {
                            body.push_str("\"encodingFlags\":[\"categorize-labels\"],");
                        }
                        body.push_str("\"streams\":");
                        streams_result(&mut body, &entries, categorize);
                        body.push('}');
                        if socket.send(Message::Text(body.into())).await.is_err() {
                            return;
                        }
                    } else {
                        from = until;
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return close(socket, e.to_string()).await,
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
