//! Units and the clock shared by every layer: the current time in Unix ns, Prometheus and Go duration strings and
//! humanized byte sizes, parsed exactly as Loki's Go code parses them
//! (`model.ParseDuration`, `time.ParseDuration`, go-humanize's
//! `ParseBytes`). LogQL literals, label filters, template functions, and
//! durations in flags and the config file all go through here.

use crate::labels::go_quote;

/// The current time in Unix nanoseconds (saturating past the year 2262).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

/// One millisecond in nanoseconds.
pub(crate) const MS: i64 = 1_000_000;

/// Prometheus' `model.ParseDuration`: `[0-9]+` with units `y w d h m s ms`,
/// in that order, each at most once; or `0`.
pub fn parse_prometheus_duration(s: &str) -> Result<i64, String> {
    let invalid = || format!("not a valid duration string: {s:?}");
    match s {
        "0" => return Ok(0),
        "" => return Err("empty duration string".into()),
        _ => {}
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3600 * 1000 * MS),
        ("w", 7 * 24 * 3600 * 1000 * MS),
        ("d", 24 * 3600 * 1000 * MS),
        ("h", 3600 * 1000 * MS),
        ("m", 60 * 1000 * MS),
        ("s", 1000 * MS),
        ("ms", MS),
    ];
    let mut rest = s;
    let mut next_unit = 0usize;
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(invalid());
        }
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let idx = UNITS
            .iter()
            .position(|(u, _)| *u == unit)
            .ok_or_else(|| format!("unknown unit {unit:?} in duration {s:?}"))?;
        if idx < next_unit {
            return Err(invalid());
        }
        next_unit = idx + 1;
        let add = n
            .checked_mul(UNITS[idx].1)
            .ok_or_else(|| "duration out of range".to_string())?;
        total = total
            .checked_add(add)
            .ok_or_else(|| "duration out of range".to_string())?;
    }
    Ok(total)
}

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` with units
/// `ns us µs μs ms s m h`, or `0`.
pub fn parse_go_duration(s: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(s));
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(r) = rest.strip_prefix('.') {
            let fl = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            frac_part = &r[..fl];
            rest = &r[fl..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit: i128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            u => return Err(format!("time: unknown unit {u:?} in duration {s:?}")),
        };
        rest = &rest[unit_len..];
        let int: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse::<i128>().map_err(|_| invalid())?
        };
        let mut v = int.checked_mul(unit).ok_or_else(invalid)?;
        // Fraction: digits * unit / 10^len, truncated as Go does.
        let mut scale: i128 = 1;
        let mut frac: i128 = 0;
        for d in frac_part.bytes().take(30) {
            frac = frac * 10 + i128::from(d - b'0');
            scale *= 10;
        }
        v += frac * unit / scale;
        total += v;
        if total > i128::from(i64::MAX) + i128::from(neg) {
            return Err(invalid());
        }
    }
    let total = if neg { -total } else { total };
    i64::try_from(total).map_err(|_| invalid())
}

/// go-humanize's `ParseBytes` as Loki uses it: a number, then an optional
/// SI or IEC unit (case-insensitive; `B`, `kB`, `KiB`, `M`, ...).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(s.len());
    let num: String = s[..split].chars().filter(|c| *c != ',').collect();
    let f: f64 = num
        .parse()
        .map_err(|_| format!("invalid byte size {s:?}"))?;
    let unit = s[split..].trim().to_ascii_lowercase();
    let mult: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mi" | "mib" => 1024f64.powi(2),
        "g" | "gb" => 1e9,
        "gi" | "gib" => 1024f64.powi(3),
        "t" | "tb" => 1e12,
        "ti" | "tib" => 1024f64.powi(4),
        "p" | "pb" => 1e15,
        "pi" | "pib" => 1024f64.powi(5),
        "e" | "eb" => 1e18,
        "ei" | "eib" => 1024f64.powi(6),
        _ => return Err(format!("unhandled size name: {unit}")),
    };
    let v = f * mult;
    if v.is_nan() || v >= u64::MAX as f64 {
        return Err(format!("too large: {s}"));
    }
    Ok(v as u64)
}

/// Prometheus' `model.Duration.String()` (millisecond precision): `30d1h`,
/// `1w`, `90s`, `0s`. Years and weeks only when they divide exactly.
pub fn format_model_duration(ns: i64) -> String {
    let mut ms = ns / MS;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    if ms < 0 {
        out.push('-');
        ms = -ms;
    }
    const DAY: i64 = 24 * 3600 * 1000;
    for (unit, mult, exact) in [
        ("y", 365 * DAY, true),
        ("w", 7 * DAY, true),
        ("d", DAY, false),
        ("h", 3600 * 1000, false),
        ("m", 60 * 1000, false),
        ("s", 1000, false),
        ("ms", 1, false),
    ] {
        if exact && ms % mult != 0 {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
            ms -= v * mult;
        }
    }
    out
}

/// Go's `time.Duration.String()`: `744h0m0s`, `1m30s`, `1.5s`, `250ms`.
pub fn format_go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    // A value with up to 9 fractional digits, trailing zeros dropped.
    let frac = |whole: u64, rem: u64, digits: u32| -> String {
        if rem == 0 {
            return whole.to_string();
        }
        let s = format!("{rem:0width$}", width = digits as usize);
        format!("{whole}.{}", s.trim_end_matches('0'))
    };
    if u < 1_000_000_000 {
        let (unit, div, digits) = if u < 1_000 {
            ("ns", 1, 0)
        } else if u < 1_000_000 {
            ("\u{b5}s", 1_000, 3)
        } else {
            ("ms", 1_000_000, 6)
        };
        return format!("{sign}{}{unit}", frac(u / div, u % div, digits));
    }
    let secs = u / 1_000_000_000;
    let sub = u % 1_000_000_000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let s = frac(s, sub, 9);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}s")
    } else {
        format!("{sign}{s}s")
    }
}

/// go-humanize's `IBytes`: `512 B`, `1.0 KiB`, `15 MiB`, `2.5 GiB`.
pub fn format_ibytes(n: u64) -> String {
    const SIZES: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1024f64.ln()).floor() as usize;
    let e = e.min(SIZES.len() - 1);
    let val = ((n as f64) / 1024f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", SIZES[e])
    } else {
        format!("{val:.0} {}", SIZES[e])
    }
}

/// Serde for `Duration` fields of the config file: whole seconds or a
/// duration string (`10m`, `7d`, `1h30m`, `1.5h`); written back as a string.
pub mod serde_duration {
    use serde::{Deserialize, Serialize};
    use std::time::Duration;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(Duration::from_secs(s)),
            Raw::Text(t) => super::parse_std_duration(&t)
                .ok_or_else(|| serde::de::Error::custom(format!("invalid duration {t:?}"))),
        }
    }

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        let ns = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        super::format_go_duration(ns).serialize(s)
    }
}

/// Serde for byte sizes in the config file: a number of bytes or a size
/// string (`512MB`, `1GiB`); written back as a number.
pub mod serde_bytes {
    use serde::{Deserialize, Serialize};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(u64),
        Text(String),
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Bytes(b) => Ok(b),
            Raw::Text(t) => super::parse_bytes(t.trim()).map_err(serde::de::Error::custom),
        }
    }

    pub fn serialize<S: serde::Serializer>(b: &u64, s: S) -> Result<S::Ok, S::Error> {
        b.serialize(s)
    }
}

/// Loki's duration literals: the Prometheus form first, then Go's.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    parse_prometheus_duration(s).or_else(|_| parse_go_duration(s))
}

/// A non-negative duration from a flag or the config file (`30s`, `7d`,
/// `1h30m`, `1.5h`, `500us`, `0`), surrounding space ignored.
pub fn parse_std_duration(s: &str) -> Option<std::time::Duration> {
    let ns = parse_duration(s.trim()).ok()?;
    u64::try_from(ns).ok().map(std::time::Duration::from_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_and_prometheus() {
        const S: i64 = 1_000_000_000;
        assert_eq!(format_model_duration(721 * 3600 * S), "30d1h");
        assert_eq!(format_model_duration(7 * 24 * 3600 * S), "1w");
        assert_eq!(format_model_duration(90 * S), "1m30s");
        assert_eq!(format_model_duration(1500 * MS), "1s500ms");
        assert_eq!(format_model_duration(0), "0s");
        assert_eq!(format_go_duration(744 * 3600 * S), "744h0m0s");
        assert_eq!(format_go_duration(90 * S), "1m30s");
        assert_eq!(format_go_duration(3600 * S + 500 * MS), "1h0m0.5s");
        assert_eq!(format_go_duration(1500 * MS), "1.5s");
        assert_eq!(format_go_duration(250 * MS), "250ms");
        assert_eq!(format_go_duration(1500), "1.5\u{b5}s");
        assert_eq!(format_go_duration(-5 * S), "-5s");
        assert_eq!(format_go_duration(0), "0s");
        assert_eq!(format_ibytes(5), "5 B");
        assert_eq!(format_ibytes(500), "500 B");
        assert_eq!(format_ibytes(1024), "1.0 KiB");
        assert_eq!(format_ibytes(1536), "1.5 KiB");
        assert_eq!(format_ibytes(10 * 1024 * 1024), "10 MiB");
        assert_eq!(format_ibytes(82854982), "79 MiB");
    }

    /// Regression: the label-filter copy of the Go parser saturated on
    /// overflow; Go's `time.ParseDuration` (and Loki) reject it.
    #[test]
    fn go_duration_overflow_is_an_error() {
        assert_eq!(parse_go_duration("9223372036854775807ns"), Ok(i64::MAX));
        assert_eq!(
            parse_go_duration("9223372036854775808ns"),
            Err("time: invalid duration \"9223372036854775808ns\"".to_string())
        );
    }

    #[test]
    fn forms_accepted_for_flags_and_literals() {
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("7d"), Ok(7 * 86_400_000_000_000));
        assert_eq!(
            parse_std_duration(" 250ms "),
            Some(std::time::Duration::from_millis(250))
        );
        assert_eq!(parse_std_duration("-1s"), None);
        assert_eq!(parse_std_duration("5"), None);
        assert_eq!(parse_bytes("1.5KiB"), Ok(1536));
        assert_eq!(parse_bytes("20MB"), Ok(20_000_000));
    }
}
