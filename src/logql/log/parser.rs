//! Parser stages: `json` (all fields, or JSONPath-ish params), `logfmt`
//! (with `--strict`, `--keep-empty`, params), `regexp`, `pattern` and
//! `unpack`. Parsed keys colliding with a stream label or a structured
//! metadata key get the `_extracted` suffix; the first value extracted for a
//! key wins. Failures set `__error__`/`__error_details__` as Loki does. The
//! JSON scanner is our own and never panics on malformed input.

use std::sync::Arc;

use super::filter::PatternExpr;
use super::{Lbs, PipelineError, ERR_JSON, ERR_LOGFMT};
use crate::logql::syntax::ast::{ExtractParam, ParserStage};

const DUPLICATE_SUFFIX: &str = "_extracted";
/// Deepest object nesting the JSON scanner follows.
const MAX_DEPTH: usize = 256;

/// Scratch buffers reused across lines.
#[derive(Debug, Default)]
pub struct Scratch {
    key: String,
    val: String,
    pairs: Vec<(String, String)>,
    /// Parser hints: `None` extracts everything; `Some(names)` only those
    /// keys; `Some([])` skips parsing entirely.
    pub(crate) hints: Option<Arc<[String]>>,
    /// Capture slots of the last regexp used (keyed by its address), so
    /// that matching does not allocate per line.
    locs: Option<(usize, regex::bytes::CaptureLocations)>,
}

impl Scratch {
    pub(crate) fn with_hints(hints: Option<Arc<[String]>>) -> Scratch {
        Scratch {
            hints,
            ..Default::default()
        }
    }
}

/// True when the hints allow extracting `key`.
fn want(hints: &Option<Arc<[String]>>, key: &str) -> bool {
    hints.as_ref().is_none_or(|h| h.iter().any(|k| k == key))
}

/// What a parser did to the line.
pub(crate) enum Outcome {
    /// The line is unchanged.
    Keep,
    /// The new line was written to the `next` buffer (`unpack`'s `_entry`).
    NewLine,
}

/// One JSON path segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A compiled parser stage.
#[derive(Debug)]
pub(crate) enum Parser {
    JsonAll,
    JsonPaths(Vec<(String, Vec<Seg>)>),
    Logfmt {
        strict: bool,
        keep_empty: bool,
    },
    LogfmtParams {
        strict: bool,
        params: Vec<(String, String)>,
    },
    Regexp {
        re: regex::bytes::Regex,
        names: Vec<(usize, String)>,
    },
    Pattern(PatternExpr),
    Unpack,
}

impl Parser {
    pub(crate) fn new(p: &ParserStage) -> Result<Parser, PipelineError> {
        Ok(match p {
            ParserStage::Json(params) if params.is_empty() => Parser::JsonAll,
            ParserStage::Json(params) => {
                let mut out = Vec::with_capacity(params.len());
                for ExtractParam { label, expr } in params {
                    let e = expr.as_deref().unwrap_or(label);
                    let path = parse_json_path(e).map_err(|m| {
                        PipelineError(format!("cannot parse expression [{e}]: {m}"))
                    })?;
                    check_name(label)?;
                    out.push((label.clone(), path));
                }
                Parser::JsonPaths(out)
            }
            ParserStage::Logfmt {
                strict,
                keep_empty,
                params,
            } if params.is_empty() => Parser::Logfmt {
                strict: *strict,
                keep_empty: *keep_empty,
            },
            ParserStage::Logfmt { strict, params, .. } => {
                let mut out = Vec::with_capacity(params.len());
                for ExtractParam { label, expr } in params {
                    check_name(label)?;
                    out.push((label.clone(), expr.clone().unwrap_or_else(|| label.clone())));
                }
                Parser::LogfmtParams {
                    strict: *strict,
                    params: out,
                }
            }
            ParserStage::Regexp(src) => {
                let re = regex::bytes::Regex::new(src)
                    .map_err(|e| PipelineError(format!("error parsing regexp: {e}")))?;
                let mut names: Vec<(usize, String)> = Vec::new();
                for (i, n) in re.capture_names().enumerate() {
                    if let Some(n) = n {
                        if names.iter().any(|(_, m)| m == n) {
                            return Err(PipelineError(format!(
                                "duplicate extracted label name '{n}'"
                            )));
                        }
                        names.push((i, n.to_string()));
                    }
                }
                if names.is_empty() {
                    return Err(PipelineError(
                        "at least one named capture must be supplied".into(),
                    ));
                }
                Parser::Regexp { re, names }
            }
            ParserStage::Pattern(src) => Parser::Pattern(PatternExpr::parse_parser(src)?),
            ParserStage::Unpack => Parser::Unpack,
        })
    }

    pub(crate) fn process(
        &self,
        line: &[u8],
        lbs: &mut Lbs,
        s: &mut Scratch,
        next: &mut Vec<u8>,
    ) -> Outcome {
        if s.hints.as_ref().is_some_and(|h| h.is_empty()) {
            // No label of this query needs parsing.
            return Outcome::Keep;
        }
        match self {
            Parser::JsonAll => {
                s.key.clear();
                let mut i = 0;
                if let Err(e) = json_all(line, &mut i, lbs, s, 0) {
                    lbs.set_err(ERR_JSON);
                    lbs.set_err_details(e.text());
                }
            }
            Parser::JsonPaths(paths) => json_paths(line, paths, lbs, s),
            Parser::Logfmt { strict, keep_empty } => logfmt_all(line, *strict, *keep_empty, lbs, s),
            Parser::LogfmtParams { strict, params } => logfmt_params(line, *strict, params, lbs, s),
            Parser::Regexp { re, names } => {
                let id = re as *const regex::bytes::Regex as usize;
                let mut locs = match s.locs.take() {
                    Some((k, l)) if k == id => l,
                    _ => re.capture_locations(),
                };
                if re.captures_read(&mut locs, line).is_some() {
                    for (i, name) in names {
                        let v = locs
                            .get(*i)
                            .and_then(|(a, b)| line.get(a..b))
                            .unwrap_or(b"");
                        set_extracted(lbs, s, name, v);
                    }
                }
                s.locs = Some((id, locs));
            }
            Parser::Pattern(p) => {
                let Scratch {
                    key, val, hints, ..
                } = s;
                p.captures(line, |name, v| {
                    key.clear();
                    key.push_str(name);
                    if lbs.collides(key) {
                        key.push_str(DUPLICATE_SUFFIX);
                    }
                    if !lbs.has_parsed(key) && want(hints, key) {
                        lossy_into(v, val);
                        lbs.set_parsed(key, val);
                    }
                });
            }
            Parser::Unpack => return unpack(line, lbs, s, next),
        }
        Outcome::Keep
    }
}

fn check_name(label: &str) -> Result<(), PipelineError> {
    if crate::labels::is_valid_label_name(label) {
        Ok(())
    } else {
        Err(PipelineError(format!(
            "invalid extracted label name '{label}'"
        )))
    }
}

/// Appends `key` sanitised as Loki does (surrounding spaces trimmed,
/// characters outside `[A-Za-z0-9_]` → `_`, a leading digit prefixed with
/// `_` when `out` is empty).
pub(crate) fn append_sanitized(out: &mut String, key: &[u8]) {
    let key = key.trim_ascii();
    if key.is_empty() {
        return;
    }
    if out.is_empty() && key[0].is_ascii_digit() {
        out.push('_');
    }
    for c in String::from_utf8_lossy(key).chars() {
        out.push(if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        });
    }
}

/// Copies bytes as UTF-8, dropping invalid sequences (Loki removes them).
fn lossy_into(v: &[u8], out: &mut String) {
    out.clear();
    match std::str::from_utf8(v) {
        Ok(s) => out.push_str(s),
        Err(_) => out.extend(
            String::from_utf8_lossy(v)
                .chars()
                .filter(|c| *c != '\u{FFFD}'),
        ),
    }
}

/// Sets a parsed label named after a sanitised key, renaming on collision
/// and keeping the first value.
fn set_extracted(lbs: &mut Lbs, s: &mut Scratch, raw_key: &str, v: &[u8]) {
    s.key.clear();
    append_sanitized(&mut s.key, raw_key.as_bytes());
    if s.key.is_empty() {
        return;
    }
    if lbs.collides(&s.key) {
        s.key.push_str(DUPLICATE_SUFFIX);
    }
    if lbs.has_parsed(&s.key) || !want(&s.hints, &s.key) {
        return;
    }
    lossy_into(v, &mut s.val);
    lbs.set_parsed(&s.key, &s.val);
}

// ---------------------------------------------------------------- JSON

/// JSON scanner errors, with the texts Loki's scanner reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JsonErr {
    Malformed,
    MalformedString,
    MalformedArray,
    MalformedObject,
    MalformedValue,
    UnknownValueType,
    TooDeep,
}

impl JsonErr {
    pub(crate) fn text(self) -> &'static str {
        match self {
            JsonErr::Malformed => "Malformed JSON error",
            JsonErr::MalformedString => "Value is string, but can't find closing '\"' symbol",
            JsonErr::MalformedArray => "Value is array, but can't find closing ']' symbol",
            JsonErr::MalformedObject => {
                "Value looks like object, but can't find closing '}' symbol"
            }
            JsonErr::MalformedValue => {
                "Value looks like Number/Boolean/None, but can't find its end: ',' or '}' symbol"
            }
            JsonErr::UnknownValueType => "Unknown value type",
            JsonErr::TooDeep => "Malformed JSON error: nesting too deep",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JType {
    Str,
    Num,
    Bool,
    Null,
    Obj,
    Arr,
}

fn skip_ws(b: &[u8], i: &mut usize) {
    while *i < b.len() && matches!(b[*i], b' ' | b'\t' | b'\n' | b'\r') {
        *i += 1;
    }
}

/// At `b[i] == '"'`: returns the end (index after the closing quote) and
/// whether the string has escapes.
fn scan_string(b: &[u8], i: usize) -> Result<(usize, bool), JsonErr> {
    let mut j = i + 1;
    let mut esc = false;
    loop {
        let Some(k) = memchr::memchr2(b'"', b'\\', b.get(j..).unwrap_or(&[])) else {
            return Err(JsonErr::MalformedString);
        };
        j += k;
        if b[j] == b'\\' {
            esc = true;
            j += 2;
        } else {
            return Ok((j + 1, esc));
        }
    }
}

/// Skips a nested object or array at `b[i]` (string-aware bracket
/// matching); returns the index after it.
fn skip_block(b: &[u8], i: usize) -> Result<usize, JsonErr> {
    let (open, close, err) = if b[i] == b'{' {
        (b'{', b'}', JsonErr::MalformedObject)
    } else {
        (b'[', b']', JsonErr::MalformedArray)
    };
    let mut depth = 0usize;
    let mut j = i;
    while j < b.len() {
        let c = b[j];
        if c == b'"' {
            j = scan_string(b, j).map_err(|_| err)?.0;
            continue;
        }
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return Ok(j + 1);
            }
        }
        j += 1;
    }
    Err(err)
}

/// Reads the value at `b[*i]`: its type and byte range (strings without
/// their quotes). Nested containers are skipped, not validated.
fn scan_value(b: &[u8], i: &mut usize) -> Result<(JType, usize, usize, bool), JsonErr> {
    skip_ws(b, i);
    let start = *i;
    let Some(&c) = b.get(start) else {
        return Err(JsonErr::Malformed);
    };
    match c {
        b'"' => {
            let (end, esc) = scan_string(b, start)?;
            *i = end;
            Ok((JType::Str, start + 1, end - 1, esc))
        }
        b'{' | b'[' => {
            let end = skip_block(b, start)?;
            *i = end;
            Ok((
                if c == b'{' { JType::Obj } else { JType::Arr },
                start,
                end,
                false,
            ))
        }
        _ => {
            let end = b[start..]
                .iter()
                .position(|c| matches!(c, b' ' | b',' | b'}' | b']' | b'\n' | b'\r' | b'\t'))
                .map(|p| start + p)
                .ok_or(JsonErr::MalformedValue)?;
            let tok = &b[start..end];
            let ty = match c {
                b'-' | b'0'..=b'9' => JType::Num,
                _ if tok == b"true" || tok == b"false" => JType::Bool,
                _ if tok == b"null" => JType::Null,
                _ => return Err(JsonErr::UnknownValueType),
            };
            *i = end;
            Ok((ty, start, end, false))
        }
    }
}

/// Decodes JSON string escapes of `raw` (the text between the quotes) into
/// `out`. Invalid escapes give an empty value, as Loki.
pub(crate) fn unescape_json(raw: &[u8], out: &mut String) {
    out.clear();
    if !raw.contains(&b'\\') {
        lossy_into(raw, out);
        return;
    }
    let mut bytes: Vec<u8> = Vec::with_capacity(raw.len());
    let mut i = 0;
    let hex4 = |i: usize| -> Option<u32> {
        let h = raw.get(i..i + 4)?;
        u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    };
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' {
            bytes.push(c);
            i += 1;
            continue;
        }
        let Some(&e) = raw.get(i + 1) else {
            out.clear();
            return;
        };
        i += 2;
        let ch = match e {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let Some(hi) = hex4(i) else {
                    out.clear();
                    return;
                };
                i += 4;
                let cp = if (0xD800..0xDC00).contains(&hi)
                    && raw.get(i) == Some(&b'\\')
                    && raw.get(i + 1) == Some(&b'u')
                {
                    match hex4(i + 2) {
                        Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                            i += 6;
                            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                        }
                        _ => hi,
                    }
                } else {
                    hi
                };
                char::from_u32(cp).unwrap_or('\u{FFFD}')
            }
            _ => {
                out.clear();
                return;
            }
        };
        let mut tmp = [0u8; 4];
        bytes.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
    }
    lossy_into(&bytes, out);
}

/// Walks the object at `b[*i]`, extracting every scalar under the key
/// prefix held in `s.key`.
fn json_all(
    b: &[u8],
    i: &mut usize,
    lbs: &mut Lbs,
    s: &mut Scratch,
    depth: usize,
) -> Result<(), JsonErr> {
    if depth > MAX_DEPTH {
        return Err(JsonErr::TooDeep);
    }
    skip_ws(b, i);
    if b.get(*i) != Some(&b'{') {
        return Err(JsonErr::MalformedObject);
    }
    *i += 1;
    skip_ws(b, i);
    if b.get(*i) == Some(&b'}') {
        *i += 1;
        return Ok(());
    }
    loop {
        skip_ws(b, i);
        if b.get(*i) != Some(&b'"') {
            return Err(if *i >= b.len() {
                JsonErr::MalformedObject
            } else {
                JsonErr::Malformed
            });
        }
        let (kend, _) = scan_string(b, *i)?;
        let key = &b[*i + 1..kend - 1];
        *i = kend;
        skip_ws(b, i);
        if b.get(*i) != Some(&b':') {
            return Err(JsonErr::Malformed);
        }
        *i += 1;
        skip_ws(b, i);
        let prefix_len = s.key.len();
        if b.get(*i) == Some(&b'{') {
            if !s.key.is_empty() && !key.trim_ascii().is_empty() {
                s.key.push('_');
            }
            append_sanitized(&mut s.key, key);
            let r = json_all(b, i, lbs, s, depth + 1);
            s.key.truncate(prefix_len);
            r?;
        } else {
            let (ty, vs, ve, _) = scan_value(b, i)?;
            if matches!(ty, JType::Str | JType::Num | JType::Bool) {
                if !s.key.is_empty() && !key.trim_ascii().is_empty() {
                    s.key.push('_');
                }
                append_sanitized(&mut s.key, key);
                if !s.key.is_empty() {
                    if lbs.collides(&s.key) {
                        s.key.push_str(DUPLICATE_SUFFIX);
                    }
                    if !lbs.has_parsed(&s.key) && want(&s.hints, &s.key) {
                        match ty {
                            JType::Str => unescape_json(&b[vs..ve], &mut s.val),
                            _ => lossy_into(&b[vs..ve], &mut s.val),
                        }
                        lbs.set_parsed(&s.key, &s.val);
                    }
                }
                s.key.truncate(prefix_len);
            }
        }
        skip_ws(b, i);
        match b.get(*i) {
            Some(b',') => *i += 1,
            Some(b'}') => {
                *i += 1;
                return Ok(());
            }
            _ => return Err(JsonErr::MalformedObject),
        }
    }
}

/// Parses `a.b[0]["c d"]` into segments.
fn parse_json_path(e: &str) -> Result<Vec<Seg>, String> {
    let b = e.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let ident = |i: &mut usize| -> String {
        let st = *i;
        while *i < b.len() && !matches!(b[*i], b'.' | b'[' | b']' | b'"' | b' ') {
            *i += 1;
        }
        e[st..*i].to_string()
    };
    let syntax = |i: usize| format!("syntax error: unexpected character at {i}");
    while i < b.len() {
        match b[i] {
            b'.' => {
                i += 1;
                let k = ident(&mut i);
                if k.is_empty() {
                    return Err(syntax(i));
                }
                out.push(Seg::Key(k));
            }
            b'[' => {
                i += 1;
                if b.get(i) == Some(&b'"') {
                    let (v, used) =
                        crate::labels::unquote_go_prefix(&e[i..]).map_err(|_| syntax(i))?;
                    i += used;
                    out.push(Seg::Key(v));
                } else {
                    let st = i;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    let n = e[st..i].parse::<usize>().map_err(|_| syntax(i))?;
                    out.push(Seg::Index(n));
                }
                if b.get(i) != Some(&b']') {
                    return Err(syntax(i));
                }
                i += 1;
            }
            _ if out.is_empty() => {
                let k = ident(&mut i);
                if k.is_empty() {
                    return Err(syntax(i));
                }
                out.push(Seg::Key(k));
            }
            _ => return Err(syntax(i)),
        }
    }
    if out.is_empty() {
        return Err("empty expression".into());
    }
    Ok(out)
}

/// Finds the value at `path` in the document `b`.
fn json_lookup(
    b: &[u8],
    path: &[Seg],
    s: &mut Scratch,
) -> Result<Option<(JType, usize, usize)>, JsonErr> {
    let mut i = 0usize;
    for seg in path {
        skip_ws(b, &mut i);
        match (seg, b.get(i)) {
            (Seg::Key(want), Some(b'{')) => {
                i += 1;
                loop {
                    skip_ws(b, &mut i);
                    match b.get(i) {
                        Some(b'}') => return Ok(None),
                        Some(b'"') => {}
                        _ => return Err(JsonErr::MalformedObject),
                    }
                    let (kend, esc) = scan_string(b, i)?;
                    let raw = &b[i + 1..kend - 1];
                    let same = if esc {
                        unescape_json(raw, &mut s.val);
                        s.val == *want
                    } else {
                        raw == want.as_bytes()
                    };
                    i = kend;
                    skip_ws(b, &mut i);
                    if b.get(i) != Some(&b':') {
                        return Err(JsonErr::Malformed);
                    }
                    i += 1;
                    if same {
                        break;
                    }
                    scan_value(b, &mut i)?;
                    skip_ws(b, &mut i);
                    match b.get(i) {
                        Some(b',') => i += 1,
                        Some(b'}') => return Ok(None),
                        _ => return Err(JsonErr::MalformedObject),
                    }
                }
            }
            (Seg::Index(n), Some(b'[')) => {
                i += 1;
                for _ in 0..*n {
                    skip_ws(b, &mut i);
                    if b.get(i) == Some(&b']') {
                        return Ok(None);
                    }
                    scan_value(b, &mut i)?;
                    skip_ws(b, &mut i);
                    match b.get(i) {
                        Some(b',') => i += 1,
                        Some(b']') => return Ok(None),
                        _ => return Err(JsonErr::MalformedArray),
                    }
                }
                skip_ws(b, &mut i);
                if b.get(i) == Some(&b']') {
                    return Ok(None);
                }
            }
            _ => return Ok(None),
        }
    }
    let (ty, vs, ve, _) = scan_value(b, &mut i)?;
    Ok(Some((ty, vs, ve)))
}

fn json_paths(line: &[u8], paths: &[(String, Vec<Seg>)], lbs: &mut Lbs, s: &mut Scratch) {
    let start = line.trim_ascii_start();
    if start.is_empty() {
        return;
    }
    if !matches!(start[0], b'"' | b'{' | b'[') {
        lbs.set_err(ERR_JSON);
        return;
    }
    for (id, path) in paths {
        match json_lookup(line, path, s) {
            Err(e) => {
                lbs.set_err(ERR_JSON);
                lbs.set_err_details(e.text());
            }
            Ok(None) => {}
            Ok(Some((ty, vs, ve))) => {
                s.key.clear();
                s.key.push_str(id);
                if lbs.collides(id) {
                    s.key.push_str(DUPLICATE_SUFFIX);
                }
                match ty {
                    JType::Null => s.val.clear(),
                    JType::Str => unescape_json(&line[vs..ve], &mut s.val),
                    _ => lossy_into(&line[vs..ve], &mut s.val),
                }
                lbs.set_parsed(&s.key, &s.val);
            }
        }
    }
    // A missing path gives an empty label.
    for (id, _) in paths {
        if lbs.get(id).is_none() {
            lbs.set_parsed(id, "");
        }
    }
}

fn unpack(line: &[u8], lbs: &mut Lbs, s: &mut Scratch, next: &mut Vec<u8>) -> Outcome {
    if line.is_empty() {
        return Outcome::Keep;
    }
    if line[0] != b'{' {
        lbs.set_err(ERR_JSON);
        lbs.set_err_details("expecting json object(6), but it is not");
        return Outcome::Keep;
    }
    let mut n = 0usize;
    let mut packed = false;
    let res = (|| -> Result<(), JsonErr> {
        let b = line;
        let mut i = 1usize;
        skip_ws(b, &mut i);
        if b.get(i) == Some(&b'}') {
            return Ok(());
        }
        loop {
            skip_ws(b, &mut i);
            if b.get(i) != Some(&b'"') {
                return Err(JsonErr::MalformedObject);
            }
            let (kend, _) = scan_string(b, i)?;
            let key = &b[i + 1..kend - 1];
            i = kend;
            skip_ws(b, &mut i);
            if b.get(i) != Some(&b':') {
                return Err(JsonErr::Malformed);
            }
            i += 1;
            let (ty, vs, ve, _) = scan_value(b, &mut i)?;
            if ty == JType::Str {
                if key == b"_entry" {
                    unescape_json(&b[vs..ve], &mut s.val);
                    next.clear();
                    next.extend_from_slice(s.val.as_bytes());
                    packed = true;
                } else {
                    s.key.clear();
                    lossy_into(key, &mut s.key);
                    if lbs.collides(&s.key) {
                        s.key.push_str(DUPLICATE_SUFFIX);
                    }
                    if !lbs.has_parsed(&s.key) && want(&s.hints, &s.key) {
                        if s.pairs.len() <= n {
                            s.pairs.push((String::new(), String::new()));
                        }
                        let (k, v) = &mut s.pairs[n];
                        k.clear();
                        append_sanitized(k, s.key.as_bytes());
                        unescape_json(&b[vs..ve], v);
                        n += 1;
                    }
                }
            }
            skip_ws(b, &mut i);
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => return Ok(()),
                _ => return Err(JsonErr::MalformedObject),
            }
        }
    })();
    if let Err(e) = res {
        lbs.set_err(ERR_JSON);
        lbs.set_err_details(e.text());
        return Outcome::Keep;
    }
    for (k, v) in &s.pairs[..n] {
        if !k.is_empty() {
            lbs.set_parsed(k, v);
        }
    }
    if packed {
        Outcome::NewLine
    } else {
        Outcome::Keep
    }
}

// ---------------------------------------------------------------- logfmt

/// A logfmt scanner following Loki's decoder: `key=value`, `key="quoted"`,
/// standalone keys; errors are reported as `logfmt syntax error at pos N :
/// msg`.
struct Logfmt<'a> {
    line: &'a [u8],
    pos: usize,
    key: &'a [u8],
    /// Value range; `quoted_esc` when it needs unescaping.
    val: &'a [u8],
    quoted_esc: bool,
    err: Option<String>,
}

impl<'a> Logfmt<'a> {
    fn new(line: &'a [u8]) -> Self {
        Logfmt {
            line,
            pos: 0,
            key: &[],
            val: &[],
            quoted_esc: false,
            err: None,
        }
    }
    fn eol(&self) -> bool {
        self.pos >= self.line.len()
    }
    fn error(&mut self, msg: String) {
        self.err = Some(format!(
            "logfmt syntax error at pos {} : {}",
            self.pos + 1,
            msg
        ));
    }
    fn unexpected(&mut self, c: u8) {
        self.error(format!("unexpected {}", go_quote_byte(c)));
    }
    fn skip_value(&mut self) -> bool {
        let rest = &self.line[self.pos..];
        self.pos += rest.iter().position(|c| *c <= b' ').unwrap_or(rest.len());
        false
    }
    /// Scans the next pair; false when it is malformed or the line ended.
    fn scan(&mut self) -> bool {
        self.key = &[];
        self.val = &[];
        self.quoted_esc = false;
        let line = self.line;
        match line[self.pos.min(line.len())..]
            .iter()
            .position(|c| *c > b' ')
        {
            Some(p) => self.pos += p,
            None => {
                self.pos = line.len();
                return false;
            }
        }
        let start = self.pos;
        loop {
            let Some(&c) = line.get(self.pos) else {
                self.key = &line[start..];
                return self.check_key();
            };
            if c == b'=' {
                if self.pos == start {
                    self.unexpected(c);
                    return self.skip_value();
                }
                self.key = &line[start..self.pos];
                if !self.check_key() {
                    return self.skip_value();
                }
                break;
            } else if c == b'"' {
                self.unexpected(c);
                return self.skip_value();
            } else if c <= b' ' {
                self.key = &line[start..self.pos];
                return self.check_key();
            }
            self.pos += 1;
        }
        // equal
        self.pos += 1;
        let Some(&c) = line.get(self.pos) else {
            return true;
        };
        if c <= b' ' {
            return true;
        }
        if c == b'"' {
            let start = self.pos;
            let mut esc = false;
            let mut j = self.pos + 1;
            while j < line.len() {
                let c = line[j];
                if esc {
                    esc = false;
                } else if c == b'\\' {
                    esc = true;
                    self.quoted_esc = true;
                } else if c == b'"' {
                    self.pos = j + 1;
                    self.val = &line[start + 1..j];
                    return true;
                }
                j += 1;
            }
            self.pos = line.len();
            self.error("unterminated quoted value".into());
            return false;
        }
        let start = self.pos;
        while let Some(&c) = line.get(self.pos) {
            if c == b'=' || c == b'"' {
                self.unexpected(c);
                return self.skip_value();
            }
            if c <= b' ' {
                break;
            }
            self.pos += 1;
        }
        self.val = &line[start..self.pos];
        true
    }
    fn check_key(&mut self) -> bool {
        if std::str::from_utf8(self.key).is_err() {
            self.error("invalid key".into());
            return false;
        }
        true
    }
    fn value_into(&self, out: &mut String) {
        if self.quoted_esc {
            unescape_json(self.val, out);
        } else {
            lossy_into(self.val, out);
        }
    }
}

fn go_quote_byte(c: u8) -> String {
    match c {
        b'\'' => "'\\''".into(),
        c if c.is_ascii_graphic() || c == b' ' => format!("'{}'", c as char),
        c => format!("'\\x{c:02x}'"),
    }
}

fn logfmt_all(line: &[u8], strict: bool, keep_empty: bool, lbs: &mut Lbs, s: &mut Scratch) {
    let mut d = Logfmt::new(line);
    while !d.eol() {
        if !d.scan() {
            if strict {
                break;
            }
            continue;
        }
        s.key.clear();
        append_sanitized(&mut s.key, d.key);
        if s.key.is_empty() {
            continue;
        }
        if lbs.collides(&s.key) {
            s.key.push_str(DUPLICATE_SUFFIX);
        }
        if lbs.has_parsed(&s.key) || !want(&s.hints, &s.key) {
            continue;
        }
        d.value_into(&mut s.val);
        if !keep_empty && s.val.is_empty() {
            continue;
        }
        lbs.set_parsed(&s.key, &s.val);
    }
    if strict {
        if let Some(e) = &d.err {
            lbs.set_err(ERR_LOGFMT);
            lbs.set_err_details(e);
        }
    }
}

fn logfmt_params(
    line: &[u8],
    strict: bool,
    params: &[(String, String)],
    lbs: &mut Lbs,
    s: &mut Scratch,
) {
    for (id, _) in params {
        if !lbs.collides(id) {
            lbs.set_parsed(id, "");
        }
    }
    let mut d = Logfmt::new(line);
    while !d.eol() {
        if !d.scan() {
            if strict {
                break;
            }
            continue;
        }
        s.key.clear();
        append_sanitized(&mut s.key, d.key);
        for (id, expr) in params {
            if *expr == s.key {
                d.value_into(&mut s.val);
                if lbs.collides(id) {
                    let k = format!("{id}{DUPLICATE_SUFFIX}");
                    lbs.set_parsed(&k, &s.val);
                } else {
                    lbs.set_parsed(id, &s.val);
                }
            }
        }
    }
    if strict {
        if let Some(e) = &d.err {
            lbs.set_err(ERR_LOGFMT);
            lbs.set_err_details(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::logql::log::testutil::{labels, md, pipeline, run, run_md};
    use crate::logql::syntax::ast::{ExtractParam, ParserStage, Stage};

    fn json() -> Stage {
        Stage::Parser(ParserStage::Json(vec![]))
    }
    fn json_p(ps: &[(&str, Option<&str>)]) -> Stage {
        Stage::Parser(ParserStage::Json(
            ps.iter()
                .map(|(l, e)| ExtractParam {
                    label: l.to_string(),
                    expr: e.map(String::from),
                })
                .collect(),
        ))
    }
    fn logfmt(strict: bool, keep_empty: bool, ps: &[(&str, Option<&str>)]) -> Stage {
        Stage::Parser(ParserStage::Logfmt {
            strict,
            keep_empty,
            params: ps
                .iter()
                .map(|(l, e)| ExtractParam {
                    label: l.to_string(),
                    expr: e.map(String::from),
                })
                .collect(),
        })
    }
    fn labels_of(stages: Vec<Stage>, line: &str) -> String {
        run(&pipeline(stages), line).expect("kept").1
    }

    const STRUCTLOG: &str = r#"{"timestamp": "2024-05-01T10:00:00Z", "level": "error", "event": "order_processing_failed", "order_id": 4411, "trace_id": "7f3a", "duration_ms": 250.5, "ok": false, "tags": ["a", {"b": 1}], "ctx": {"user.id": 7, "geo": {"1st": "eu"}}, "n": null}"#;

    #[test]
    fn json_all_fields_nested_arrays_skipped() {
        assert_eq!(
            labels_of(vec![json()], STRUCTLOG),
            r#"{app="svc", ctx_geo_1st="eu", ctx_user_id="7", duration_ms="250.5", event="order_processing_failed", level="error", ok="false", order_id="4411", timestamp="2024-05-01T10:00:00Z", trace_id="7f3a"}"#
        );
    }

    #[test]
    fn json_sanitizes_names_and_unescapes() {
        assert_eq!(
            labels_of(
                vec![json()],
                r#"{"1st": "x", "a-b.c": "y", " sp ": "z", "msg": "a\"b\u00e9\n", "a":"1", "a":"2"}"#
            ),
            r#"{_1st="x", a="1", a_b_c="y", app="svc", msg="a\"bé\n", sp="z"}"#
        );
    }

    #[test]
    fn json_empty_nested_key_uses_the_prefix() {
        assert_eq!(
            labels_of(vec![json()], r#"{"a": {"": 1}, "": 2}"#),
            r#"{a="1", app="svc"}"#
        );
    }

    #[test]
    fn json_collisions_with_stream_and_metadata() {
        let (_, l) = run_md(
            &pipeline(vec![json()]),
            r#"{"app": "web", "trace_id": "x", "level": "info"}"#,
            &[("trace_id", "y")],
        )
        .unwrap();
        assert_eq!(
            l,
            r#"{app="svc", app_extracted="web", level="info", trace_id="y", trace_id_extracted="x"}"#
        );
    }

    #[test]
    fn json_errors() {
        assert_eq!(
            labels_of(vec![json()], "level=info not json"),
            r#"{__error__="JSONParserErr", __error_details__="Value looks like object, but can't find closing '}' symbol", app="svc"}"#
        );
        // Fields before the error are kept.
        assert_eq!(
            labels_of(vec![json()], r#"{"level": "error", "msg": "unterminated"#),
            r#"{__error__="JSONParserErr", __error_details__="Value is string, but can't find closing '\"' symbol", app="svc", level="error"}"#
        );
        // Malformed input never panics.
        for bad in [
            "{",
            "{\"",
            "{\"a\"",
            "{\"a\":",
            "{\"a\":{",
            "{\"a\":[1,",
            "{\"a\":\"\\",
            "\u{0}{}",
            "{\"a\":1,}",
        ] {
            let l = labels_of(vec![json()], bad);
            assert!(l.contains("JSONParserErr"), "{bad}: {l}");
        }
        let deep = "{\"a\":".repeat(10_000);
        assert!(labels_of(vec![json()], &deep).contains("JSONParserErr"));
    }

    #[test]
    fn json_params_with_paths() {
        let st = json_p(&[
            ("first_tag", Some("tags[0]")),
            ("user", Some(r#"ctx["user.id"]"#)),
            ("geo", Some("ctx.geo")),
            ("missing", Some("nope.x")),
            ("level", None),
            ("tag_obj", Some("tags[1]")),
        ]);
        assert_eq!(
            labels_of(vec![st], STRUCTLOG),
            r#"{app="svc", first_tag="a", geo="{\"1st\": \"eu\"}", level="error", missing="", tag_obj="{\"b\": 1}", user="7"}"#
        );
        let st = json_p(&[("level", None)]);
        // As Loki: a line that cannot start JSON gets the error and no labels.
        assert_eq!(
            labels_of(vec![st.clone()], "plain text"),
            r#"{__error__="JSONParserErr", app="svc"}"#
        );
        assert!(
            crate::logql::log::Pipeline::new(&[json_p(&[("a", Some("x[\"unterminated"))])])
                .is_err()
        );
    }

    #[test]
    fn logfmt_default_keep_empty_and_strict() {
        let line = r#"level=info msg="order created" order_id=4412 empty= flag dur=1.2s"#;
        assert_eq!(
            labels_of(vec![logfmt(false, false, &[])], line),
            r#"{app="svc", dur="1.2s", level="info", msg="order created", order_id="4412"}"#
        );
        assert_eq!(
            labels_of(vec![logfmt(false, true, &[])], line),
            r#"{app="svc", dur="1.2s", empty="", flag="", level="info", msg="order created", order_id="4412"}"#
        );
        let bad = r#"level=info bad"key=1 after=2"#;
        assert_eq!(
            labels_of(vec![logfmt(false, false, &[])], bad),
            r#"{after="2", app="svc", level="info"}"#
        );
        assert_eq!(
            labels_of(vec![logfmt(true, false, &[])], bad),
            r#"{__error__="LogfmtParserErr", __error_details__="logfmt syntax error at pos 15 : unexpected '\"'", app="svc", level="info"}"#
        );
        assert_eq!(
            labels_of(
                vec![logfmt(false, false, &[])],
                r#"app=web msg="a \"q\" b""#
            ),
            r#"{app="svc", app_extracted="web", msg="a \"q\" b"}"#
        );
    }

    #[test]
    fn logfmt_params() {
        let line = "level=info order_id=4412";
        assert_eq!(
            labels_of(
                vec![logfmt(
                    false,
                    false,
                    &[
                        ("lvl", Some("level")),
                        ("order_id", None),
                        ("x", Some("nokey"))
                    ]
                )],
                line
            ),
            r#"{app="svc", lvl="info", order_id="4412", x=""}"#
        );
    }

    #[test]
    fn regexp_on_apache_line() {
        let line = "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6";
        let st = Stage::Parser(ParserStage::Regexp(
            r"\[(?P<ts>[^\]]+)\] \[(?P<level>\w+)\] (?P<msg>.*?)(?P<code> \d+)?$".into(),
        ));
        assert_eq!(
            labels_of(vec![st.clone()], line),
            r#"{app="svc", code=" 6", level="error", msg="mod_jk child workerEnv in error state", ts="Sun Dec 04 04:47:44 2005"}"#
        );
        // An unmatched optional group gives an empty value; no match sets nothing.
        assert_eq!(
            labels_of(vec![st.clone()], "[t] [notice] ok"),
            r#"{app="svc", code="", level="notice", msg="ok", ts="t"}"#
        );
        assert_eq!(labels_of(vec![st], "nothing"), r#"{app="svc"}"#);
        assert!(
            crate::logql::log::Pipeline::new(&[Stage::Parser(ParserStage::Regexp("(a)".into()))])
                .is_err()
        );
        assert!(
            crate::logql::log::Pipeline::new(&[Stage::Parser(ParserStage::Regexp(
                "(?P<a>x)(?P<a>y)".into()
            ))])
            .is_err()
        );
    }

    #[test]
    fn two_regexp_stages() {
        let a = Stage::Parser(ParserStage::Regexp(r"^(?P<month>\w+) (?P<day>\d+)".into()));
        let b = Stage::Parser(ParserStage::Regexp(r"sshd\[(?P<pid>\d+)\]".into()));
        let p = pipeline(vec![a, b]);
        for _ in 0..2 {
            let (_, l) = run(&p, "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user").unwrap();
            assert_eq!(l, r#"{app="svc", day="10", month="Dec", pid="24200"}"#);
        }
    }

    #[test]
    fn pattern_on_openssh_line() {
        let line = "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186";
        let st = Stage::Parser(ParserStage::Pattern(
            "<_> sshd[<pid>]: <msg> from <app>".into(),
        ));
        assert_eq!(
            labels_of(vec![st], line),
            r#"{app="svc", app_extracted="173.234.31.186", msg="Invalid user webmaster", pid="24200"}"#
        );
        // Anchored at the start: a leading literal must match there.
        let st = Stage::Parser(ParserStage::Pattern("LabSZ <x> <_>".into()));
        assert_eq!(labels_of(vec![st], line), r#"{app="svc"}"#);
    }

    #[test]
    fn unpack_entry_and_labels() {
        let p = pipeline(vec![Stage::Parser(ParserStage::Unpack)]);
        let mut sp = p.for_stream(&labels(r#"{app="svc"}"#));
        let m = md(&[]);
        let input = br#"{"_entry": "GET /x \"q\" 200", "pod": "p1", "n": 5, "app": "other"}"#;
        let (l, r) = sp.process(1, input, &m).unwrap();
        assert_eq!(l, br#"GET /x "q" 200"#);
        assert_eq!(r.parsed.to_string(), r#"{app_extracted="other", pod="p1"}"#);
        assert_eq!(
            labels_of(vec![Stage::Parser(ParserStage::Unpack)], "plain"),
            r#"{__error__="JSONParserErr", __error_details__="expecting json object(6), but it is not", app="svc"}"#
        );
        // Without `_entry` the line is unchanged.
        let (l, _) = run(&p, r#"{"pod": "p2"}"#).unwrap();
        assert_eq!(l, r#"{"pod": "p2"}"#);
    }

    #[test]
    fn first_extracted_value_wins_across_parsers() {
        let st = vec![json(), logfmt(false, false, &[])];
        let p = pipeline(st);
        // The JSON parse fails, logfmt then extracts; a later key does not
        // overwrite an earlier one.
        let (_, l) = run(&p, "level=info level=debug").unwrap();
        assert!(l.contains(r#"level="info""#), "{l}");
    }
}
