//! Request parameters as Loki reads them: from the URL query and, for POST,
//! from an `application/x-www-form-urlencoded` body (Go's `r.Form`), and
//! the parsing rules for timestamps, durations, `limit` and `direction`
//! (`pkg/loghttp/params.go`).

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, Method};

use crate::api::error::ApiError;
use crate::storage::Direction;
pub use crate::units::now_ns;

/// Parameters and headers of one request.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
    pub headers: HeaderMap,
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut pairs = parse_urlencoded(req.uri().query().unwrap_or(""));
        let headers = req.headers().clone();
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if req.method() == Method::POST && is_form {
            let body = axum::body::Bytes::from_request(req, state)
                .await
                .map_err(|e| ApiError::bad_request(format!("cannot read request body: {e}")))?;
            // Go's r.Form puts body values before URL values.
            let mut form = parse_urlencoded(&String::from_utf8_lossy(&body));
            form.append(&mut pairs);
            pairs = form;
        }
        Ok(Params { pairs, headers })
    }
}

impl Params {
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Params {
        Params {
            pairs,
            headers: HeaderMap::new(),
        }
    }

    /// The first non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A timestamp parameter in ns, or `default` when absent.
    pub fn time(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse_timestamp(v).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid parameter {name:?}: cannot parse {v:?} to a valid timestamp"
                ))
            }),
        }
    }

    /// `start`/`end` (and `since`) with Loki's defaults: end = now,
    /// start = min(end, now) − since, since = 1h.
    pub fn bounds(&self, now: i64) -> Result<(i64, i64), ApiError> {
        let end = self.time("end", now)?;
        let since = match self.get("since") {
            Some(v) => parse_prom_duration(v).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid parameter \"since\": cannot parse {v:?} to a valid duration"
                ))
            })?,
            None => 3_600_000_000_000,
        };
        let start = self.time("start", end.min(now).saturating_sub(since))?;
        Ok((start, end))
    }

    /// `limit` with default 100; ≤ 0 is Loki's 400.
    pub fn limit(&self, default: usize) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(default),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n > 0 => Ok(n as usize),
                Ok(_) => Err(ApiError::bad_request("limit must be a positive value")),
                Err(_) => Err(ApiError::bad_request(format!(
                    "invalid parameter \"limit\": cannot parse {v:?} as an integer"
                ))),
            },
        }
    }

    /// `direction`, case-insensitive, default backward.
    pub fn direction(&self) -> Result<Direction, ApiError> {
        match self.get("direction") {
            None => Ok(Direction::Backward),
            Some(v) if v.eq_ignore_ascii_case("forward") => Ok(Direction::Forward),
            Some(v) if v.eq_ignore_ascii_case("backward") => Ok(Direction::Backward),
            Some(v) => Err(ApiError::bad_request(format!("invalid direction '{v}'"))),
        }
    }

    /// A `step`/`interval`-style duration in ns: float seconds or a
    /// Prometheus duration.
    pub fn duration(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => parse_seconds_or_duration(v).map(Some).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid parameter {name:?}: cannot parse {v:?} to a valid duration"
                ))
            }),
        }
    }
}

/// Loki's `parseTimestamp`: a value with `.` that parses as a float is Unix
/// seconds (fraction rounded to ms); an integer of ≤ 10 characters is
/// seconds, longer is nanoseconds; anything else is RFC3339(Nano).
pub fn parse_timestamp(v: &str) -> Option<i64> {
    if v.contains('.') {
        if let Ok(f) = v.parse::<f64>() {
            if f.is_finite() {
                let secs = f.trunc();
                let frac = ((f - secs) * 1000.0).round() / 1000.0;
                return Some(
                    (secs as i64)
                        .saturating_mul(1_000_000_000)
                        .saturating_add((frac * 1e9).round() as i64),
                );
            }
        }
    }
    match v.parse::<i64>() {
        Ok(n) if v.len() <= 10 => Some(n.saturating_mul(1_000_000_000)),
        Ok(n) => Some(n),
        Err(_) => chrono::DateTime::parse_from_rfc3339(v)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt()),
    }
}

/// A float number of seconds or a Prometheus duration, in ns.
pub fn parse_seconds_or_duration(v: &str) -> Option<i64> {
    if let Ok(f) = v.parse::<f64>() {
        if !f.is_finite() {
            return None;
        }
        return Some((f * 1e9).round() as i64);
    }
    parse_prom_duration(v)
}

/// A Prometheus duration (`1h30m`, `15000ms`, `7d`) in ns.
pub fn parse_prom_duration(v: &str) -> Option<i64> {
    crate::config::parse_duration(v).and_then(|d| i64::try_from(d.as_nanos()).ok())
}

/// Decodes `application/x-www-form-urlencoded` text into pairs.
pub fn parse_urlencoded(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Loki's default `step` for a range (`defaultQueryRangeStep`):
/// `max(floor((end - start) / 250 s), 1)` seconds, in ns.
pub fn default_step(start: i64, end: i64) -> i64 {
    ((end - start) / 250 / 1_000_000_000).max(1) * 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_as_loki_reads_them() {
        assert_eq!(
            parse_timestamp("4000000000"),
            Some(4_000_000_000_000_000_000)
        );
        assert_eq!(
            parse_timestamp("1700000000123456789"),
            Some(1_700_000_000_123_456_789)
        );
        assert_eq!(
            parse_timestamp("1700000000.5"),
            Some(1_700_000_000_500_000_000)
        );
        assert_eq!(
            parse_timestamp("1700000000.0004"),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_timestamp("2024-01-01T00:00:00Z"),
            Some(1_704_067_200_000_000_000)
        );
        assert_eq!(
            parse_timestamp("2024-01-01T00:00:00.000Z"),
            Some(1_704_067_200_000_000_000)
        );
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn durations_and_forms() {
        assert_eq!(parse_seconds_or_duration("15"), Some(15_000_000_000));
        assert_eq!(parse_seconds_or_duration("0.5"), Some(500_000_000));
        assert_eq!(parse_seconds_or_duration("15000ms"), Some(15_000_000_000));
        assert_eq!(parse_seconds_or_duration("1m30s"), Some(90_000_000_000));
        let p = parse_urlencoded("query=%7Bapp%3D%22x%22%7D+%7C%3D+%22a%22&limit=5&x=%");
        assert_eq!(p[0].1, "{app=\"x\"} |= \"a\"");
        assert_eq!(p[1], ("limit".into(), "5".into()));
        assert_eq!(p[2].1, "%");
    }
}
