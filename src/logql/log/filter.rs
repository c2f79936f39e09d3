//! Line filters: `|=`, `!=`, `|~`, `!~`, `|>`, `!>` and `ip("...")`, with
//! or-chains, plus the `<_>`/`<name>` pattern language shared with the
//! `pattern` parser. Filters never allocate per line.

use memchr::memmem;

use super::ip::IpMatcher;
use super::PipelineError;
use crate::logql::syntax::ast::{LineFilter, LineFilterOp, LineFilterValue};

/// One operand of a line filter.
#[derive(Debug)]
enum Operand {
    Literal(Box<memmem::Finder<'static>>),
    Regex(regex::bytes::Regex),
    Pattern(PatternExpr),
    Ip(IpMatcher),
}

impl Operand {
    #[inline]
    fn matches(&self, line: &[u8]) -> bool {
        match self {
            Operand::Literal(f) => f.needle().is_empty() || f.find(line).is_some(),
            Operand::Regex(r) => r.is_match(line),
            Operand::Pattern(p) => p.test(line),
            Operand::Ip(m) => m.matches_text(line),
        }
    }
}

/// A compiled line filter: keeps a line when any operand matches (or, when
/// negated, when none does).
#[derive(Debug)]
pub struct LineFilterStage {
    negate: bool,
    operands: Vec<Operand>,
}

impl LineFilterStage {
    pub fn new(f: &LineFilter) -> Result<LineFilterStage, PipelineError> {
        let negate = matches!(
            f.op,
            LineFilterOp::NotContains | LineFilterOp::NotRegex | LineFilterOp::NotPattern
        );
        let mut operands = Vec::with_capacity(f.values.len());
        for v in &f.values {
            operands.push(match (f.op, v) {
                (LineFilterOp::Contains | LineFilterOp::NotContains, LineFilterValue::Str(s)) => {
                    Operand::Literal(Box::new(memmem::Finder::new(s.as_bytes()).into_owned()))
                }
                (LineFilterOp::Contains | LineFilterOp::NotContains, LineFilterValue::Ip(p)) => {
                    Operand::Ip(IpMatcher::new(p)?)
                }
                (_, LineFilterValue::Ip(_)) => {
                    return Err(PipelineError("ip: invalid operation".into()));
                }
                (LineFilterOp::Regex | LineFilterOp::NotRegex, LineFilterValue::Str(s)) => {
                    Operand::Regex(
                        regex::bytes::Regex::new(s)
                            .map_err(|e| PipelineError(format!("invalid regex {s:?}: {e}")))?,
                    )
                }
                (LineFilterOp::Pattern | LineFilterOp::NotPattern, LineFilterValue::Str(s)) => {
                    Operand::Pattern(PatternExpr::parse_line_filter(s)?)
                }
            });
        }
        Ok(LineFilterStage { negate, operands })
    }

    /// True when the line passes.
    #[inline]
    pub fn matches(&self, line: &[u8]) -> bool {
        self.operands.iter().any(|o| o.matches(line)) != self.negate
    }

    /// Applies the filter to the lines still marked in `keep`. A single
    /// positive literal is searched once over the whole buffer.
    pub fn filter_block(&self, lines: &[u8], offsets: &[u32], keep: &mut [bool]) {
        let n = keep.len().min(offsets.len().saturating_sub(1));
        let line = |i: usize| -> &[u8] {
            let (s, e) = (offsets[i] as usize, offsets[i + 1] as usize);
            lines.get(s..e).unwrap_or(&[])
        };
        if let (false, [Operand::Literal(f)]) = (self.negate, self.operands.as_slice()) {
            if f.needle().is_empty() {
                return;
            }
            let nlen = f.needle().len();
            let mut hit = vec![false; n];
            let mut li = 0usize;
            let mut pos = 0usize;
            while let Some(p) = f.find(lines.get(pos..).unwrap_or(&[])) {
                let at = pos + p;
                // Advance to the line containing `at`.
                while li < n && offsets[li + 1] as usize <= at {
                    li += 1;
                }
                if li >= n {
                    break;
                }
                if at + nlen <= offsets[li + 1] as usize {
                    hit[li] = true;
                    // Skip the rest of this line.
                    pos = (offsets[li + 1] as usize).max(at + 1);
                    li += 1;
                } else {
                    pos = at + 1;
                }
            }
            for (k, h) in keep.iter_mut().zip(hit) {
                *k = *k && h;
            }
            return;
        }
        for (i, k) in keep.iter_mut().enumerate().take(n) {
            if *k {
                *k = self.matches(line(i));
            }
        }
    }
}

/// A node of a pattern: literal text or a capture (`None` for `<_>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    Lit(Vec<u8>),
    Cap(Option<String>),
}

/// A parsed pattern (`<ip> - <_> "<method> <uri>"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PatternExpr {
    pub(crate) nodes: Vec<Node>,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

impl PatternExpr {
    fn tokenize(s: &str) -> PatternExpr {
        let b = s.as_bytes();
        let mut nodes: Vec<Node> = Vec::new();
        let mut lit: Vec<u8> = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'<' && b.get(i + 1).is_some_and(|c| is_ident_start(*c)) {
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                if b.get(j) == Some(&b'>') {
                    if !lit.is_empty() {
                        nodes.push(Node::Lit(std::mem::take(&mut lit)));
                    }
                    let name = &s[i + 1..j];
                    nodes.push(Node::Cap((name != "_").then(|| name.to_string())));
                    i = j + 1;
                    continue;
                }
            }
            lit.push(b[i]);
            i += 1;
        }
        if !lit.is_empty() {
            nodes.push(Node::Lit(lit));
        }
        PatternExpr { nodes }
    }

    fn consecutive_captures(&self) -> Result<(), PipelineError> {
        for w in self.nodes.windows(2) {
            if let [Node::Cap(a), Node::Cap(b)] = w {
                let n = |c: &Option<String>| c.clone().unwrap_or_else(|| "_".into());
                return Err(PipelineError(format!(
                    "found consecutive capture '<{}><{}>': invalid expression",
                    n(a),
                    n(b)
                )));
            }
        }
        Ok(())
    }

    /// Parses the pattern of a `|>`/`!>` filter: only `<_>` captures.
    pub(crate) fn parse_line_filter(s: &str) -> Result<PatternExpr, PipelineError> {
        let e = Self::tokenize(s);
        e.consecutive_captures()?;
        if let Some(Node::Cap(Some(n))) = e.nodes.iter().find(|n| matches!(n, Node::Cap(Some(_)))) {
            return Err(PipelineError(format!(
                "named captures are not allowed: found '<{n}>'"
            )));
        }
        Ok(e)
    }

    /// Parses the pattern of a `pattern` parser stage.
    pub(crate) fn parse_parser(s: &str) -> Result<PatternExpr, PipelineError> {
        let e = Self::tokenize(s);
        if !e.nodes.iter().any(|n| matches!(n, Node::Cap(Some(_)))) {
            return Err(PipelineError("at least one capture is required".into()));
        }
        e.consecutive_captures()?;
        let names: Vec<&str> = e.names().collect();
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(PipelineError(format!(
                    "duplicate capture name ({n}): invalid expression"
                )));
            }
        }
        Ok(e)
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Cap(Some(s)) => Some(s.as_str()),
            _ => None,
        })
    }

    /// Line-filter semantics (Loki's `Matcher.Test`): literals appear in
    /// order, a capture between literals is never empty, and a trailing
    /// literal must end the line.
    pub(crate) fn test(&self, line: &[u8]) -> bool {
        if line.is_empty() || self.nodes.is_empty() {
            return line.is_empty() && self.nodes.is_empty();
        }
        let mut off = 0usize;
        for (i, n) in self.nodes.iter().enumerate() {
            let Node::Lit(lit) = n else { continue };
            let Some(j) = memmem::find(&line[off..], lit) else {
                return false;
            };
            // As Loki: the first literal may be anywhere; a capture before a
            // later literal must not be empty.
            if i != 0 && j == 0 {
                return false;
            }
            off += j + lit.len();
        }
        let ends_with_capture = matches!(self.nodes.last(), Some(Node::Cap(_)));
        ends_with_capture == (off != line.len())
    }

    /// Parser semantics: calls `f(name, value)` for each named capture found.
    pub(crate) fn captures<'l>(&self, mut line: &'l [u8], mut f: impl FnMut(&str, &'l [u8])) {
        if line.is_empty() {
            return;
        }
        let mut nodes = self.nodes.as_slice();
        if let Some(Node::Lit(l)) = nodes.first() {
            if !line.starts_with(l) {
                return;
            }
            line = &line[l.len()..];
            nodes = &nodes[1..];
        }
        while let Some(Node::Cap(name)) = nodes.first() {
            let Some(Node::Lit(l)) = nodes.get(1) else {
                if let Some(n) = name {
                    f(n, line);
                }
                return;
            };
            nodes = &nodes[2..];
            match memmem::find(line, l) {
                None => {
                    if let Some(n) = name {
                        f(n, line);
                    }
                    return;
                }
                Some(i) => {
                    if let Some(n) = name {
                        f(n, &line[..i]);
                    }
                    line = &line[i + l.len()..];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lf(op: LineFilterOp, vals: &[&str]) -> LineFilterStage {
        LineFilterStage::new(&LineFilter {
            op,
            values: vals
                .iter()
                .map(|v| LineFilterValue::Str(v.to_string()))
                .collect(),
        })
        .unwrap()
    }

    const ERR: &str = r#"{"timestamp": "2024-05-01T10:00:00Z", "level": "error", "event": "order_processing_failed", "order_id": 4411, "duration_ms": 250}"#;
    const INFO: &str = r#"{"timestamp": "2024-05-01T10:00:01Z", "level": "info", "event": "order_created", "order_id": 4412}"#;

    #[test]
    fn contains_and_not_contains() {
        let f = lf(LineFilterOp::Contains, &["order_processing_failed"]);
        assert!(f.matches(ERR.as_bytes()));
        assert!(!f.matches(INFO.as_bytes()));
        let f = lf(LineFilterOp::NotContains, &["order_processing_failed"]);
        assert!(!f.matches(ERR.as_bytes()));
        assert!(f.matches(INFO.as_bytes()));
        assert!(lf(LineFilterOp::Contains, &[""]).matches(b"anything"));
        assert!(!lf(LineFilterOp::NotContains, &[""]).matches(b"anything"));
    }

    #[test]
    fn or_chains() {
        let f = lf(LineFilterOp::Contains, &["\"error\"", "order_created"]);
        assert!(f.matches(ERR.as_bytes()) && f.matches(INFO.as_bytes()));
        assert!(!f.matches(b"level=warn"));
        // `!= a or b` keeps lines matching none.
        let f = lf(LineFilterOp::NotContains, &["\"error\"", "order_created"]);
        assert!(!f.matches(ERR.as_bytes()) && !f.matches(INFO.as_bytes()));
        assert!(f.matches(b"level=warn"));
    }

    #[test]
    fn regex_unanchored_and_case_insensitive() {
        let f = lf(LineFilterOp::Regex, &["order_[a-z]+_failed"]);
        assert!(f.matches(ERR.as_bytes()));
        assert!(!f.matches(INFO.as_bytes()));
        let f = lf(LineFilterOp::Regex, &["(?i)ERROR"]);
        assert!(f.matches(ERR.as_bytes()));
        let f = lf(LineFilterOp::NotRegex, &["duration_ms\":\\s*\\d{3}"]);
        assert!(!f.matches(ERR.as_bytes()));
        assert!(f.matches(INFO.as_bytes()));
        assert!(LineFilterStage::new(&LineFilter {
            op: LineFilterOp::Regex,
            values: vec![LineFilterValue::Str("(".into())]
        })
        .is_err());
    }

    #[test]
    fn pattern_filters() {
        // Apache access-style line.
        let line = b"10.0.0.1 - - [01/May/2024] \"GET /api/orders HTTP/1.1\" 500 231";
        assert!(lf(LineFilterOp::Pattern, &["<_> \"GET <_>\" 500 <_>"]).matches(line));
        assert!(!lf(LineFilterOp::Pattern, &["<_> \"POST <_>\" 500 <_>"]).matches(line));
        // As Loki's `Test`, a leading literal may occur anywhere.
        assert!(lf(LineFilterOp::Pattern, &["GET <_>"]).matches(line));
        // A capture between two literals must not be empty.
        assert!(!lf(LineFilterOp::Pattern, &["- <_>- <_>"]).matches(line));
        // A literal at the end must end the line.
        assert!(lf(LineFilterOp::Pattern, &["<_> 231"]).matches(line));
        assert!(!lf(LineFilterOp::Pattern, &["<_> 500"]).matches(line));
        assert!(lf(LineFilterOp::NotPattern, &["<_> 404 <_>"]).matches(line));
        let named = LineFilterStage::new(&LineFilter {
            op: LineFilterOp::Pattern,
            values: vec![LineFilterValue::Str("<ip> x".into())],
        });
        assert!(named.is_err());
    }

    #[test]
    fn ip_filter_and_or_chain() {
        let f = LineFilterStage::new(&LineFilter {
            op: LineFilterOp::Contains,
            values: vec![
                LineFilterValue::Ip("192.168.0.0/16".into()),
                LineFilterValue::Str("::1".into()),
            ],
        })
        .unwrap();
        assert!(f.matches(b"connect from 192.168.3.4"));
        assert!(f.matches(b"connect from ::1"));
        assert!(!f.matches(b"connect from 10.1.1.1"));
        let bad = LineFilterStage::new(&LineFilter {
            op: LineFilterOp::Regex,
            values: vec![LineFilterValue::Ip("1.1.1.1".into())],
        });
        assert_eq!(bad.unwrap_err().0, "ip: invalid operation");
    }

    #[test]
    fn pattern_captures() {
        let e =
            PatternExpr::parse_parser("<ip> - <_> [<ts>] \"<method> <uri> <_>\" <status> <size>")
                .unwrap();
        let line = b"10.0.0.1 - - [01/May/2024] \"GET /api HTTP/1.1\" 500 231";
        let mut got = Vec::new();
        e.captures(line, |n, v| {
            got.push(format!("{n}={}", String::from_utf8_lossy(v)))
        });
        assert_eq!(
            got,
            [
                "ip=10.0.0.1",
                "ts=01/May/2024",
                "method=GET",
                "uri=/api",
                "status=500",
                "size=231"
            ]
        );
        assert!(PatternExpr::parse_parser("<_> foo").is_err());
        assert!(PatternExpr::parse_parser("<a><b>").is_err());
        assert!(PatternExpr::parse_parser("<a> <a>").is_err());
    }

    fn block(lines: &[&str]) -> (Vec<u8>, Vec<u32>) {
        let mut buf = Vec::new();
        let mut off = vec![0u32];
        for l in lines {
            buf.extend_from_slice(l.as_bytes());
            off.push(buf.len() as u32);
        }
        (buf, off)
    }

    #[test]
    fn block_literal_pass_matches_per_line() {
        // "ab" spanning two lines must not count.
        let (buf, off) = block(&["xa", "by", "ab", "", "zzab", "a"]);
        let f = lf(LineFilterOp::Contains, &["ab"]);
        let mut keep = vec![true; 6];
        f.filter_block(&buf, &off, &mut keep);
        assert_eq!(keep, [false, false, true, false, true, false]);
        let f = lf(LineFilterOp::NotContains, &["ab"]);
        let mut keep = vec![true; 6];
        f.filter_block(&buf, &off, &mut keep);
        assert_eq!(keep, [true, true, false, true, false, true]);
    }

    #[test]
    fn block_agrees_with_per_line_on_loghub() {
        let Ok(text) = std::fs::read_to_string("/work/shared/corpus/loghub/OpenSSH_2k.log") else {
            return;
        };
        let lines: Vec<&str> = text.lines().collect();
        let (buf, off) = block(&lines);
        let f = lf(LineFilterOp::Contains, &["Failed password"]);
        let mut keep = Vec::new();
        keep.resize(lines.len(), true);
        f.filter_block(&buf, &off, &mut keep);
        let expect: Vec<bool> = lines
            .iter()
            .map(|l| l.contains("Failed password"))
            .collect();
        assert_eq!(keep, expect);
        assert!(keep.iter().any(|k| *k));
    }
}
