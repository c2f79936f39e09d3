//! The function library: Go's template builtins (`eq`, `len`, `printf`,
//! ...), Loki's own functions (`ToUpper`, `regexReplaceAll`, `duration`,
//! `unixToTime`, `alignLeft`, ...) and the sprig subset Loki registers
//! (`replace`, `trunc`, `default`, `add`, `date`, `fromJson`, ...), with
//! sprig's argument orders and its lenient number conversion (`cast`).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::rc::Rc;
use std::sync::Arc;

use base64::Engine as _;

use super::parse::parse_number;
use super::printf::sprintf;
use super::timefmt::{self, format_layout, parse_layout, Time};
use super::value::{from_json, Value};
use super::MAX_OUTPUT;

macro_rules! funcs {
    ($($v:ident = $name:literal),* $(,)?) => {
        /// A function a template can call.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Func { $($v),* }

        impl Func {
            pub fn lookup(name: &str) -> Option<Func> {
                match name { $($name => Some(Func::$v),)* _ => None }
            }

            pub fn name(self) -> &'static str {
                match self { $(Func::$v => $name),* }
            }
        }
    };
}

funcs! {
    // Go builtins.
    And = "and", Or = "or", Not = "not", Len = "len", Index = "index", Slice = "slice",
    Print = "print", Printf = "printf", Println = "println", Html = "html", Js = "js",
    Urlquery = "urlquery", Eq = "eq", Ne = "ne", Lt = "lt", Le = "le", Gt = "gt", Ge = "ge",
    // Loki's functions.
    Line = "__line__", Timestamp = "__timestamp__",
    GoToLower = "ToLower", GoToUpper = "ToUpper", GoReplace = "Replace", GoTrim = "Trim",
    GoTrimLeft = "TrimLeft", GoTrimRight = "TrimRight", GoTrimPrefix = "TrimPrefix",
    GoTrimSuffix = "TrimSuffix", GoTrimSpace = "TrimSpace",
    RegexReplaceAll = "regexReplaceAll", RegexReplaceAllLiteral = "regexReplaceAllLiteral",
    Count = "count", Urldecode = "urldecode", Urlencode = "urlencode", Bytes = "bytes",
    Duration = "duration", DurationSeconds = "duration_seconds",
    UnixEpochMillis = "unixEpochMillis", UnixEpochNanos = "unixEpochNanos",
    ToDateInZone = "toDateInZone", UnixToTime = "unixToTime", AlignLeft = "alignLeft",
    AlignRight = "alignRight", B64dec = "b64dec",
    // sprig.
    B64enc = "b64enc", Lower = "lower", Upper = "upper", Title = "title", Trunc = "trunc",
    Substr = "substr", Contains = "contains", HasPrefix = "hasPrefix", HasSuffix = "hasSuffix",
    Indent = "indent", Nindent = "nindent", Replace = "replace", Repeat = "repeat",
    Trim = "trim", TrimAll = "trimAll", TrimSuffix = "trimSuffix", TrimPrefix = "trimPrefix",
    Int = "int", Float64 = "float64", Add = "add", Sub = "sub", Mul = "mul", Div = "div",
    Mod = "mod", Addf = "addf", Subf = "subf", Mulf = "mulf", Divf = "divf", Max = "max",
    Min = "min", Maxf = "maxf", Minf = "minf", Ceil = "ceil", Floor = "floor", Round = "round",
    FromJson = "fromJson", Date = "date", ToDate = "toDate", Now = "now",
    UnixEpoch = "unixEpoch", Default = "default",
}

impl Func {
    /// Functions whose first argument is a regex (compiled once when constant).
    pub fn regex_first(self) -> bool {
        matches!(
            self,
            Func::RegexReplaceAll | Func::RegexReplaceAllLiteral | Func::Count
        )
    }

    /// (minimum, maximum) argument counts; `None` maximum = variadic.
    fn arity(self) -> (usize, Option<usize>) {
        use Func::*;
        match self {
            And | Or => (1, None),
            Not | Len => (1, Some(1)),
            Index | Slice => (1, None),
            Print | Println | Html | Js | Urlquery => (0, None),
            Printf => (1, None),
            Eq => (1, None),
            Ne | Lt | Le | Gt | Ge => (2, Some(2)),
            Line | Timestamp | Now => (0, Some(0)),
            GoToLower | GoToUpper | GoTrimSpace | Urldecode | Urlencode | Bytes | Duration
            | DurationSeconds | UnixEpochMillis | UnixEpochNanos | UnixToTime | B64dec | B64enc
            | Lower | Upper | Title | Trim | Int | Float64 | Ceil | Floor | FromJson
            | UnixEpoch => (1, Some(1)),
            GoReplace => (4, Some(4)),
            GoTrim | GoTrimLeft | GoTrimRight | GoTrimPrefix | GoTrimSuffix | Count | AlignLeft
            | AlignRight | Trunc | Contains | HasPrefix | HasSuffix | Indent | Nindent | Repeat
            | TrimAll | TrimSuffix | TrimPrefix | Sub | Div | Mod | Date | ToDate => (2, Some(2)),
            RegexReplaceAll | RegexReplaceAllLiteral | ToDateInZone | Substr | Replace => {
                (3, Some(3))
            }
            Add | Addf => (0, None),
            Mul | Subf | Mulf | Divf | Max | Min | Maxf | Minf | Default => (1, None),
            Round => (2, Some(3)),
        }
    }
}

/// What a function may read besides its arguments.
pub struct Ctx<'a> {
    pub line: &'a str,
    pub ts_ns: i64,
    /// Regexes given as non-constant arguments, compiled once per template.
    pub regexes: &'a RegexCache,
}

/// Compiled regexes for non-constant regex arguments (a label holding the
/// pattern), shared by every execution of one template.
#[derive(Debug, Default)]
pub struct RegexCache(parking_lot::Mutex<Vec<(String, Arc<regex::Regex>)>>);

/// How many distinct dynamic patterns one template keeps compiled.
const REGEX_CACHE_SIZE: usize = 16;

impl RegexCache {
    /// Number of patterns currently compiled.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.lock().len()
    }

    fn get(&self, src: &str) -> Result<Arc<regex::Regex>, String> {
        if let Some((_, r)) = self.0.lock().iter().find(|(s, _)| s == src) {
            return Ok(r.clone());
        }
        let r = Arc::new(
            regex::RegexBuilder::new(src)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("error parsing regexp: {e}"))?,
        );
        let mut cache = self.0.lock();
        if cache.len() >= REGEX_CACHE_SIZE {
            cache.remove(0);
        }
        cache.push((src.to_string(), r.clone()));
        Ok(r)
    }
}

type R<'a> = Result<Value<'a>, String>;

fn wrong_type(expected: &str, got: &Value<'_>) -> String {
    format!(
        "wrong type for value; expected {expected}; got {}",
        got.type_name()
    )
}

fn s<'v, 'a>(v: &'v Value<'a>) -> Result<&'v str, String> {
    match v {
        Value::Str(s) => Ok(s),
        v => Err(wrong_type("string", v)),
    }
}

fn owned_s<'a>(v: &Value<'a>) -> Result<Cow<'a, str>, String> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        v => Err(wrong_type("string", v)),
    }
}

fn int(v: &Value<'_>) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        v => Err(wrong_type("int", v)),
    }
}

fn time(v: &Value<'_>) -> Result<Time, String> {
    match v {
        Value::Time(t) => Ok(*t),
        v => Err(wrong_type("time.Time", v)),
    }
}

fn check_len(n: usize) -> Result<(), String> {
    if n > MAX_OUTPUT {
        return Err(format!("result exceeds the {MAX_OUTPUT} byte limit"));
    }
    Ok(())
}

/// spf13/cast `ToInt64` as sprig uses it: errors become 0.
pub fn to_i64(v: &Value<'_>) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => {
            if f.is_finite() {
                *f as i64
            } else {
                i64::MIN
            }
        }
        Value::Bool(b) => *b as i64,
        Value::Str(s) => {
            let t = trim_zero_decimal(s);
            match parse_number(t) {
                Some(n) if !n.is_float => n.int.unwrap_or(0),
                _ => 0,
            }
        }
        _ => 0,
    }
}

fn trim_zero_decimal(s: &str) -> &str {
    // cast's trimZeroDecimal: "3.000" → "3".
    if let Some((int, frac)) = s.split_once('.') {
        if !frac.is_empty() && frac.bytes().all(|b| b == b'0') && !int.is_empty() {
            return int;
        }
    }
    s
}

/// spf13/cast `ToFloat64`: errors become 0.
pub fn to_f64(v: &Value<'_>) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => *b as i64 as f64,
        Value::Str(s) => go_parse_float(s).unwrap_or(0.0),
        _ => 0.0,
    }
}

/// `strconv.ParseFloat(s, 64)`, close enough: Rust's parser plus Go's
/// spellings of infinities.
fn go_parse_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if s.bytes()
        .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E')
    {
        return None;
    }
    s.parse().ok()
}

/// A float's shortest decimal form as (mantissa, exponent): what
/// shopspring/decimal's `NewFromFloat` sees.
fn decimal(f: f64) -> Option<(i128, i32)> {
    if !f.is_finite() {
        return None;
    }
    let e = format!("{f:e}");
    let (m, x) = e.split_once('e')?;
    let x: i32 = x.parse().ok()?;
    let (int, frac) = m.split_once('.').unwrap_or((m, ""));
    let mant: i128 = format!("{int}{frac}").parse().ok()?;
    Some((mant, x - frac.len() as i32))
}

fn from_decimal(m: i128, e: i32) -> f64 {
    format!("{m}e{e}").parse().unwrap_or(f64::NAN)
}

/// sprig's decimal arithmetic for `addf`/`subf`/`mulf`: exact on the
/// shortest decimal forms (`addf 0.1 0.2` is `0.3`), falling back to f64.
fn dec_op(a: f64, b: f64, op: char) -> f64 {
    let fallback = match op {
        '+' => a + b,
        '-' => a - b,
        _ => a * b,
    };
    let (Some((ma, ea)), Some((mb, eb))) = (decimal(a), decimal(b)) else {
        return fallback;
    };
    match op {
        '*' => ma
            .checked_mul(mb)
            .map_or(fallback, |m| from_decimal(m, ea + eb)),
        _ => {
            let e = ea.min(eb);
            let (da, db) = ((ea - e) as u32, (eb - e) as u32);
            if da > 30 || db > 30 {
                return fallback;
            }
            let sa = 10i128.checked_pow(da).and_then(|p| ma.checked_mul(p));
            let sb = 10i128.checked_pow(db).and_then(|p| mb.checked_mul(p));
            match (sa, sb) {
                (Some(x), Some(y)) => {
                    let r = if op == '+' {
                        x.checked_add(y)
                    } else {
                        x.checked_sub(y)
                    };
                    r.map_or(fallback, |m| from_decimal(m, e))
                }
                _ => fallback,
            }
        }
    }
}

/// sprig's `divf`: shopspring/decimal divides the shortest decimal forms
/// and rounds the quotient half away from zero to 16 decimal places.
fn dec_div(a: f64, b: f64) -> f64 {
    let fallback = a / b;
    let (Some((ma, ea)), Some((mb, eb))) = (decimal(a), decimal(b)) else {
        return fallback;
    };
    let k = ea - eb + 16;
    let (num, den) = if k >= 0 {
        match 10i128.checked_pow(k as u32).and_then(|p| ma.checked_mul(p)) {
            Some(n) => (n, mb),
            None => return fallback,
        }
    } else {
        match 10i128
            .checked_pow((-k) as u32)
            .and_then(|p| mb.checked_mul(p))
        {
            Some(d) => (ma, d),
            None => return fallback,
        }
    };
    let (q, r) = (num / den, num % den);
    let q = if r.unsigned_abs().saturating_mul(2) >= den.unsigned_abs() {
        if (num < 0) != (den < 0) {
            q - 1
        } else {
            q + 1
        }
    } else {
        q
    };
    from_decimal(q, -16)
}

/// Go's `fmt.Sprint(args...)`: spaces between operands when neither is a
/// string. Stops once the output passes the size limit.
pub fn sprint(args: &[Value<'_>], out: &mut String) -> Result<(), String> {
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Value::Str(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        a.write_to(out);
        check_len(out.len())?;
        prev_string = is_string;
    }
    Ok(())
}

fn sprintln(args: &[Value<'_>], out: &mut String) -> Result<(), String> {
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        a.write_to(out);
        check_len(out.len())?;
    }
    out.push('\n');
    Ok(())
}

/// Basic kinds for comparisons.
fn compare(a: &Value<'_>, b: &Value<'_>) -> Result<Option<Ordering>, String> {
    Ok(match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.partial_cmp(y),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Str(x), Value::Str(y)) => x.as_bytes().partial_cmp(y.as_bytes()),
        (Value::Bool(_), Value::Bool(_)) => return Err("invalid type for comparison".to_string()),
        (
            Value::Int(_) | Value::Float(_) | Value::Str(_) | Value::Bool(_),
            Value::Int(_) | Value::Float(_) | Value::Str(_) | Value::Bool(_),
        ) => return Err("incompatible types for comparison".to_string()),
        _ => return Err("invalid type for comparison".to_string()),
    })
}

fn equal(a: &Value<'_>, b: &Value<'_>) -> Result<bool, String> {
    Ok(match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Time(x), Value::Time(y)) => x == y,
        (Value::Nil, Value::Nil) => true,
        (Value::Nil, _) | (_, Value::Nil) => false,
        (Value::List(_) | Value::Map(_) | Value::Labels(_), _)
        | (_, Value::List(_) | Value::Map(_) | Value::Labels(_)) => {
            return Err("non-comparable type".to_string())
        }
        _ => return Err("incompatible types for comparison".to_string()),
    })
}

fn query_escape(s: &str, out: &mut String) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => {
                out.push('%');
                out.push(
                    char::from_digit((b >> 4) as u32, 16)
                        .unwrap_or('0')
                        .to_ascii_uppercase(),
                );
                out.push(
                    char::from_digit((b & 15) as u32, 16)
                        .unwrap_or('0')
                        .to_ascii_uppercase(),
                );
            }
        }
    }
}

fn query_unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) if hex.is_some_and(|h| h.bytes().all(|c| c.is_ascii_hexdigit())) => {
                        out.push(v)
                    }
                    _ => {
                        let end = (i + 3).min(b.len());
                        let bad = String::from_utf8_lossy(&b[i..end]);
                        return Err(format!("invalid URL escape {}", timefmt::go_quote(&bad)));
                    }
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn html_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&#34;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

fn js_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
}

/// Go's `strings.Title`: upper-cases letters that start words.
fn title(s: &str) -> String {
    let is_sep = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            c.is_whitespace()
        }
    };
    let mut out = String::with_capacity(s.len());
    let mut prev = ' ';
    for c in s.chars() {
        if is_sep(prev) {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev = c;
    }
    out
}

/// Go's `strings.Replace(s, old, new, n)` (`n < 0`: all).
fn go_replace(s: &str, old: &str, new: &str, n: i64) -> Result<String, String> {
    if n == 0 || (old == new) {
        return Ok(s.to_string());
    }
    let limit = if n < 0 { usize::MAX } else { n as usize };
    if old.is_empty() {
        let inserts = (s.chars().count() + 1).min(limit);
        check_len(s.len().saturating_add(inserts.saturating_mul(new.len())))?;
        let mut out = String::new();
        let mut done = 0;
        for c in s.chars() {
            if done < limit {
                out.push_str(new);
                done += 1;
            }
            out.push(c);
        }
        if done < limit {
            out.push_str(new);
        }
        return Ok(out);
    }
    let matches = s.matches(old).count().min(limit);
    check_len(s.len().saturating_add(matches.saturating_mul(new.len())))?;
    Ok(if n < 0 {
        s.replace(old, new)
    } else {
        s.replacen(old, new, limit)
    })
}

fn in_cutset(cut: &str) -> impl Fn(char) -> bool + '_ {
    move |c| cut.contains(c)
}

fn substring(start: i64, end: i64, s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let l = chars.len() as i64;
    let end = end.min(l);
    let start = start.min(l);
    if start < 0 {
        if end < 0 {
            return String::new();
        }
        return chars[..end as usize].iter().collect();
    }
    if end < 0 {
        return chars[start as usize..].iter().collect();
    }
    if start > end {
        return String::new();
    }
    chars[start as usize..end as usize].iter().collect()
}

fn trunc(c: i64, s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let l = chars.len() as i64;
    if c < 0 && l + c > 0 {
        return chars[(l + c) as usize..].iter().collect();
    }
    if c >= 0 && l > c {
        return chars[..c as usize].iter().collect();
    }
    s.to_string()
}

fn align(count: i64, src: &str, left: bool) -> Result<String, String> {
    let l = src.chars().count() as i64;
    if count < 0 || count == l {
        return Ok(src.to_string());
    }
    if count > l {
        check_len(src.len().saturating_add((count - l) as usize))?;
        let pad = " ".repeat((count - l) as usize);
        return Ok(if left {
            format!("{src}{pad}")
        } else {
            format!("{pad}{src}")
        });
    }
    Ok(if left {
        src.chars().take(count as usize).collect()
    } else {
        src.chars().skip((l - count) as usize).collect()
    })
}

fn indent(n: i64, s: &str) -> Result<String, String> {
    if n < 0 {
        return Err("strings: negative Repeat count".to_string());
    }
    let lines = s.matches('\n').count() + 1;
    check_len((n as usize).saturating_mul(lines).saturating_add(s.len()))?;
    let pad = " ".repeat(n as usize);
    Ok(format!("{pad}{}", s.replace('\n', &format!("\n{pad}"))))
}

fn b64dec(v: &str) -> String {
    let mut v = Cow::Borrowed(v);
    let rem = v.len() % 4;
    if rem != 0 && rem != 1 {
        v = Cow::Owned(format!("{v}{}", "=".repeat(4 - rem)));
    }
    match base64::engine::general_purpose::STANDARD.decode(v.as_bytes()) {
        Ok(d) => String::from_utf8_lossy(&d).into_owned(),
        Err(e) => {
            let at = match e {
                base64::DecodeError::InvalidByte(i, _)
                | base64::DecodeError::InvalidLastSymbol(i, _) => i,
                base64::DecodeError::InvalidLength(n) => n - n % 4,
                base64::DecodeError::InvalidPadding => v.len().saturating_sub(1),
            };
            format!("illegal base64 data at input byte {at}")
        }
    }
}

fn unix_to_time(epoch: &str) -> Result<Time, String> {
    let i: i64 = epoch.parse().map_err(|_| {
        format!(
            "unable to parse time '{epoch}': strconv.ParseInt: parsing {}: invalid syntax",
            timefmt::go_quote(epoch)
        )
    })?;
    Ok(match epoch.len() {
        5 => Time::from_unix(i.saturating_mul(86400)),
        10 => Time::from_unix(i),
        13 => Time::from_unix_nanos(i.saturating_mul(1_000_000)),
        16 => Time::from_unix_nanos(i.saturating_mul(1000)),
        19 => Time::from_unix_nanos(i),
        _ => return Err(format!("unable to parse time '{epoch}': %!w(<nil>)")),
    })
}

/// A regex compiled at parse time (borrowed) or taken from the cache.
enum Re<'r> {
    Pre(&'r regex::Regex),
    Cached(Arc<regex::Regex>),
}

impl std::ops::Deref for Re<'_> {
    type Target = regex::Regex;
    fn deref(&self) -> &regex::Regex {
        match self {
            Re::Pre(r) => r,
            Re::Cached(r) => r,
        }
    }
}

fn regex_for<'r>(
    pre: Option<&'r regex::Regex>,
    src: &str,
    cache: &RegexCache,
) -> Result<Re<'r>, String> {
    match pre {
        Some(r) => Ok(Re::Pre(r)),
        None => cache.get(src).map(Re::Cached),
    }
}

/// Calls `f` with evaluated arguments (`and`/`or` are handled by the
/// executor, which short-circuits them).
pub fn call<'a>(
    f: Func,
    args: Vec<Value<'a>>,
    ctx: &Ctx<'a>,
    pre_regex: Option<&regex::Regex>,
) -> R<'a> {
    let (min, max) = f.arity();
    if args.len() < min || max.is_some_and(|m| args.len() > m) {
        let want = match max {
            Some(m) if m == min => format!("{m}"),
            _ => format!("at least {min}"),
        };
        return Err(format!(
            "wrong number of args for {}: want {want} got {}",
            f.name(),
            args.len()
        ));
    }
    let a = |i: usize| &args[i];
    use Func::*;
    let string = |s: String| -> R<'a> {
        check_len(s.len())?;
        Ok(Value::string(s))
    };
    match f {
        And | Or => unreachable_and_or(),
        Not => Ok(Value::Bool(!a(0).truthy())),
        Len => match a(0).len() {
            Some(n) => Ok(Value::Int(n as i64)),
            None => Err(format!(
                "error calling len: len of type {}",
                a(0).type_name()
            )),
        },
        Index => {
            let mut v = a(0).clone();
            for i in &args[1..] {
                v = match (&v, i) {
                    (Value::List(l), Value::Int(n)) => {
                        match usize::try_from(*n).ok().and_then(|n| l.get(n)) {
                            Some(x) => x.clone(),
                            None => {
                                return Err(format!("error calling index: index out of range: {n}"))
                            }
                        }
                    }
                    (Value::Str(s), Value::Int(n)) => {
                        match usize::try_from(*n).ok().and_then(|n| s.as_bytes().get(n)) {
                            Some(b) => Value::Int(*b as i64),
                            None => {
                                return Err(format!("error calling index: index out of range: {n}"))
                            }
                        }
                    }
                    (Value::Map(m), Value::Str(k)) => {
                        m.get(k.as_ref()).cloned().unwrap_or(Value::Nil)
                    }
                    (Value::Labels(d), Value::Str(k)) => Value::str(d.label(k).unwrap_or("")),
                    (Value::Nil, _) => {
                        return Err("error calling index: index of untyped nil".to_string())
                    }
                    (v, _) => {
                        return Err(format!(
                            "error calling index: can't index item of type {}",
                            v.type_name()
                        ))
                    }
                };
            }
            Ok(v)
        }
        Slice => {
            let idx: Vec<i64> = args[1..].iter().map(int).collect::<Result<_, _>>()?;
            let len = match a(0) {
                Value::Str(s) => s.len(),
                Value::List(l) => l.len(),
                v => {
                    return Err(format!(
                        "error calling slice: can't slice item of type {}",
                        v.type_name()
                    ))
                }
            } as i64;
            let lo = idx.first().copied().unwrap_or(0);
            let hi = idx.get(1).copied().unwrap_or(len);
            if idx.len() > 2 || lo < 0 || hi < lo || hi > len {
                return Err(format!("error calling slice: index out of range: {hi}"));
            }
            match a(0) {
                Value::Str(s) => match s.get(lo as usize..hi as usize) {
                    Some(x) => Ok(Value::string(x.to_string())),
                    None => Err("error calling slice: slice splits a UTF-8 sequence".to_string()),
                },
                Value::List(l) => Ok(Value::List(Rc::new(l[lo as usize..hi as usize].to_vec()))),
                _ => Ok(Value::Nil),
            }
        }
        Print => {
            let mut o = String::new();
            sprint(&args, &mut o)?;
            string(o)
        }
        Println => {
            let mut o = String::new();
            sprintln(&args, &mut o)?;
            string(o)
        }
        Printf => {
            let fmt = s(a(0))?;
            let mut o = String::new();
            sprintf(fmt, &args[1..], &mut o).map_err(|e| format!("error calling printf: {e}"))?;
            string(o)
        }
        Html | Js | Urlquery => {
            let mut joined = String::new();
            sprint(&args, &mut joined)?;
            let mut o = String::with_capacity(joined.len());
            match f {
                Html => html_escape(&joined, &mut o),
                Js => js_escape(&joined, &mut o),
                _ => query_escape(&joined, &mut o),
            }
            string(o)
        }
        Eq => {
            if args.len() < 2 {
                return Err("error calling eq: missing argument for comparison".to_string());
            }
            for b in &args[1..] {
                if equal(a(0), b).map_err(|e| format!("error calling eq: {e}"))? {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        Ne => Ok(Value::Bool(
            !equal(a(0), a(1)).map_err(|e| format!("error calling ne: {e}"))?,
        )),
        Lt | Le | Gt | Ge => {
            let o = compare(a(0), a(1)).map_err(|e| format!("error calling {}: {e}", f.name()))?;
            Ok(Value::Bool(match (f, o) {
                (_, None) => false,
                (Lt, Some(o)) => o == Ordering::Less,
                (Le, Some(o)) => o != Ordering::Greater,
                (Gt, Some(o)) => o == Ordering::Greater,
                (_, Some(o)) => o != Ordering::Less,
            }))
        }
        Line => Ok(Value::str(ctx.line)),
        Timestamp => Ok(Value::Time(Time::from_unix_nanos(ctx.ts_ns))),
        GoToLower | Lower => string(s(a(0))?.to_lowercase()),
        GoToUpper | Upper => string(s(a(0))?.to_uppercase()),
        GoReplace => string(go_replace(s(a(0))?, s(a(1))?, s(a(2))?, int(a(3))?)?),
        GoTrim => {
            let cut = s(a(1))?;
            Ok(Value::string(
                s(a(0))?.trim_matches(in_cutset(cut)).to_string(),
            ))
        }
        GoTrimLeft => Ok(Value::string(
            s(a(0))?.trim_start_matches(in_cutset(s(a(1))?)).to_string(),
        )),
        GoTrimRight => Ok(Value::string(
            s(a(0))?.trim_end_matches(in_cutset(s(a(1))?)).to_string(),
        )),
        GoTrimPrefix => {
            let v = owned_s(a(0))?;
            let p = s(a(1))?;
            Ok(Value::Str(strip(v, |x| x.strip_prefix(p))))
        }
        GoTrimSuffix => {
            let v = owned_s(a(0))?;
            let p = s(a(1))?;
            Ok(Value::Str(strip(v, |x| x.strip_suffix(p))))
        }
        GoTrimSpace | Trim => Ok(Value::Str(strip(owned_s(a(0))?, |x| Some(x.trim())))),
        RegexReplaceAll | RegexReplaceAllLiteral => {
            let re = regex_for(pre_regex, s(a(0))?, ctx.regexes)
                .map_err(|e| format!("error calling {}: {e}", f.name()))?;
            let src = s(a(1))?;
            let repl = s(a(2))?;
            // Upper bound: each match adds `repl`, and each `$` expansion
            // adds at most one match's text (matches do not overlap).
            let matches = re.find_iter(src).count();
            let dollars = if f == RegexReplaceAll {
                repl.matches('$').count()
            } else {
                0
            };
            check_len(
                src.len()
                    .saturating_add(matches.saturating_mul(repl.len()))
                    .saturating_add(dollars.saturating_mul(src.len())),
            )?;
            let out = if f == RegexReplaceAll {
                re.replace_all(src, repl).into_owned()
            } else {
                re.replace_all(src, regex::NoExpand(repl)).into_owned()
            };
            string(out)
        }
        Count => {
            let re = regex_for(pre_regex, s(a(0))?, ctx.regexes)
                .map_err(|e| format!("error calling count: {e}"))?;
            Ok(Value::Int(re.find_iter(s(a(1))?).count() as i64))
        }
        Urldecode => {
            string(query_unescape(s(a(0))?).map_err(|e| format!("error calling urldecode: {e}"))?)
        }
        Urlencode => {
            let mut o = String::new();
            query_escape(s(a(0))?, &mut o);
            string(o)
        }
        Bytes => Ok(Value::Float(
            timefmt::parse_bytes(s(a(0))?).map_err(|e| format!("error calling bytes: {e}"))?,
        )),
        Duration | DurationSeconds => Ok(Value::Float(
            timefmt::parse_duration_secs(s(a(0))?)
                .map_err(|e| format!("error calling {}: {e}", f.name()))?,
        )),
        UnixEpochMillis => Ok(Value::string(time(a(0))?.unix_millis().to_string())),
        UnixEpochNanos => Ok(Value::string(time(a(0))?.unix_nanos().to_string())),
        UnixEpoch => Ok(Value::string(time(a(0))?.secs.to_string())),
        ToDateInZone => {
            // Unknown zones fall back to UTC, as in Loki.
            let zone = super::zone::lookup(s(a(1))?);
            Ok(Value::Time(
                parse_layout(s(a(0))?, s(a(2))?, zone.as_deref()).unwrap_or_else(Time::zero),
            ))
        }
        ToDate => Ok(Value::Time(
            parse_layout(s(a(0))?, s(a(1))?, None).unwrap_or_else(Time::zero),
        )),
        UnixToTime => Ok(Value::Time(
            unix_to_time(s(a(0))?).map_err(|e| format!("error calling unixToTime: {e}"))?,
        )),
        AlignLeft | AlignRight => string(align(int(a(0))?, s(a(1))?, f == AlignLeft)?),
        B64dec => string(b64dec(s(a(0))?)),
        B64enc => string(base64::engine::general_purpose::STANDARD.encode(s(a(0))?)),
        Title => string(title(s(a(0))?)),
        Trunc => string(trunc(int(a(0))?, s(a(1))?)),
        Substr => string(substring(int(a(0))?, int(a(1))?, s(a(2))?)),
        Contains => Ok(Value::Bool(s(a(1))?.contains(s(a(0))?))),
        HasPrefix => Ok(Value::Bool(s(a(1))?.starts_with(s(a(0))?))),
        HasSuffix => Ok(Value::Bool(s(a(1))?.ends_with(s(a(0))?))),
        Indent => string(indent(int(a(0))?, s(a(1))?)?),
        Nindent => string(format!("\n{}", indent(int(a(0))?, s(a(1))?)?)),
        Replace => string(go_replace(s(a(2))?, s(a(0))?, s(a(1))?, -1)?),
        Repeat => {
            let n = int(a(0))?;
            let v = s(a(1))?;
            if n < 0 {
                return Err("error calling repeat: strings: negative Repeat count".to_string());
            }
            check_len((n as usize).saturating_mul(v.len()))?;
            string(v.repeat(n as usize))
        }
        TrimAll => {
            let cut = s(a(0))?;
            Ok(Value::string(
                s(a(1))?.trim_matches(in_cutset(cut)).to_string(),
            ))
        }
        TrimSuffix => {
            let p = s(a(0))?;
            Ok(Value::Str(strip(owned_s(a(1))?, |x| x.strip_suffix(p))))
        }
        TrimPrefix => {
            let p = s(a(0))?;
            Ok(Value::Str(strip(owned_s(a(1))?, |x| x.strip_prefix(p))))
        }
        Int => Ok(Value::Int(to_i64(a(0)))),
        Float64 => Ok(Value::Float(to_f64(a(0)))),
        Add => Ok(Value::Int(
            args.iter().fold(0i64, |acc, v| acc.wrapping_add(to_i64(v))),
        )),
        Sub => Ok(Value::Int(to_i64(a(0)).wrapping_sub(to_i64(a(1))))),
        Mul => Ok(Value::Int(
            args[1..]
                .iter()
                .fold(to_i64(a(0)), |acc, v| acc.wrapping_mul(to_i64(v))),
        )),
        Div | Mod => {
            let (x, y) = (to_i64(a(0)), to_i64(a(1)));
            if y == 0 {
                return Err(format!(
                    "error calling {}: runtime error: integer divide by zero",
                    f.name()
                ));
            }
            Ok(Value::Int(if f == Div {
                x.wrapping_div(y)
            } else {
                x.wrapping_rem(y)
            }))
        }
        Addf => Ok(Value::Float(
            args.iter().fold(0.0, |acc, v| dec_op(acc, to_f64(v), '+')),
        )),
        Subf => Ok(Value::Float(
            args[1..]
                .iter()
                .fold(to_f64(a(0)), |acc, v| dec_op(acc, to_f64(v), '-')),
        )),
        Mulf => Ok(Value::Float(
            args[1..]
                .iter()
                .fold(to_f64(a(0)), |acc, v| dec_op(acc, to_f64(v), '*')),
        )),
        Divf => {
            let mut acc = to_f64(a(0));
            for v in &args[1..] {
                let d = to_f64(v);
                if d == 0.0 {
                    return Err("error calling divf: decimal division by 0".to_string());
                }
                acc = dec_div(acc, d);
            }
            Ok(Value::Float(acc))
        }
        Max => Ok(Value::Int(args.iter().map(to_i64).max().unwrap_or(0))),
        Min => Ok(Value::Int(args.iter().map(to_i64).min().unwrap_or(0))),
        Maxf => Ok(Value::Float(
            args[1..]
                .iter()
                .fold(to_f64(a(0)), |acc, v| acc.max(to_f64(v))),
        )),
        Minf => Ok(Value::Float(
            args[1..]
                .iter()
                .fold(to_f64(a(0)), |acc, v| acc.min(to_f64(v))),
        )),
        Ceil => Ok(Value::Float(to_f64(a(0)).ceil())),
        Floor => Ok(Value::Float(to_f64(a(0)).floor())),
        Round => {
            let val = to_f64(a(0));
            let places = int(a(1))? as f64;
            let round_on = match args.get(2) {
                Some(Value::Float(f)) => *f,
                Some(Value::Int(i)) => *i as f64,
                Some(v) => return Err(wrong_type("float64", v)),
                None => 0.5,
            };
            let pow = 10f64.powf(places);
            let digit = pow * val;
            let frac = digit.fract();
            let r = if frac >= round_on {
                digit.ceil()
            } else {
                digit.floor()
            };
            Ok(Value::Float(r / pow))
        }
        FromJson => {
            Ok(serde_json::from_str::<serde_json::Value>(s(a(0))?).map_or(Value::Nil, from_json))
        }
        Date => {
            let layout = s(a(0))?;
            let mut t = match a(1) {
                Value::Time(t) => *t,
                Value::Int(i) => Time::from_unix(*i),
                _ => Time::now(),
            };
            // sprig formats in the local zone; miniloki's is UTC.
            t.offset = 0;
            t.abbr = timefmt::Abbr::default();
            let mut o = String::new();
            format_layout(&t, layout, &mut o);
            string(o)
        }
        Now => Ok(Value::Time(Time::now())),
        Default => {
            if args.len() < 2 || !a(1).truthy() {
                Ok(a(0).clone())
            } else {
                Ok(a(1).clone())
            }
        }
    }
}

fn unreachable_and_or<'a>() -> R<'a> {
    Err("and/or are evaluated by the executor".to_string())
}

/// Applies a borrowing transformation to a possibly-borrowed string without
/// copying when it borrows.
fn strip<'a>(v: Cow<'a, str>, f: impl for<'x> Fn(&'x str) -> Option<&'x str>) -> Cow<'a, str> {
    match v {
        Cow::Borrowed(b) => Cow::Borrowed(f(b).unwrap_or(b)),
        Cow::Owned(o) => match f(&o) {
            Some(x) => Cow::Owned(x.to_string()),
            None => Cow::Owned(o),
        },
    }
}
