//! The LogQL lexer: query text to a vector of positioned [`Token`]s.
//!
//! It follows Loki's `lex.go` token rules: `#` comments, Go strings and raw
//! strings, numbers that turn into durations (`1m30s`) or byte sizes
//! (`20MB`) when a unit follows without a space, `[5m]` ranges as one token,
//! `--strict`-style parser flags, keywords that are case-insensitive, and
//! function names (`rate`, `sum`, `bytes`, `ip`, ...) that are keywords only
//! when an opening parenthesis (or `by (`/`without (`) follows: otherwise
//! they are plain identifiers. The small recognisers are `nom` parsers.
//!
//! A lexing error does not abort lexing at once: it becomes an
//! [`Kind::Error`] token, so that the parser reports whichever error comes
//! first in the text, as Loki's goyacc parser does.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::{digit1, one_of};
use nom::combinator::{opt, recognize};
use nom::{IResult, Parser};

#[cfg(test)]
use crate::units::MS;
pub use crate::units::{parse_bytes, parse_duration, parse_go_duration, parse_prometheus_duration};

/// What a token is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    Ident(String),
    Str(String),
    /// The number's text, as written.
    Number(String),
    /// Nanoseconds.
    Duration(i64),
    Bytes(u64),
    /// `[5m]`, nanoseconds.
    Range(i64),
    /// `--strict`, `--keep-empty`
    Flag(String),
    /// Punctuation, operators and always-keywords (`by`, `json`, ...), by
    /// their lower-case text.
    Sym(&'static str),
    /// Function keywords (`rate`, `sum`, `bytes`, `ip`, ...), lower-case.
    Func(&'static str),
    /// A lexing error at this position.
    Error(String),
    Eof,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub kind: Kind,
    /// Byte offset of the token's first character.
    pub offset: usize,
}

impl Kind {
    /// The token's name in goyacc's error messages.
    pub fn name(&self) -> String {
        match self {
            Kind::Ident(_) => "IDENTIFIER".into(),
            Kind::Str(_) => "STRING".into(),
            Kind::Number(_) => "NUMBER".into(),
            Kind::Duration(_) => "DURATION".into(),
            Kind::Bytes(_) => "BYTES".into(),
            Kind::Range(_) => "RANGE".into(),
            Kind::Flag(_) => "FUNCTION_FLAG".into(),
            Kind::Sym(s) => (*s).into(),
            Kind::Func(f) => func_token_name(f),
            Kind::Error(_) => "error".into(),
            Kind::Eof => "$end".into(),
        }
    }
}

/// goyacc's names of function tokens (those Loki does not rename to text).
pub(crate) fn func_token_name(f: &str) -> String {
    match f {
        "bytes" => "BYTES_CONV".into(),
        "duration" => "DURATION_CONV".into(),
        "duration_seconds" => "DURATION_SECONDS_CONV".into(),
        "ip" | "label_replace" => f.into(),
        other => other.to_ascii_uppercase(),
    }
}

/// Always-keywords (Loki's `tokens` map, words only).
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "bool",
    "offset",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "or",
    "and",
    "unless",
    "json",
    "regexp",
    "logfmt",
    "unpack",
    "pattern",
    "label_format",
    "line_format",
    "decolorize",
    "drop",
    "keep",
    "unwrap",
];

/// Keywords that need a following `(` (Loki's `functionTokens`).
const FUNCTIONS: &[&str] = &[
    "rate",
    "rate_counter",
    "count_over_time",
    "bytes_rate",
    "bytes_over_time",
    "avg_over_time",
    "sum_over_time",
    "min_over_time",
    "max_over_time",
    "stdvar_over_time",
    "stddev_over_time",
    "quantile_over_time",
    "first_over_time",
    "last_over_time",
    "absent_over_time",
    "vector",
    "sum",
    "avg",
    "max",
    "min",
    "count",
    "stddev",
    "stdvar",
    "bottomk",
    "topk",
    "sort",
    "sort_desc",
    "label_replace",
    "approx_topk",
    "bytes",
    "duration",
    "duration_seconds",
    "ip",
];

/// Two-character operators, then one-character ones.
const SYMS2: &[&str] = &["!=", "=~", "!~", "!>", "|=", "|~", "|>", "==", ">=", "<="];
const SYMS1: &[&str] = &[
    ",", ".", "{", "}", "=", "|", "(", ")", "+", "-", "*", "/", "%", "^", ">", "<", "]",
];

/// Lexes the whole input. The last token is always [`Kind::Eof`] or
/// [`Kind::Error`].
pub(crate) fn lex(input: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    loop {
        pos = skip_space_and_comments(input, pos);
        let rest = &input[pos..];
        let Some(c) = rest.chars().next() else {
            out.push(Token {
                kind: Kind::Eof,
                offset: pos,
            });
            return out;
        };
        let (kind, len) = lex_one(rest, c);
        let failed = matches!(kind, Kind::Error(_));
        out.push(Token { kind, offset: pos });
        if failed {
            return out;
        }
        pos += len.max(1);
    }
}

fn skip_space_and_comments(input: &str, mut pos: usize) -> usize {
    loop {
        let rest = &input[pos..];
        let trimmed = rest.trim_start();
        pos += rest.len() - trimmed.len();
        if let Some(after) = trimmed.strip_prefix('#') {
            let skip = after.find('\n').unwrap_or(after.len());
            pos += 1 + skip;
        } else {
            return pos;
        }
    }
}

/// Lexes one token at the start of `rest` (non-empty, starts with `c`).
fn lex_one(rest: &str, c: char) -> (Kind, usize) {
    match c {
        '"' => match crate::labels::unquote_go_prefix(rest) {
            Ok((s, used)) => (Kind::Str(s), used),
            Err(e) if e.contains("unterminated") || e.contains("newline") => {
                (Kind::Error("literal not terminated".into()), 0)
            }
            // Go's text/scanner reports every bad escape this way.
            Err(_) => (Kind::Error("invalid char escape".into()), 0),
        },
        '`' => match rest[1..].find('`') {
            Some(end) => (Kind::Str(rest[1..1 + end].to_string()), end + 2),
            None => (Kind::Error("literal not terminated".into()), 0),
        },
        '[' => match rest.find(']') {
            Some(end) => match parse_prometheus_duration(&rest[1..end]) {
                Ok(d) => (Kind::Range(d), end + 1),
                Err(e) => (Kind::Error(e), 0),
            },
            None => (Kind::Error("missing closing ']' in duration".into()), 0),
        },
        '0'..='9' => lex_number(rest),
        '.' if rest[1..].starts_with(|c: char| c.is_ascii_digit()) => lex_number(rest),
        '-' => {
            // Compare with the two flags only: scanning the whole run of
            // letters and dashes made a long `-----...` quadratic.
            for flag in ["--strict", "--keep-empty"] {
                if let Some(tail) = rest.strip_prefix(flag) {
                    if !tail.starts_with(|c: char| c.is_alphabetic() || c == '-') {
                        return (Kind::Flag(flag.to_string()), flag.len());
                    }
                }
            }
            let unit = unit_run(&rest[1..], is_duration_rune);
            if !unit.is_empty() {
                let text = &rest[..1 + unit.len()];
                if let Ok(d) = parse_duration(text) {
                    return (Kind::Duration(d), text.len());
                }
            }
            (Kind::Sym("-"), 1)
        }
        c if c.is_alphabetic() || c == '_' => lex_word(rest),
        _ => {
            for s in SYMS2 {
                if rest.starts_with(s) {
                    return (Kind::Sym(s), 2);
                }
            }
            for s in SYMS1 {
                if rest.starts_with(s) {
                    return (Kind::Sym(s), 1);
                }
            }
            // Loki turns any other character into an identifier token.
            (Kind::Ident(c.to_string()), c.len_utf8())
        }
    }
}

fn ident(i: &str) -> IResult<&str, &str> {
    recognize((
        take_while1(|c: char| c.is_alphabetic() || c == '_'),
        take_while(|c: char| c.is_alphanumeric() || c == '_'),
    ))
    .parse(i)
}

/// A decimal number as Go's text/scanner reads it: `12`, `1.5`, `.5`, `1.`,
/// `1e3`, `2.5E-3`.
fn number(i: &str) -> IResult<&str, &str> {
    let exponent = (one_of("eE"), opt(one_of("+-")), digit1);
    let with_int = (digit1, opt((tag("."), opt(digit1))), opt(exponent));
    let exponent2 = (one_of("eE"), opt(one_of("+-")), digit1);
    let frac_only = (tag("."), digit1, opt(exponent2));
    // Go's other literal forms: hex (with an optional binary exponent),
    // binary and octal. Only hex floats survive strconv.ParseFloat later.
    let hex = (
        tag("0"),
        one_of("xX"),
        take_while1(|c: char| c.is_ascii_hexdigit() || c == '_' || c == '.'),
        opt((one_of("pP"), opt(one_of("+-")), digit1)),
    );
    let bin_oct = (
        tag("0"),
        one_of("bBoO"),
        take_while1(|c: char| c.is_ascii_digit() || c == '_'),
    );
    alt((
        recognize(hex),
        recognize(bin_oct),
        recognize(with_int),
        recognize(frac_only),
    ))
    .parse(i)
}

fn lex_word(rest: &str) -> (Kind, usize) {
    let Ok((after, word)) = ident(rest) else {
        let c = rest.chars().next().unwrap_or(' ');
        return (Kind::Ident(c.to_string()), c.len_utf8().max(1));
    };
    let lower = word.to_ascii_lowercase();
    if let Some(f) = FUNCTIONS.iter().find(|f| **f == lower) {
        if is_function(after) {
            return (Kind::Func(f), word.len());
        }
        return (Kind::Ident(word.to_string()), word.len());
    }
    if let Some(k) = KEYWORDS.iter().find(|k| **k == lower) {
        return (Kind::Sym(k), word.len());
    }
    (Kind::Ident(word.to_string()), word.len())
}

/// Whether what follows a function name makes it a call: `(`, or
/// `by (`/`without (` (vector aggregations with the grouping first).
fn is_function(after: &str) -> bool {
    let t = after.trim_start();
    if t.starts_with('(') {
        return true;
    }
    let lower_prefix = |p: &str| t.get(..p.len()).is_some_and(|s| s.eq_ignore_ascii_case(p));
    for kw in ["by", "without"] {
        if lower_prefix(kw) {
            return t[kw.len()..].trim_start().starts_with('(');
        }
    }
    false
}

fn lex_number(rest: &str) -> (Kind, usize) {
    let Ok((after, text)) = number(rest) else {
        return (Kind::Ident(rest[..1].to_string()), 1);
    };
    let unit = unit_run(after, is_duration_rune);
    if !unit.is_empty() {
        let full = &rest[..text.len() + unit.len()];
        if let Ok(d) = parse_duration(full) {
            return (Kind::Duration(d), full.len());
        }
    }
    let unit = unit_run(after, is_bytes_rune);
    if !unit.is_empty() {
        let full = &rest[..text.len() + unit.len()];
        if let Ok(b) = parse_bytes(full) {
            return (Kind::Bytes(b), full.len());
        }
    }
    (Kind::Number(text.to_string()), text.len())
}

/// The run of digits, `.` and unit characters right after a number.
fn unit_run(s: &str, unit: fn(char) -> bool) -> &str {
    let end = s
        .find(|c: char| !(c.is_numeric() || c == '.' || unit(c)))
        .unwrap_or(s.len());
    &s[..end]
}

fn is_duration_rune(c: char) -> bool {
    matches!(c, 'n' | 'u' | 'µ' | 'm' | 's' | 'h' | 'd' | 'w' | 'y')
}

fn is_bytes_rune(c: char) -> bool {
    matches!(c, 'B' | 'i' | 'k' | 'K' | 'M' | 'G' | 'T' | 'P')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Kind> {
        lex(s).into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn durations_bytes_and_numbers() {
        assert_eq!(
            kinds("1m30s 250ms 20MB 1.5KiB 42B 3 1.5e3 -5m"),
            vec![
                Kind::Duration(90_000 * MS),
                Kind::Duration(250 * MS),
                Kind::Bytes(20_000_000),
                Kind::Bytes(1536),
                Kind::Bytes(42),
                Kind::Number("3".into()),
                Kind::Number("1.5e3".into()),
                Kind::Duration(-300_000 * MS),
                Kind::Eof
            ]
        );
        assert_eq!(
            kinds("1.5h"),
            vec![Kind::Duration(5_400_000 * MS), Kind::Eof]
        );
        assert_eq!(kinds("2us"), vec![Kind::Duration(2_000), Kind::Eof]);
        assert_eq!(kinds("0x1p3")[0], Kind::Number("0x1p3".into()));
        assert_eq!(kinds("0b01")[0], Kind::Number("0b01".into()));
        assert_eq!(
            kinds("34+-123"),
            vec![
                Kind::Number("34".into()),
                Kind::Sym("+"),
                Kind::Sym("-"),
                Kind::Number("123".into()),
                Kind::Eof
            ]
        );
        assert_eq!(kinds("-123ms")[0], Kind::Duration(-123 * MS));
        assert_eq!(kinds("1h0.0m0s")[0], Kind::Duration(3_600_000 * MS));
    }

    #[test]
    fn functions_need_parenthesis() {
        assert_eq!(kinds("rate (")[0], Kind::Func("rate"));
        assert_eq!(kinds("rate")[0], Kind::Ident("rate".into()));
        assert_eq!(kinds("SUM by (a) (")[0], Kind::Func("sum"));
        assert_eq!(kinds("sum by a")[0], Kind::Ident("sum".into()));
        assert_eq!(kinds("JSON")[0], Kind::Sym("json"));
    }

    #[test]
    fn ranges_strings_flags_comments() {
        assert_eq!(
            kinds("[5m] \"a\\n\" `b\\n` --strict # c\n|="),
            vec![
                Kind::Range(300_000 * MS),
                Kind::Str("a\n".into()),
                Kind::Str("b\\n".into()),
                Kind::Flag("--strict".into()),
                Kind::Sym("|="),
                Kind::Eof
            ]
        );
        assert_eq!(
            kinds("[1.5m]")[0],
            Kind::Error("unknown unit \".\" in duration \"1.5m\"".into())
        );
        assert_eq!(
            kinds("[m5]")[0],
            Kind::Error("not a valid duration string: \"m5\"".into())
        );
        assert_eq!(
            kinds("[5s1m]")[0],
            Kind::Error("not a valid duration string: \"5s1m\"".into())
        );
        assert_eq!(
            kinds("[5m")[0],
            Kind::Error("missing closing ']' in duration".into())
        );
    }

    #[test]
    fn duration_parsers() {
        assert_eq!(parse_prometheus_duration("1d2h"), Ok(26 * 3600 * 1000 * MS));
        assert!(parse_prometheus_duration("2h1d").is_err());
        assert_eq!(parse_go_duration("1h0m0.5s"), Ok(3_600_500 * MS));
        assert_eq!(parse_go_duration("1us500ns"), Ok(1_500));
        assert!(parse_go_duration("5").is_err());
        assert_eq!(parse_bytes("1.5KiB"), Ok(1536));
        assert_eq!(parse_bytes("5K"), Ok(5000));
    }
}
