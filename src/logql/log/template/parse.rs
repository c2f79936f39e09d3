//! Lexer and parser for Go `text/template` source: text, `{{ }}` actions
//! with `{{-`/`-}}` trim markers, comments, pipelines, variables, control
//! structures (`if`, `range`, `with`, `define`, `template`, `block`,
//! `break`, `continue`). Errors read like Go's
//! (`template: line:1: unexpected "}" in operand`).

use std::collections::HashMap;
use std::sync::Arc;

use super::funcs::Func;
use super::printf::write_quoted;

/// Nesting deeper than this (parentheses, blocks) is refused.
const MAX_PARSE_DEPTH: usize = 50;

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    Range(Branch),
    With(Branch),
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break,
    Continue,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pipe {
    pub pos: usize,
    /// Declared or assigned variables (`$x :=`, `$i, $v :=`, `$x =`).
    pub decl: Vec<String>,
    pub assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
pub struct Cmd {
    pub pos: usize,
    pub args: Vec<Arg>,
    /// A regex argument given as a constant, compiled once at parse time.
    pub regex: Option<Arc<regex::Regex>>,
}

impl PartialEq for Cmd {
    fn eq(&self, o: &Cmd) -> bool {
        self.pos == o.pos && self.args == o.args
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Number {
    pub int: Option<i64>,
    pub float: f64,
    /// Written as a float (`1.5`, `1e3`): an untyped float constant.
    pub is_float: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Dot,
    Nil,
    Bool(bool),
    Number(Number),
    Str(String),
    /// `.a.b`: fields of dot.
    Field(Vec<String>),
    /// `$x.a.b` (`$` is the data).
    Var(String, Vec<String>),
    Func(Func),
    /// `(pipeline).a.b`.
    Pipe(Box<Pipe>, Vec<String>),
}

/// A parsed template: the main body and the `define`d ones.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tree {
    pub root: Vec<Node>,
    pub defines: HashMap<String, Vec<Node>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Text(String),
    LeftDelim,
    RightDelim,
    Space,
    Ident(String),
    Keyword(&'static str),
    Field(String),
    Variable(String),
    Str(String),
    Number(String),
    Char(char),
    CharConst(i64),
    LeftParen,
    RightParen,
    Pipe,
    Declare,
    Assign,
    Bool(bool),
    Dot,
    Nil,
    Eof,
    /// A lexing error, raised when the parser reaches it (Go lexes lazily,
    /// so earlier parse errors win).
    Error(String),
}

const KEYWORDS: [&str; 10] = [
    "block", "break", "continue", "define", "else", "end", "if", "range", "template", "with",
];

struct Lexer<'s> {
    src: &'s str,
    name: &'s str,
    pos: usize,
    toks: Vec<(Tok, usize)>,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// `line:N` prefix information for a byte offset.
pub fn line_of(src: &str, pos: usize) -> usize {
    1 + src.as_bytes()[..pos.min(src.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

impl<'s> Lexer<'s> {
    fn err(&self, pos: usize, msg: impl std::fmt::Display) -> String {
        format!(
            "template: {}:{}: {}",
            self.name,
            line_of(self.src, pos),
            msg
        )
    }

    fn run(mut self) -> Result<Vec<(Tok, usize)>, String> {
        let mut trim_next = false;
        loop {
            let rest = &self.src[self.pos..];
            let (text_end, has_action) = match rest.find("{{") {
                Some(i) => (i, true),
                None => (rest.len(), false),
            };
            let mut text = &rest[..text_end];
            let after = &rest[text_end..];
            let trim_left = has_action
                && after.len() > 3
                && after.as_bytes()[2] == b'-'
                && is_space(after.as_bytes()[3]);
            if trim_next {
                text = text.trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8));
            }
            if trim_left {
                text = text.trim_end_matches(|c: char| c.is_ascii() && is_space(c as u8));
            }
            if !text.is_empty() {
                self.toks.push((Tok::Text(text.to_string()), self.pos));
            }
            if !has_action {
                self.toks.push((Tok::Eof, self.src.len()));
                return Ok(self.toks);
            }
            self.pos += text_end + 2;
            if trim_left {
                self.pos += 2;
            }
            match self.lex_action() {
                Ok(t) => trim_next = t,
                Err(e) => {
                    self.toks.push((Tok::Error(e), self.pos));
                    return Ok(self.toks);
                }
            }
        }
    }

    /// Checks for a right delimiter at the current position: returns
    /// (length, trims following text).
    fn right_delim(&self) -> Option<(usize, bool)> {
        let r = &self.src.as_bytes()[self.pos..];
        if r.starts_with(b"}}") {
            return Some((2, false));
        }
        if r.len() >= 4 && is_space(r[0]) && r[1] == b'-' && r[2] == b'}' && r[3] == b'}' {
            return Some((4, true));
        }
        None
    }

    /// Lexes one action after `{{`; returns whether it ends with `-}}`.
    fn lex_action(&mut self) -> Result<bool, String> {
        let start = self.pos;
        // Comments.
        let r = &self.src[self.pos..];
        if r.starts_with("/*") {
            let Some(end) = r.find("*/") else {
                return Err(self.err(start, "unclosed comment"));
            };
            self.pos += end + 2;
            return match self.right_delim() {
                Some((n, trim)) => {
                    self.pos += n;
                    Ok(trim)
                }
                None => Err(self.err(start, "comment ends before closing delimiter")),
            };
        }
        self.toks.push((Tok::LeftDelim, start));
        let mut paren_depth: usize = 0;
        loop {
            if let Some((n, trim)) = self.right_delim() {
                // An open parenthesis is reported by the parser.
                self.toks.push((Tok::RightDelim, self.pos));
                self.pos += n;
                return Ok(trim);
            }
            let p = self.pos;
            let rest = &self.src[p..];
            let Some(c) = rest.chars().next() else {
                return Err(self.err(start, "unclosed action"));
            };
            match c {
                c if c.is_ascii() && is_space(c as u8) => {
                    let n = rest.bytes().take_while(|&b| is_space(b)).count();
                    // A space followed by "-}}" is the right trim marker.
                    self.pos += n;
                    if self.src[self.pos..].starts_with("-}}") && n > 0 {
                        self.pos -= 1;
                        if let Some((m, trim)) = self.right_delim() {
                            self.toks.push((Tok::RightDelim, self.pos));
                            self.pos += m;
                            return Ok(trim);
                        }
                        self.pos += 1;
                    }
                    self.toks.push((Tok::Space, p));
                }
                '|' => {
                    self.pos += 1;
                    self.toks.push((Tok::Pipe, p));
                }
                '(' => {
                    self.pos += 1;
                    paren_depth += 1;
                    self.toks.push((Tok::LeftParen, p));
                }
                ')' => {
                    self.pos += 1;
                    if paren_depth == 0 {
                        return Err(self.err(p, "unexpected right paren"));
                    }
                    paren_depth -= 1;
                    self.toks.push((Tok::RightParen, p));
                }
                ':' => {
                    if !rest.starts_with(":=") {
                        return Err(self.err(p, "expected :="));
                    }
                    self.pos += 2;
                    self.toks.push((Tok::Declare, p));
                }
                '=' => {
                    self.pos += 1;
                    self.toks.push((Tok::Assign, p));
                }
                '"' => {
                    let s = self.lex_quoted(p)?;
                    self.toks.push((Tok::Str(s), p));
                }
                '`' => {
                    let Some(end) = rest[1..].find('`') else {
                        return Err(self.err(p, "unterminated raw quoted string"));
                    };
                    self.toks.push((Tok::Str(rest[1..1 + end].to_string()), p));
                    self.pos += end + 2;
                }
                '\'' => {
                    let v = self.lex_char(p)?;
                    self.toks.push((Tok::CharConst(v), p));
                }
                '$' => {
                    let n = 1 + rest[1..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .map(char::len_utf8)
                        .sum::<usize>();
                    self.toks.push((Tok::Variable(rest[..n].to_string()), p));
                    self.pos += n;
                }
                '.' => {
                    let second = rest[1..].chars().next();
                    if second.is_some_and(|c| c.is_ascii_digit()) {
                        self.lex_number(p)?;
                    } else {
                        let n = rest[1..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .map(char::len_utf8)
                            .sum::<usize>();
                        if n == 0 {
                            self.toks.push((Tok::Dot, p));
                            self.pos += 1;
                        } else {
                            self.toks.push((Tok::Field(rest[1..1 + n].to_string()), p));
                            self.pos += 1 + n;
                        }
                    }
                }
                '+' | '-' | '0'..='9' => self.lex_number(p)?,
                c if c.is_alphabetic() || c == '_' => {
                    let n = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .map(char::len_utf8)
                        .sum::<usize>();
                    let word = &rest[..n];
                    let tok = match word {
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        "nil" => Tok::Nil,
                        w => match KEYWORDS.iter().find(|k| **k == w) {
                            Some(k) => Tok::Keyword(k),
                            None => Tok::Ident(w.to_string()),
                        },
                    };
                    self.toks.push((tok, p));
                    self.pos += n;
                }
                c if c.is_ascii() && !c.is_ascii_control() => {
                    self.toks.push((Tok::Char(c), p));
                    self.pos += 1;
                }
                c => {
                    let mut q = String::new();
                    write_quoted(&c.to_string(), &mut q);
                    return Err(self.err(
                        p,
                        format!("unrecognized character in action: U+{:04X} {q}", c as u32),
                    ));
                }
            }
        }
    }

    fn lex_number(&mut self, p: usize) -> Result<(), String> {
        let rest = &self.src[p..];
        let n = rest
            .char_indices()
            .take_while(|(i, c)| {
                c.is_ascii_alphanumeric()
                    || *c == '.'
                    || *c == '_'
                    || ((*c == '+' || *c == '-')
                        && (*i == 0 || matches!(rest.as_bytes()[i - 1], b'e' | b'E' | b'p' | b'P')))
            })
            .count();
        let text = &rest[..n];
        self.pos += n;
        if parse_number(text).is_none() {
            let mut q = String::new();
            write_quoted(text, &mut q);
            return Err(self.err(p, format!("bad number syntax: {q}")));
        }
        self.toks.push((Tok::Number(text.to_string()), p));
        Ok(())
    }

    fn lex_quoted(&mut self, p: usize) -> Result<String, String> {
        let rest = &self.src[p + 1..];
        let mut out = String::new();
        let mut chars = rest.char_indices();
        loop {
            let Some((i, c)) = chars.next() else {
                return Err(self.err(p, "unterminated quoted string"));
            };
            match c {
                '"' => {
                    self.pos = p + 1 + i + 1;
                    return Ok(out);
                }
                '\n' => return Err(self.err(p, "unterminated quoted string")),
                '\\' => {
                    let Some((_, e)) = chars.next() else {
                        return Err(self.err(p, "unterminated quoted string"));
                    };
                    let simple = match e {
                        'n' => Some('\n'),
                        't' => Some('\t'),
                        'r' => Some('\r'),
                        'a' => Some('\u{7}'),
                        'b' => Some('\u{8}'),
                        'f' => Some('\u{c}'),
                        'v' => Some('\u{b}'),
                        '\\' => Some('\\'),
                        '"' => Some('"'),
                        _ => None,
                    };
                    if let Some(c) = simple {
                        out.push(c);
                        continue;
                    }
                    let digits = match e {
                        'x' => 2,
                        'u' => 4,
                        'U' => 8,
                        '0'..='7' => 2,
                        _ => return Err(self.err(p, "invalid syntax")),
                    };
                    let mut hex = String::new();
                    if e.is_ascii_digit() {
                        hex.push(e);
                    }
                    for _ in 0..digits {
                        match chars.next() {
                            Some((_, d)) => hex.push(d),
                            None => return Err(self.err(p, "unterminated quoted string")),
                        }
                    }
                    let v = if e.is_ascii_digit() {
                        u32::from_str_radix(&hex, 8)
                    } else {
                        u32::from_str_radix(&hex, 16)
                    };
                    let v = v.map_err(|_| self.err(p, "invalid syntax"))?;
                    if e == 'x' || e.is_ascii_digit() {
                        // Byte escapes: only ASCII keeps the string valid UTF-8.
                        out.push(char::from_u32(v).filter(|_| v < 0x80).unwrap_or('\u{FFFD}'));
                    } else {
                        out.push(char::from_u32(v).ok_or_else(|| self.err(p, "invalid syntax"))?);
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn lex_char(&mut self, p: usize) -> Result<i64, String> {
        let rest = &self.src[p + 1..];
        let Some(end) = rest.find('\'') else {
            return Err(self.err(p, "unterminated character constant"));
        };
        let mut body = &rest[..end];
        let mut len = end;
        if body == "\\" {
            // '\''
            if rest[end + 1..].starts_with('\'') {
                body = "\\'";
                len = end + 1;
            }
        }
        self.pos = p + 1 + len + 1;
        let v = match body {
            "\\'" => '\'' as i64,
            "\\n" => '\n' as i64,
            "\\t" => '\t' as i64,
            "\\r" => '\r' as i64,
            "\\\\" => '\\' as i64,
            "\\0" => 0,
            b => {
                let mut cs = b.chars();
                match (cs.next(), cs.next()) {
                    (Some(c), None) => c as i64,
                    _ => return Err(self.err(p, format!("malformed character constant: '{b}'"))),
                }
            }
        };
        Ok(v)
    }
}

/// Parses a Go number literal: decimal, hex, octal, binary, floats,
/// underscores.
pub fn parse_number(text: &str) -> Option<Number> {
    let (neg, t) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let clean: String = t.chars().filter(|c| *c != '_').collect();
    let lower = clean.to_ascii_lowercase();
    let radix_int = |s: &str, r: u32| i64::from_str_radix(s, r).ok();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        radix_int(h, 16)
    } else if let Some(b) = lower.strip_prefix("0b") {
        radix_int(b, 2)
    } else if let Some(o) = lower.strip_prefix("0o") {
        radix_int(o, 8)
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|b| b.is_ascii_digit())
    {
        radix_int(&lower[1..], 8)
    } else if lower.bytes().all(|b| b.is_ascii_digit()) && !lower.is_empty() {
        lower.parse::<i64>().ok()
    } else {
        None
    };
    if neg && lower == "9223372036854775808" {
        return Some(Number {
            int: Some(i64::MIN),
            float: i64::MIN as f64,
            is_float: false,
        });
    }
    let is_hex = lower.starts_with("0x");
    let is_float_text = !is_hex && lower.contains(['.', 'e']);
    let float = if let Some(i) = int {
        i as f64
    } else if is_float_text
        && lower
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.e".contains(&b))
    {
        lower.parse::<f64>().ok()?
    } else {
        return None;
    };
    let (int, float) = if neg {
        (int.map(|i| -i), -float)
    } else {
        (int, float)
    };
    let int =
        int.or_else(|| (float.fract() == 0.0 && float.abs() < 9.2e18).then_some(float as i64));
    Some(Number {
        int,
        float,
        is_float: is_float_text,
    })
}

/// Where a list ended.
#[derive(PartialEq)]
enum End {
    Eof,
    Close,
    Else,
}

struct Parser<'s> {
    src: &'s str,
    name: &'s str,
    toks: Vec<(Tok, usize)>,
    i: usize,
    /// Declared variable names, innermost last.
    vars: Vec<String>,
    range_depth: usize,
    depth: usize,
    defines: HashMap<String, Vec<Node>>,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Text(s) => s.clone(),
        Tok::LeftDelim => "{{".into(),
        Tok::RightDelim => "}}".into(),
        Tok::Space => " ".into(),
        Tok::Field(s) => format!(".{s}"),
        Tok::Ident(s) | Tok::Variable(s) | Tok::Number(s) => s.clone(),
        Tok::Keyword(k) => format!("<{k}>"),
        Tok::Str(s) => {
            let mut q = String::new();
            write_quoted(s, &mut q);
            q
        }
        Tok::Char(c) => format!("{c}"),
        Tok::CharConst(c) => format!("{c}"),
        Tok::LeftParen => "(".into(),
        Tok::RightParen => ")".into(),
        Tok::Pipe => "|".into(),
        Tok::Declare => ":=".into(),
        Tok::Assign => "=".into(),
        Tok::Bool(b) => b.to_string(),
        Tok::Dot => ".".into(),
        Tok::Nil => "nil".into(),
        Tok::Eof => "EOF".into(),
        Tok::Error(e) => e.clone(),
    }
}

impl<'s> Parser<'s> {
    fn err(&self, pos: usize, msg: impl std::fmt::Display) -> String {
        format!(
            "template: {}:{}: {}",
            self.name,
            line_of(self.src, pos),
            msg
        )
    }

    fn peek(&self) -> &Tok {
        self.toks.get(self.i).map_or(&Tok::Eof, |t| &t.0)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.i).map_or(self.src.len(), |t| t.1)
    }

    fn next(&mut self) -> (Tok, usize) {
        let t = self
            .toks
            .get(self.i)
            .cloned()
            .unwrap_or((Tok::Eof, self.src.len()));
        if self.i < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn next_non_space(&mut self) -> (Tok, usize) {
        loop {
            let t = self.next();
            if t.0 != Tok::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> &Tok {
        while *self.peek() == Tok::Space {
            self.i += 1;
        }
        self.peek()
    }

    fn unexpected(&self, t: &Tok, pos: usize, context: &str) -> String {
        if let Tok::Error(e) = t {
            return e.clone();
        }
        // Go's item.String(): keywords as <if>, EOF bare, everything else
        // quoted, long values cut to 10 characters.
        let d = match t {
            Tok::Eof | Tok::Keyword(_) => describe(t),
            _ => {
                let raw = describe(t);
                let mut q = String::new();
                if raw.chars().count() > 10 {
                    let cut: String = raw.chars().take(10).collect();
                    write_quoted(&cut, &mut q);
                    q.push_str("...");
                } else {
                    write_quoted(&raw, &mut q);
                }
                q
            }
        };
        self.err(pos, format!("unexpected {d} in {context}"))
    }

    fn enter(&mut self, pos: usize) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_PARSE_DEPTH {
            return Err(self.err(pos, "template nested too deeply"));
        }
        Ok(())
    }

    /// Parses nodes until `{{end}}`, `{{else}}` or EOF.
    fn list(&mut self) -> Result<(Vec<Node>, End), String> {
        let mut nodes = Vec::new();
        loop {
            let (t, pos) = self.next();
            match t {
                Tok::Eof => return Ok((nodes, End::Eof)),
                Tok::Text(s) => nodes.push(Node::Text(s)),
                Tok::LeftDelim => {
                    let save = self.i;
                    match self.peek_non_space().clone() {
                        Tok::Keyword("end") => {
                            self.next_non_space();
                            self.expect_right_delim("end")?;
                            return Ok((nodes, End::Close));
                        }
                        Tok::Keyword("else") => {
                            self.next_non_space();
                            return Ok((nodes, End::Else));
                        }
                        _ => {
                            self.i = save;
                            if let Some(n) = self.action(pos)? {
                                nodes.push(n);
                            }
                        }
                    }
                }
                t => return Err(self.unexpected(&t, pos, "input")),
            }
        }
    }

    fn expect_right_delim(&mut self, context: &str) -> Result<(), String> {
        let (t, pos) = self.next_non_space();
        if t != Tok::RightDelim {
            return Err(self.unexpected(&t, pos, context));
        }
        Ok(())
    }

    /// After `{{`: a control structure or a pipeline.
    fn action(&mut self, pos: usize) -> Result<Option<Node>, String> {
        match self.peek_non_space().clone() {
            Tok::Keyword("if") => {
                self.next_non_space();
                Ok(Some(Node::If(self.branch("if", pos)?)))
            }
            Tok::Keyword("with") => {
                self.next_non_space();
                Ok(Some(Node::With(self.branch("with", pos)?)))
            }
            Tok::Keyword("range") => {
                self.next_non_space();
                self.range_depth += 1;
                let b = self.branch("range", pos);
                self.range_depth -= 1;
                Ok(Some(Node::Range(b?)))
            }
            Tok::Keyword(k @ ("break" | "continue")) => {
                self.next_non_space();
                if self.range_depth == 0 {
                    return Err(self.err(pos, format!("{{{{{k}}}}} outside {{{{range}}}}")));
                }
                self.expect_right_delim(k)?;
                Ok(Some(if k == "break" {
                    Node::Break
                } else {
                    Node::Continue
                }))
            }
            Tok::Keyword("template") => {
                self.next_non_space();
                let name = self.template_name("template")?;
                let pipe = if *self.peek_non_space() == Tok::RightDelim {
                    self.next();
                    None
                } else {
                    Some(self.pipeline("template", false)?)
                };
                Ok(Some(Node::Template { pos, name, pipe }))
            }
            Tok::Keyword("define") => {
                self.next_non_space();
                if self.depth > 0 {
                    return Err(self.err(pos, "unexpected <define> in command"));
                }
                let name = self.template_name("define clause")?;
                self.expect_right_delim("define clause")?;
                let saved = std::mem::take(&mut self.vars);
                self.vars.push("$".into());
                let (body, end) = self.list()?;
                self.vars = saved;
                if end != End::Close {
                    return Err(self.err(pos, "unexpected EOF"));
                }
                self.defines.insert(name, body);
                Ok(None)
            }
            Tok::Keyword("block") => {
                self.next_non_space();
                let name = self.template_name("block clause")?;
                let pipe = self.pipeline("block", false)?;
                let saved = std::mem::take(&mut self.vars);
                self.vars.push("$".into());
                let (body, end) = self.list()?;
                self.vars = saved;
                if end != End::Close {
                    return Err(self.err(pos, "unexpected EOF"));
                }
                self.defines.insert(name.clone(), body);
                Ok(Some(Node::Template {
                    pos,
                    name,
                    pipe: Some(pipe),
                }))
            }
            Tok::Keyword(_) => {
                let (t, p) = self.next_non_space();
                Err(self.unexpected(&t, p, "command"))
            }
            _ => {
                let p = self.pipeline("command", false)?;
                Ok(Some(Node::Action(p)))
            }
        }
    }

    fn template_name(&mut self, context: &str) -> Result<String, String> {
        let (t, pos) = self.next_non_space();
        match t {
            Tok::Str(s) => Ok(s),
            t => Err(self.unexpected(&t, pos, context)),
        }
    }

    /// `if`/`with`/`range` after the keyword, through `{{end}}`.
    fn branch(&mut self, context: &str, pos: usize) -> Result<Branch, String> {
        self.enter(pos)?;
        let mark = self.vars.len();
        let pipe = self.pipeline(context, context == "range")?;
        let (list, end) = self.list()?;
        let else_list = match end {
            End::Eof => return Err(self.err(self.src.len(), "unexpected EOF")),
            End::Close => None,
            End::Else => {
                // `{{else if ...}}` / `{{else with ...}}` chain into a nested
                // branch that shares our `{{end}}`.
                let kw = self.peek_non_space().clone();
                match kw {
                    Tok::Keyword(k @ ("if" | "with")) if k == context || context != "range" => {
                        let p = self.pos();
                        self.next_non_space();
                        self.vars.truncate(mark);
                        let inner = self.branch(k, p)?;
                        Some(vec![if k == "if" {
                            Node::If(inner)
                        } else {
                            Node::With(inner)
                        }])
                    }
                    _ => {
                        self.expect_right_delim("else")?;
                        self.vars.truncate(mark);
                        let (l, end) = self.list()?;
                        match end {
                            End::Close => Some(l),
                            End::Else => return Err(self.err(self.pos(), "unexpected {{else}}")),
                            End::Eof => return Err(self.err(self.src.len(), "unexpected EOF")),
                        }
                    }
                }
            }
        };
        self.vars.truncate(mark);
        self.depth -= 1;
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    /// A pipeline up to `}}` (or `)` when `context` is "parenthesized pipeline").
    fn pipeline(&mut self, context: &str, allow_two: bool) -> Result<Pipe, String> {
        let pos = self.pos();
        let mut decl = Vec::new();
        let mut assign = false;
        // Declarations: `$x :=`, `$x =`, `$i, $v :=`.
        let save = self.i;
        if let Tok::Variable(v) = self.peek_non_space().clone() {
            self.next_non_space();
            match self.peek_non_space().clone() {
                Tok::Declare | Tok::Assign => {
                    let (t, p) = self.next_non_space();
                    assign = t == Tok::Assign;
                    if assign && !self.vars.contains(&v) {
                        return Err(self.err(p, format!("undefined variable \"{v}\"")));
                    }
                    decl.push(v);
                }
                Tok::Char(',') if allow_two => {
                    self.next_non_space();
                    let (t2, p2) = self.next_non_space();
                    let Tok::Variable(v2) = t2 else {
                        return Err(self.err(p2, "range can only initialize variables"));
                    };
                    let (t3, p3) = self.next_non_space();
                    match t3 {
                        Tok::Declare => {}
                        Tok::Assign => assign = true,
                        _ => return Err(self.unexpected(&t3, p3, "range")),
                    }
                    decl.push(v);
                    decl.push(v2);
                }
                _ => self.i = save,
            }
        }
        let end_tok = if context == "parenthesized pipeline" {
            Tok::RightParen
        } else {
            Tok::RightDelim
        };
        let mut cmds = Vec::new();
        loop {
            let t = self.peek_non_space().clone();
            if t == end_tok {
                let p = self.pos();
                self.next();
                if cmds.is_empty() {
                    return Err(self.err(p, format!("missing value for {context}")));
                }
                break;
            }
            match t {
                Tok::Eof | Tok::RightDelim | Tok::RightParen | Tok::Error(_) => {
                    let (t, p) = self.next();
                    if context == "parenthesized pipeline" && t == Tok::RightDelim {
                        return Err(self.err(p, "unclosed left paren"));
                    }
                    return Err(self.unexpected(&t, p, context));
                }
                _ => {}
            }
            let cmd = self.command()?;
            if !cmds.is_empty()
                && !matches!(
                    cmd.args.first(),
                    Some(Arg::Func(_) | Arg::Field(_) | Arg::Var(..) | Arg::Pipe(..))
                )
            {
                // Go: "non executable command in pipeline stage N".
                return Err(self.err(
                    cmd.pos,
                    format!(
                        "non executable command in pipeline stage {}",
                        cmds.len() + 1
                    ),
                ));
            }
            cmds.push(cmd);
            if *self.peek_non_space() == Tok::Pipe {
                self.next_non_space();
            }
        }
        if !assign {
            for d in &decl {
                self.vars.push(d.clone());
            }
        }
        Ok(Pipe {
            pos,
            decl,
            assign,
            cmds,
        })
    }

    fn command(&mut self) -> Result<Cmd, String> {
        let pos = self.pos();
        let mut args = Vec::new();
        loop {
            self.peek_non_space();
            let (t, p) = (self.peek().clone(), self.pos());
            match t {
                Tok::RightDelim | Tok::RightParen => break,
                Tok::Pipe => {
                    if args.is_empty() {
                        return Err(self.err(p, "missing command"));
                    }
                    break;
                }
                _ => {}
            }
            let arg = self.operand()?;
            args.push(arg);
            // After an operand: a space, `|`, `}}` or `)`.
            match self.peek().clone() {
                Tok::Space | Tok::RightDelim | Tok::RightParen | Tok::Pipe => {}
                t => {
                    let p = self.pos();
                    return Err(self.unexpected(&t, p, "operand"));
                }
            }
        }
        if args.is_empty() {
            return Err(self.err(pos, "missing value for command"));
        }
        let regex = match (args.first(), args.get(1)) {
            (Some(Arg::Func(f)), Some(Arg::Str(re))) if f.regex_first() => {
                regex::Regex::new(re).ok().map(Arc::new)
            }
            _ => None,
        };
        Ok(Cmd { pos, args, regex })
    }

    fn fields(&mut self) -> Vec<String> {
        let mut f = Vec::new();
        while let Tok::Field(name) = self.peek().clone() {
            self.i += 1;
            f.push(name);
        }
        f
    }

    fn operand(&mut self) -> Result<Arg, String> {
        let (t, pos) = self.next();
        let arg = match t {
            Tok::Dot => Arg::Dot,
            Tok::Nil => Arg::Nil,
            Tok::Bool(b) => Arg::Bool(b),
            Tok::Str(s) => Arg::Str(s),
            Tok::CharConst(c) => Arg::Number(Number {
                int: Some(c),
                float: c as f64,
                is_float: false,
            }),
            Tok::Number(n) => Arg::Number(
                parse_number(&n).ok_or_else(|| self.err(pos, format!("bad number syntax: {n}")))?,
            ),
            Tok::Field(name) => {
                let mut f = vec![name];
                f.extend(self.fields());
                return Ok(Arg::Field(f));
            }
            Tok::Variable(v) => {
                if !self.vars.contains(&v) {
                    return Err(self.err(pos, format!("undefined variable \"{v}\"")));
                }
                let f = self.fields();
                return Ok(Arg::Var(v, f));
            }
            Tok::Ident(name) => match Func::lookup(&name) {
                Some(f) => {
                    // `fn.Field` chains on the function's result.
                    let fields = self.fields();
                    if !fields.is_empty() {
                        let cmd = Cmd {
                            pos,
                            args: vec![Arg::Func(f)],
                            regex: None,
                        };
                        let p = Pipe {
                            pos,
                            decl: Vec::new(),
                            assign: false,
                            cmds: vec![cmd],
                        };
                        return Ok(Arg::Pipe(Box::new(p), fields));
                    }
                    Arg::Func(f)
                }
                None => return Err(self.err(pos, format!("function \"{name}\" not defined"))),
            },
            Tok::LeftParen => {
                self.enter(pos)?;
                let p = self.pipeline("parenthesized pipeline", false)?;
                self.depth -= 1;
                let f = self.fields();
                return Ok(Arg::Pipe(Box::new(p), f));
            }
            t => return Err(self.unexpected(&t, pos, "operand")),
        };
        if let Tok::Field(_) = self.peek() {
            let p = self.pos();
            return Err(self.err(p, "unexpected . after term"));
        }
        Ok(arg)
    }
}

/// Parses template source into a tree.
pub fn parse(name: &str, src: &str) -> Result<Tree, String> {
    let toks = Lexer {
        src,
        name,
        pos: 0,
        toks: Vec::new(),
    }
    .run()?;
    let mut p = Parser {
        src,
        name,
        toks,
        i: 0,
        vars: vec!["$".to_string()],
        range_depth: 0,
        depth: 0,
        defines: HashMap::new(),
    };
    let (root, end) = p.list()?;
    match end {
        End::Eof => Ok(Tree {
            root,
            defines: p.defines,
        }),
        End::Close => Err(p.err(p.pos(), "unexpected {{end}}")),
        End::Else => Err(p.err(p.pos(), "unexpected {{else}}")),
    }
}

/// Every field name read anywhere in `nodes` (for required-label analysis).
pub fn collect_fields(nodes: &[Node], out: &mut Vec<String>) {
    fn pipe(p: &Pipe, out: &mut Vec<String>) {
        for c in &p.cmds {
            for a in &c.args {
                match a {
                    Arg::Field(f) => out.extend(f.iter().cloned()),
                    Arg::Var(_, f) => out.extend(f.iter().cloned()),
                    Arg::Pipe(p2, f) => {
                        out.extend(f.iter().cloned());
                        pipe(p2, out);
                    }
                    _ => {}
                }
            }
        }
    }
    for n in nodes {
        match n {
            Node::Action(p) => pipe(p, out),
            Node::If(b) | Node::Range(b) | Node::With(b) => {
                pipe(&b.pipe, out);
                collect_fields(&b.list, out);
                if let Some(e) = &b.else_list {
                    collect_fields(e, out);
                }
            }
            Node::Template { pipe: Some(p), .. } => pipe(p, out),
            _ => {}
        }
    }
}
