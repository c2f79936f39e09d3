//! The LogQL parser: tokens from [`super::lexer`] to the [`super::ast`] tree.
//!
//! A recursive-descent parser with precedence climbing for binary
//! operators, covering the grammar of Loki's `syntax.y`. Syntax errors name
//! the offending token the way goyacc does (`syntax error: unexpected
//! IDENTIFIER, expecting STRING`) at its 1-based line and column; errors
//! Loki raises while building nodes (bad regexes, aggregation rules) carry no
//! position (`parse error : ...`), as in Loki.

use super::ast::*;
use super::lexer::{lex, Kind, Token};
use super::ParseError;

/// Loki's `maxInputSize`.
pub(crate) const MAX_INPUT_SIZE: usize = 131_072;
/// Nesting limit for parentheses and aggregations, so that hostile input
/// cannot overflow the stack.
const MAX_DEPTH: usize = 128;

/// What a (sub)expression parsed to: binary operators and aggregations
/// accept only metric operands, but the grammar lets log queries appear.
pub(crate) enum Operand {
    Log(LogExpr),
    Metric(MetricExpr),
}

pub(crate) struct Parser<'a> {
    input: &'a str,
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
}

type PResult<T> = Result<T, ParseError>;

/// An error with no position (`parse error : msg`).
pub(crate) fn plain(msg: impl Into<String>) -> ParseError {
    ParseError {
        line: 0,
        col: 0,
        msg: msg.into(),
    }
}

impl<'a> Parser<'a> {
    pub(crate) fn new(input: &'a str) -> Self {
        Parser {
            input,
            toks: lex(input),
            pos: 0,
            depth: 0,
        }
    }

    fn tok(&self, ahead: usize) -> &Token {
        let i = self.pos + ahead;
        // `lex` always ends with Eof or Error; stay on it.
        self.toks
            .get(i)
            .or_else(|| self.toks.last())
            .unwrap_or(&EOF_TOKEN)
    }

    fn peek(&self) -> &Kind {
        &self.tok(0).kind
    }

    fn peek_at(&self, ahead: usize) -> &Kind {
        &self.tok(ahead).kind
    }

    fn bump(&mut self) -> Kind {
        let k = self.peek().clone();
        if self.pos < self.toks.len().saturating_sub(1) {
            self.pos += 1;
        }
        k
    }

    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Kind::Sym(x) if *x == s)
    }

    fn eat_sym(&mut self, s: &str) -> bool {
        if self.is_sym(s) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// 1-based line and column of a byte offset.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = self.input.get(..offset).unwrap_or(self.input);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    /// goyacc's `syntax error: unexpected X[, expecting A or B]` at the
    /// current token; a lexing error is reported as itself.
    pub(crate) fn unexpected(&self, expecting: &[&str]) -> ParseError {
        let t = self.tok(0);
        let (mut line, col) = self.line_col(t.offset);
        // Loki's scanner reports `[range]` tokens with line 0.
        if matches!(t.kind, Kind::Range(_))
            || self
                .input
                .get(t.offset..)
                .is_some_and(|r| r.starts_with('['))
        {
            line = 0;
        }
        if let Kind::Error(msg) = &t.kind {
            return ParseError {
                line,
                col,
                msg: msg.clone(),
            };
        }
        let mut msg = format!("syntax error: unexpected {}", t.kind.name());
        if !expecting.is_empty() && expecting.len() <= 4 {
            msg.push_str(", expecting ");
            msg.push_str(&expecting.join(" or "));
        }
        ParseError { line, col, msg }
    }

    fn expect_sym(&mut self, s: &str, expecting: &[&str]) -> PResult<()> {
        if self.eat_sym(s) {
            Ok(())
        } else {
            Err(self.unexpected(expecting))
        }
    }

    fn expect_str(&mut self) -> PResult<String> {
        match self.peek() {
            Kind::Str(_) => match self.bump() {
                Kind::Str(s) => Ok(s),
                _ => Err(plain("internal parser state")),
            },
            _ => Err(self.unexpected(&["STRING"])),
        }
    }

    fn expect_ident(&mut self, expecting: &[&str]) -> PResult<String> {
        match self.peek() {
            Kind::Ident(_) => match self.bump() {
                Kind::Ident(s) => Ok(s),
                _ => Err(plain("internal parser state")),
            },
            _ => Err(self.unexpected(expecting)),
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(plain(format!(
                "query is nested too deeply (more than {MAX_DEPTH} levels)"
            )));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    // ---------------------------------------------------------------- top

    /// Parses the whole input as one expression.
    pub(crate) fn parse_root(&mut self) -> PResult<Expr> {
        let op = self.parse_expr()?;
        if !matches!(self.peek(), Kind::Eof) {
            // `{...} | unwrap x` outside a range aggregation: goyacc shifts
            // the `|` and fails on `unwrap`.
            if self.at_unwrap() {
                self.bump();
            }
            return Err(self.unexpected(&[]));
        }
        Ok(match op {
            Operand::Log(l) => Expr::Log(l),
            Operand::Metric(m) => Expr::Metric(m),
        })
    }

    /// A bare stream selector `{...}` and nothing else.
    pub(crate) fn parse_selector_only(&mut self) -> PResult<Vec<Matcher>> {
        let expr = self.parse_root()?;
        match expr {
            Expr::Log(l) if l.pipeline.is_empty() => Ok(l.selector),
            _ => Err(plain("only label matchers are supported")),
        }
    }

    fn parse_expr(&mut self) -> PResult<Operand> {
        self.parse_binary(1)
    }

    fn parse_binary(&mut self, min_prec: u8) -> PResult<Operand> {
        self.enter()?;
        let mut lhs = self.parse_primary()?;
        // Each operator in a chain (`1+1+1...`) nests the tree one level
        // deeper; count it so printing, comparing and evaluating the tree
        // cannot overflow the stack.
        let mut chained = 0;
        while let Some((op, prec)) = self.peek_binop() {
            if prec < min_prec {
                break;
            }
            self.enter()?;
            chained += 1;
            self.bump();
            let modifier = self.parse_bin_modifier()?;
            let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.parse_binary(next_min)?;
            lhs = Operand::Metric(make_binary(op, modifier, lhs, rhs)?);
        }
        for _ in 0..chained {
            self.leave();
        }
        self.leave();
        Ok(lhs)
    }

    fn peek_binop(&self) -> Option<(BinOp, u8)> {
        let Kind::Sym(s) = self.peek() else {
            return None;
        };
        Some(match *s {
            "or" => (BinOp::Or, 1),
            "and" => (BinOp::And, 2),
            "unless" => (BinOp::Unless, 2),
            "==" => (BinOp::Eq, 3),
            "!=" => (BinOp::Neq, 3),
            ">" => (BinOp::Gt, 3),
            ">=" => (BinOp::Gte, 3),
            "<" => (BinOp::Lt, 3),
            "<=" => (BinOp::Lte, 3),
            "+" => (BinOp::Add, 4),
            "-" => (BinOp::Sub, 4),
            "*" => (BinOp::Mul, 5),
            "/" => (BinOp::Div, 5),
            "%" => (BinOp::Mod, 5),
            "^" => (BinOp::Pow, 6),
            _ => return None,
        })
    }

    fn parse_bin_modifier(&mut self) -> PResult<BinModifier> {
        let mut m = BinModifier::default();
        // Loki accepts `bool` after any operator; it only matters for
        // comparisons.
        if self.eat_sym("bool") {
            m.return_bool = true;
        }
        let on = if self.is_sym("on") {
            Some(true)
        } else if self.is_sym("ignoring") {
            Some(false)
        } else {
            None
        };
        if let Some(on) = on {
            self.bump();
            self.expect_sym("(", &["("])?;
            let labels = self.parse_label_list()?;
            let mut vm = VectorMatching {
                on,
                labels,
                group: None,
            };
            let left = if self.is_sym("group_left") {
                Some(true)
            } else if self.is_sym("group_right") {
                Some(false)
            } else {
                None
            };
            if let Some(left) = left {
                self.bump();
                let include = if self.eat_sym("(") {
                    self.parse_label_list()?
                } else {
                    Vec::new()
                };
                vm.group = Some(GroupModifier { left, include });
            }
            m.matching = Some(vm);
        }
        Ok(m)
    }

    /// `a, b, c)` after an opening parenthesis (possibly empty).
    fn parse_label_list(&mut self) -> PResult<Vec<String>> {
        let mut labels = Vec::new();
        if self.eat_sym(")") {
            return Ok(labels);
        }
        let mut expecting: &[&str] = &["IDENTIFIER", ")"];
        loop {
            labels.push(self.expect_ident(expecting)?);
            if self.eat_sym(",") {
                expecting = &["IDENTIFIER"];
                continue;
            }
            self.expect_sym(")", &[")", ","])?;
            return Ok(labels);
        }
    }

    fn parse_primary(&mut self) -> PResult<Operand> {
        match self.peek().clone() {
            Kind::Sym("{") => Ok(Operand::Log(self.parse_log_expr()?)),
            Kind::Sym("(") => {
                self.bump();
                let inner = self.parse_expr()?;
                self.expect_sym(")", &[])?;
                Ok(match inner {
                    Operand::Log(l) => Operand::Log(l),
                    Operand::Metric(m) => Operand::Metric(MetricExpr::Paren(Box::new(m))),
                })
            }
            Kind::Number(_) | Kind::Sym("+") | Kind::Sym("-") => {
                Ok(Operand::Metric(MetricExpr::Literal(self.parse_literal()?)))
            }
            Kind::Func(f) => self.parse_function(f).map(Operand::Metric),
            Kind::Ident(name)
                if name == "histogram_quantile" && matches!(self.peek_at(1), Kind::Sym("(")) =>
            {
                Err(self.histogram_trap())
            }
            _ => Err(self.unexpected(&[])),
        }
    }

    /// `NUMBER`, `+NUMBER` or `-NUMBER`.
    fn parse_literal(&mut self) -> PResult<f64> {
        let neg = if self.eat_sym("-") {
            true
        } else {
            self.eat_sym("+");
            false
        };
        match self.peek() {
            Kind::Number(_) => {
                let Kind::Number(text) = self.bump() else {
                    return Err(plain("internal parser state"));
                };
                let v = parse_float(&text)
                    .map_err(|e| plain(format!("unable to parse literal as a float: {e}")))?;
                Ok(if neg { -v } else { v })
            }
            _ => Err(self.unexpected(&["NUMBER"])),
        }
    }

    fn parse_function(&mut self, f: &'static str) -> PResult<MetricExpr> {
        if let Some(op) = range_op(f) {
            return self.parse_range_agg(op);
        }
        if let Some(op) = vector_op(f) {
            return self.parse_vector_agg(op);
        }
        match f {
            "vector" => {
                self.bump();
                self.expect_sym("(", &["("])?;
                let v = match self.peek() {
                    Kind::Number(_) => {
                        let Kind::Number(t) = self.bump() else {
                            return Err(plain("internal parser state"));
                        };
                        parse_float(&t).map_err(|e| {
                            plain(format!("unable to parse vectorExpr as a float: {e}"))
                        })?
                    }
                    _ => return Err(self.unexpected(&["NUMBER"])),
                };
                self.expect_sym(")", &[")"])?;
                Ok(MetricExpr::Vector(v))
            }
            "label_replace" => {
                self.bump();
                self.expect_sym("(", &["("])?;
                self.enter()?;
                let inner = self.parse_expr()?;
                self.leave();
                let expr = self.metric_arg(inner, &[","])?;
                let mut args = Vec::with_capacity(4);
                for _ in 0..4 {
                    self.expect_sym(",", &[","])?;
                    args.push(self.expect_str()?);
                }
                self.expect_sym(")", &[")"])?;
                let regex = args.pop().unwrap_or_default();
                let src = args.pop().unwrap_or_default();
                let replacement = args.pop().unwrap_or_default();
                let dst = args.pop().unwrap_or_default();
                if let Err(e) = compile_anchored(&regex) {
                    return Err(plain(format!(
                        "invalid regex in label_replace: {}",
                        regex_msg(&regex, &e)
                    )));
                }
                if !crate::labels::is_valid_label_name(&dst) {
                    return Err(plain(format!(
                        "invalid destination label name in label_replace(): {dst}"
                    )));
                }
                Ok(MetricExpr::LabelReplace(LabelReplace {
                    expr: Box::new(expr),
                    dst,
                    replacement,
                    src,
                    regex,
                }))
            }
            _ => Err(self.unexpected(&[])),
        }
    }

    /// An aggregation's argument must be a metric expression; a log query
    /// there is a syntax error at the token that follows it.
    fn metric_arg(&self, op: Operand, expecting: &[&str]) -> PResult<MetricExpr> {
        match op {
            Operand::Metric(m) => Ok(m),
            Operand::Log(_) => Err(self.unexpected(expecting)),
        }
    }

    fn parse_grouping(&mut self) -> PResult<Option<Grouping>> {
        let without = if self.is_sym("by") {
            false
        } else if self.is_sym("without") {
            true
        } else {
            return Ok(None);
        };
        self.bump();
        self.expect_sym("(", &["("])?;
        let labels = self.parse_label_list()?;
        Ok(Some(Grouping { without, labels }))
    }

    fn parse_vector_agg(&mut self, op: VectorOp) -> PResult<MetricExpr> {
        let name = self.bump();
        let name = match name {
            Kind::Func(f) => f,
            _ => "",
        };
        let before = self.parse_grouping()?;
        self.expect_sym("(", &["("])?;
        let mut param_text = None;
        if matches!(self.peek(), Kind::Number(_)) && matches!(self.peek_at(1), Kind::Sym(",")) {
            if let Kind::Number(t) = self.bump() {
                param_text = Some(t);
            }
            self.bump();
        }
        self.enter()?;
        let inner = self.parse_expr()?;
        self.leave();
        let expr = self.metric_arg(inner, &[])?;
        self.expect_sym(")", &[])?;
        let after = if before.is_none() {
            self.parse_grouping()?
        } else {
            None
        };
        let grouping = before.or(after);
        let param = match op {
            VectorOp::Topk | VectorOp::Bottomk | VectorOp::ApproxTopk => {
                let Some(t) = param_text else {
                    return Err(plain(format!("parameter required for operation {name}")));
                };
                let k: i64 = t
                    .parse()
                    .map_err(|_| plain(format!("invalid parameter {name}({t},")))?;
                if k <= 0 {
                    return Err(plain(format!(
                        "invalid parameter (must be greater than 0) {name}({t}"
                    )));
                }
                if op == VectorOp::ApproxTopk && grouping.is_some() {
                    return Err(plain(format!(
                        "grouping not allowed for {name} aggregation"
                    )));
                }
                Some(k as f64)
            }
            _ => {
                if let Some(t) = param_text {
                    return Err(plain(format!(
                        "unsupported parameter for operation {name}({t},"
                    )));
                }
                None
            }
        };
        if matches!(op, VectorOp::Sort | VectorOp::SortDesc)
            && grouping.as_ref().is_some_and(|g| !g.labels.is_empty())
        {
            return Err(plain("sort and sort_desc doesn't allow grouping by "));
        }
        Ok(MetricExpr::VectorAgg(VectorAggregation {
            op,
            param,
            expr: Box::new(expr),
            grouping,
        }))
    }

    fn parse_range_agg(&mut self, op: RangeOp) -> PResult<MetricExpr> {
        let name = match self.bump() {
            Kind::Func(f) => f,
            _ => "",
        };
        self.expect_sym("(", &["("])?;
        if !matches!(
            self.peek(),
            Kind::Number(_) | Kind::Sym("{") | Kind::Sym("(")
        ) {
            return Err(self.unexpected(&["NUMBER", "{", "("]));
        }
        let mut param_text = None;
        if let Kind::Number(_) = self.peek() {
            if let Kind::Number(t) = self.bump() {
                param_text = Some(t);
            }
            self.expect_sym(",", &[","])?;
        }
        let (log, unwrap, range, offset) = self.parse_log_range()?;
        self.expect_sym(")", &[")"])?;
        let grouping = self.parse_grouping()?;
        let param =
            match param_text {
                Some(t) => {
                    if op != RangeOp::QuantileOverTime {
                        return Err(plain(format!(
                            "parameter {t} not supported for operation {name}"
                        )));
                    }
                    Some(parse_float(&t).map_err(|e| {
                        plain(format!("invalid parameter for operation {name}: {e}"))
                    })?)
                }
                None if op == RangeOp::QuantileOverTime => {
                    return Err(plain(format!("parameter required for operation {name}")));
                }
                None => None,
            };
        validate_range_agg(op, name, unwrap.is_some(), grouping.is_some())?;
        Ok(MetricExpr::RangeAgg(RangeAggregation {
            op,
            param,
            log,
            unwrap,
            range,
            offset,
            grouping,
        }))
    }

    /// The argument of a range aggregation: a log query with a range, in any
    /// of the placements Loki accepts.
    fn parse_log_range(&mut self) -> PResult<(LogExpr, Option<Unwrap>, i64, i64)> {
        let part = self.parse_log_range_part()?;
        match part.range {
            Some((r, o)) => Ok((part.log, part.unwrap, r, o)),
            None => Err(self.unexpected(&[])),
        }
    }

    fn parse_log_range_part(&mut self) -> PResult<RangePart> {
        if self.is_sym("(") {
            self.bump();
            self.enter()?;
            let inner = self.parse_log_range_part()?;
            self.leave();
            self.expect_sym(")", &[])?;
            if inner.range.is_some() {
                return Ok(inner);
            }
            let mut part = inner;
            let (range, offset) = self.parse_range_and_offset()?;
            part.range = Some((range, offset));
            if part.unwrap.is_none() && part.log.pipeline.is_empty() && self.at_unwrap() {
                part.unwrap = Some(self.parse_unwrap()?);
            }
            return Ok(part);
        }
        if !self.is_sym("{") {
            return Err(self.unexpected(&["{", "("]));
        }
        let selector = self.parse_selector()?;
        let mut log = LogExpr {
            selector,
            pipeline: self.parse_pipeline()?,
        };
        let mut unwrap = if self.at_unwrap() {
            Some(self.parse_unwrap()?)
        } else {
            None
        };
        if !matches!(self.peek(), Kind::Range(_)) {
            return Ok(RangePart {
                log,
                unwrap,
                range: None,
            });
        }
        let (range, offset) = self.parse_range_and_offset()?;
        if log.pipeline.is_empty() && unwrap.is_none() {
            log.pipeline = self.parse_pipeline()?;
            if self.at_unwrap() {
                unwrap = Some(self.parse_unwrap()?);
            }
        }
        Ok(RangePart {
            log,
            unwrap,
            range: Some((range, offset)),
        })
    }

    fn parse_range_and_offset(&mut self) -> PResult<(i64, i64)> {
        let range = match self.peek() {
            Kind::Range(r) => *r,
            _ => return Err(self.unexpected(&["RANGE"])),
        };
        self.bump();
        let mut offset = 0;
        if self.eat_sym("offset") {
            match self.peek() {
                Kind::Duration(d) => {
                    offset = *d;
                    self.bump();
                }
                _ => return Err(self.unexpected(&["DURATION"])),
            }
        }
        Ok((range, offset))
    }

    fn at_unwrap(&self) -> bool {
        matches!(self.peek(), Kind::Sym("|")) && matches!(self.peek_at(1), Kind::Sym("unwrap"))
    }

    /// `| unwrap [conv(]label[)]` then `| labelFilter`s.
    fn parse_unwrap(&mut self) -> PResult<Unwrap> {
        self.bump();
        self.bump();
        let (label, conversion) = match self.peek().clone() {
            Kind::Ident(_) => (self.expect_ident(&[])?, None),
            Kind::Func(f @ ("bytes" | "duration" | "duration_seconds")) => {
                self.bump();
                self.expect_sym("(", &["("])?;
                let label = self.expect_ident(&["IDENTIFIER"])?;
                self.expect_sym(")", &[")"])?;
                let conv = match f {
                    "bytes" => UnwrapConversion::Bytes,
                    "duration" => UnwrapConversion::Duration,
                    _ => UnwrapConversion::DurationSeconds,
                };
                (label, Some(conv))
            }
            _ => {
                return Err(self.unexpected(&[
                    "IDENTIFIER",
                    "BYTES_CONV",
                    "DURATION_CONV",
                    "DURATION_SECONDS_CONV",
                ]))
            }
        };
        let mut post_filters = Vec::new();
        while self.is_sym("|") {
            self.bump();
            if !matches!(self.peek(), Kind::Ident(_) | Kind::Sym("(")) {
                return Err(self.unexpected(&["IDENTIFIER", "("]));
            }
            post_filters.push(self.parse_label_filter()?);
        }
        Ok(Unwrap {
            label,
            conversion,
            post_filters,
        })
    }

    // ---------------------------------------------------------- log queries

    fn parse_log_expr(&mut self) -> PResult<LogExpr> {
        let selector = self.parse_selector()?;
        let pipeline = self.parse_pipeline()?;
        Ok(LogExpr { selector, pipeline })
    }

    /// `{a="b", ...}` (possibly empty: the emptiness rule is checked later).
    pub(crate) fn parse_selector(&mut self) -> PResult<Vec<Matcher>> {
        self.expect_sym("{", &["{"])?;
        let mut out = Vec::new();
        if self.eat_sym("}") {
            return Ok(out);
        }
        loop {
            let name = self.expect_ident(&["IDENTIFIER", "}"])?;
            out.push(self.parse_matcher_rest(name)?);
            if self.eat_sym(",") {
                continue;
            }
            self.expect_sym("}", &["}", ","])?;
            return Ok(out);
        }
    }

    /// The operator and string of a matcher whose name was just read.
    fn parse_matcher_rest(&mut self, name: String) -> PResult<Matcher> {
        let op = match self.peek() {
            Kind::Sym("=") => MatchOp::Eq,
            Kind::Sym("!=") => MatchOp::Neq,
            Kind::Sym("=~") => MatchOp::Re,
            Kind::Sym("!~") => MatchOp::Nre,
            _ => return Err(self.unexpected(&["=", "!=", "=~", "!~"])),
        };
        self.bump();
        let value = self.expect_str()?;
        new_matcher(name, op, value)
    }

    fn parse_pipeline(&mut self) -> PResult<Vec<Stage>> {
        let mut stages = Vec::new();
        loop {
            if let Some(op) = self.peek_line_filter_op() {
                self.bump();
                stages.push(Stage::LineFilter(self.parse_line_filter(op)?));
                continue;
            }
            if self.is_sym("|") && !matches!(self.peek_at(1), Kind::Sym("unwrap")) {
                self.bump();
                stages.push(self.parse_stage()?);
                continue;
            }
            return Ok(stages);
        }
    }

    fn peek_line_filter_op(&self) -> Option<LineFilterOp> {
        let Kind::Sym(s) = self.peek() else {
            return None;
        };
        Some(match *s {
            "|=" => LineFilterOp::Contains,
            "!=" => LineFilterOp::NotContains,
            "|~" => LineFilterOp::Regex,
            "!~" => LineFilterOp::NotRegex,
            "|>" => LineFilterOp::Pattern,
            "!>" => LineFilterOp::NotPattern,
            _ => return None,
        })
    }

    fn parse_line_filter(&mut self, op: LineFilterOp) -> PResult<LineFilter> {
        let mut values = vec![self.parse_line_filter_value(op)?];
        while self.eat_sym("or") {
            values.push(self.parse_line_filter_value(op)?);
        }
        Ok(LineFilter { op, values })
    }

    fn parse_line_filter_value(&mut self, op: LineFilterOp) -> PResult<LineFilterValue> {
        match self.peek() {
            // Like Loki, line-filter regexes are compiled (and rejected) when
            // the pipeline is built, not here.
            Kind::Str(_) => Ok(LineFilterValue::Str(self.expect_str()?)),
            Kind::Func("ip") => {
                self.bump();
                self.expect_sym("(", &["("])?;
                let s = self.expect_str()?;
                self.expect_sym(")", &[")"])?;
                if !matches!(op, LineFilterOp::Contains | LineFilterOp::NotContains) {
                    return Err(plain("ip: invalid operation"));
                }
                validate_ip_pattern(&s)?;
                Ok(LineFilterValue::Ip(s))
            }
            _ => Err(self.unexpected(&["STRING", "ip"])),
        }
    }

    /// A stage after `|`.
    fn parse_stage(&mut self) -> PResult<Stage> {
        match self.peek().clone() {
            Kind::Sym("json") => {
                self.bump();
                Ok(Stage::Parser(ParserStage::Json(
                    self.parse_extract_params()?,
                )))
            }
            Kind::Sym("logfmt") => {
                self.bump();
                let (mut strict, mut keep_empty) = (false, false);
                while let Kind::Flag(f) = self.peek() {
                    if f == "--strict" {
                        strict = true;
                    } else {
                        keep_empty = true;
                    }
                    self.bump();
                }
                let params = self.parse_extract_params()?;
                Ok(Stage::Parser(ParserStage::Logfmt {
                    strict,
                    keep_empty,
                    params,
                }))
            }
            Kind::Sym("regexp") => {
                self.bump();
                let re = self.expect_str()?;
                validate_regexp_parser(&re)?;
                Ok(Stage::Parser(ParserStage::Regexp(re)))
            }
            Kind::Sym("pattern") => {
                self.bump();
                let p = self.expect_str()?;
                validate_pattern(&p).map_err(|e| plain(format!("invalid pattern parser: {e}")))?;
                Ok(Stage::Parser(ParserStage::Pattern(p)))
            }
            Kind::Sym("unpack") => {
                self.bump();
                Ok(Stage::Parser(ParserStage::Unpack))
            }
            Kind::Sym("line_format") => {
                self.bump();
                Ok(Stage::LineFormat(self.expect_str()?))
            }
            Kind::Sym("decolorize") => {
                self.bump();
                Ok(Stage::Decolorize)
            }
            Kind::Sym("label_format") => {
                self.bump();
                Ok(Stage::LabelFormat(self.parse_label_formats()?))
            }
            Kind::Sym("drop") => {
                self.bump();
                Ok(Stage::Drop(self.parse_label_selections()?))
            }
            Kind::Sym("keep") => {
                self.bump();
                Ok(Stage::Keep(self.parse_label_selections()?))
            }
            Kind::Ident(_) | Kind::Sym("(") => Ok(Stage::LabelFilter(self.parse_label_filter()?)),
            _ => Err(self.unexpected(&[])),
        }
    }

    /// `a="expr", b, ...` after `json`/`logfmt` (possibly none).
    fn parse_extract_params(&mut self) -> PResult<Vec<ExtractParam>> {
        let mut out = Vec::new();
        if !matches!(self.peek(), Kind::Ident(_)) {
            return Ok(out);
        }
        loop {
            let label = self.expect_ident(&["IDENTIFIER"])?;
            let expr = if self.eat_sym("=") {
                Some(self.expect_str()?)
            } else {
                None
            };
            if !crate::labels::is_valid_label_name(&label) {
                return Err(plain(format!("invalid extracted label name '{label}'")));
            }
            out.push(ExtractParam { label, expr });
            if !self.eat_sym(",") {
                return Ok(out);
            }
        }
    }

    fn parse_label_formats(&mut self) -> PResult<Vec<LabelFmt>> {
        let mut out: Vec<LabelFmt> = Vec::new();
        loop {
            let dst = self.expect_ident(&["IDENTIFIER"])?;
            self.expect_sym("=", &["="])?;
            let f = match self.peek().clone() {
                Kind::Ident(src) => {
                    self.bump();
                    LabelFmt::Rename { dst, src }
                }
                Kind::Str(_) => LabelFmt::Template {
                    dst,
                    template: self.expect_str()?,
                },
                _ => return Err(self.unexpected(&["IDENTIFIER", "STRING"])),
            };
            let name = match &f {
                LabelFmt::Rename { dst, .. } | LabelFmt::Template { dst, .. } => dst.clone(),
            };
            if out.iter().any(|g| matches!(g, LabelFmt::Rename { dst, .. } | LabelFmt::Template { dst, .. } if *dst == name)) {
                return Err(plain(format!("multiple label name '{name}' not allowed in a single format operation")));
            }
            out.push(f);
            if !self.eat_sym(",") {
                return Ok(out);
            }
        }
    }

    fn parse_label_selections(&mut self) -> PResult<Vec<LabelSelection>> {
        let mut out = Vec::new();
        loop {
            let name = self.expect_ident(&["IDENTIFIER"])?;
            let matcher = if matches!(self.peek(), Kind::Sym("=" | "!=" | "=~" | "!~")) {
                Some(self.parse_matcher_rest(name.clone())?)
            } else {
                None
            };
            out.push(LabelSelection { name, matcher });
            if !self.eat_sym(",") {
                return Ok(out);
            }
        }
    }

    // -------------------------------------------------------- label filters

    /// `a and b or (c, d) e`: `or` is loosest; `and`, `,` and juxtaposition
    /// bind tighter.
    fn parse_label_filter(&mut self) -> PResult<LabelFilterExpr> {
        self.enter()?;
        let mut lhs = self.parse_label_filter_and()?;
        // As for binary operators, each `or` in a chain nests the tree one
        // level deeper and counts toward the nesting limit.
        let mut chained = 0;
        while self.eat_sym("or") {
            self.enter()?;
            chained += 1;
            let rhs = self.parse_label_filter_and()?;
            lhs = LabelFilterExpr::Or(Box::new(lhs), Box::new(rhs));
        }
        for _ in 0..chained {
            self.leave();
        }
        self.leave();
        Ok(lhs)
    }

    fn parse_label_filter_and(&mut self) -> PResult<LabelFilterExpr> {
        let mut lhs = self.parse_label_filter_primary()?;
        let mut chained = 0;
        loop {
            if self.eat_sym("and") || self.eat_sym(",") {
                // an operand is required
            } else if !matches!(self.peek(), Kind::Ident(_) | Kind::Sym("(")) {
                for _ in 0..chained {
                    self.leave();
                }
                return Ok(lhs);
            }
            self.enter()?;
            chained += 1;
            let rhs = self.parse_label_filter_primary()?;
            lhs = LabelFilterExpr::And(Box::new(lhs), Box::new(rhs));
        }
    }

    fn parse_label_filter_primary(&mut self) -> PResult<LabelFilterExpr> {
        if self.eat_sym("(") {
            let inner = self.parse_label_filter()?;
            self.expect_sym(")", &[")"])?;
            return Ok(LabelFilterExpr::Paren(Box::new(inner)));
        }
        let name = self.expect_ident(&["IDENTIFIER", "("])?;
        let op = match self.peek() {
            Kind::Sym(s @ ("=" | "!=" | "=~" | "!~" | "==" | ">" | ">=" | "<" | "<=")) => *s,
            _ => return Err(self.unexpected(&[])),
        };
        self.bump();
        let cmp = match op {
            "=" | "==" => CmpOp::Eq,
            "!=" => CmpOp::Neq,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::Gte,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Lte,
            _ => CmpOp::Eq,
        };
        match self.peek().clone() {
            Kind::Str(_) if matches!(op, "=" | "!=" | "=~" | "!~") => {
                let mop = match op {
                    "=" => MatchOp::Eq,
                    "!=" => MatchOp::Neq,
                    "=~" => MatchOp::Re,
                    _ => MatchOp::Nre,
                };
                let value = self.expect_str()?;
                Ok(LabelFilterExpr::String(new_matcher(name, mop, value)?))
            }
            Kind::Func("ip") if matches!(op, "=" | "!=") => {
                self.bump();
                self.expect_sym("(", &["("])?;
                let pattern = self.expect_str()?;
                self.expect_sym(")", &[")"])?;
                validate_ip_pattern(&pattern)?;
                Ok(LabelFilterExpr::Ip {
                    name,
                    negate: op == "!=",
                    pattern,
                })
            }
            _ if matches!(op, "=~" | "!~") => Err(self.unexpected(&["STRING"])),
            Kind::Duration(d) => {
                self.bump();
                Ok(LabelFilterExpr::Duration {
                    name,
                    op: cmp,
                    value: d,
                })
            }
            Kind::Bytes(b) => {
                self.bump();
                Ok(LabelFilterExpr::Bytes {
                    name,
                    op: cmp,
                    value: b,
                })
            }
            Kind::Number(_) | Kind::Sym("+" | "-") => {
                let value = self.parse_literal()?;
                Ok(LabelFilterExpr::Number {
                    name,
                    op: cmp,
                    value,
                })
            }
            _ => Err(self.unexpected(&[])),
        }
    }

    // ------------------------------------------------- the histogram trap

    /// `histogram_quantile(φ, ...)` is PromQL: explain what LogQL uses.
    fn histogram_trap(&mut self) -> ParseError {
        let (line, col) = self.line_col(self.tok(0).offset);
        let mut phi = 0.95;
        let suggestion = self.histogram_suggestion(&mut phi).unwrap_or_else(|| {
            let mut p = String::new();
            let _ = super::print::write_float(&mut p, phi);
            format!(
                "quantile_over_time({p}, {{app=\"x\"}} | json | unwrap duration_ms [5m]) by (...)"
            )
        });
        ParseError {
            line,
            col,
            msg: format!(
                "syntax error: histogram_quantile is a PromQL function that LogQL does not have; \
                 to compute a quantile of a value extracted from log lines use quantile_over_time, \
                 e.g. {suggestion}"
            ),
        }
    }

    fn histogram_suggestion(&mut self, phi_out: &mut f64) -> Option<String> {
        self.bump(); // histogram_quantile
        self.bump(); // (
        let phi = self.parse_literal().ok()?;
        *phi_out = phi;
        if !self.eat_sym(",") {
            return None;
        }
        let inner = match self.parse_expr().ok()? {
            Operand::Metric(m) => m,
            Operand::Log(_) => return None,
        };
        let mut groups: Vec<String> = Vec::new();
        let ra = find_range_agg(&inner, &mut groups)?;
        groups.retain(|g| g != "le");
        let unwrap = match &ra.unwrap {
            Some(u) => u.clone(),
            None => Unwrap {
                label: "<numeric_label>".into(),
                conversion: None,
                post_filters: Vec::new(),
            },
        };
        let sugg = RangeAggregation {
            op: RangeOp::QuantileOverTime,
            param: Some(phi),
            log: ra.log.clone(),
            unwrap: Some(unwrap),
            range: ra.range,
            offset: ra.offset,
            grouping: None,
        };
        let by = if groups.is_empty() {
            "(...)".to_string()
        } else {
            format!("({})", groups.join(", "))
        };
        Some(format!("{} by {by}", MetricExpr::RangeAgg(sugg)))
    }
}

static EOF_TOKEN: Token = Token {
    kind: Kind::Eof,
    offset: 0,
};

struct RangePart {
    log: LogExpr,
    unwrap: Option<Unwrap>,
    range: Option<(i64, i64)>,
}

/// The first range aggregation under `e`, collecting vector-aggregation
/// grouping labels on the way down.
fn find_range_agg<'e>(e: &'e MetricExpr, groups: &mut Vec<String>) -> Option<&'e RangeAggregation> {
    match e {
        MetricExpr::RangeAgg(r) => Some(r),
        MetricExpr::VectorAgg(v) => {
            if let Some(g) = &v.grouping {
                if !g.without {
                    groups.extend(g.labels.iter().cloned());
                }
            }
            find_range_agg(&v.expr, groups)
        }
        MetricExpr::Paren(p) => find_range_agg(p, groups),
        MetricExpr::Binary(b) => {
            find_range_agg(&b.lhs, groups).or_else(|| find_range_agg(&b.rhs, groups))
        }
        MetricExpr::LabelReplace(l) => find_range_agg(&l.expr, groups),
        _ => None,
    }
}

fn make_binary(
    op: BinOp,
    modifier: BinModifier,
    lhs: Operand,
    rhs: Operand,
) -> PResult<MetricExpr> {
    let sym = op.as_str();
    let leg = |side: &str, o: Operand| -> PResult<MetricExpr> {
        match o {
            Operand::Metric(m) => Ok(m),
            Operand::Log(l) => {
                let ty = if l.pipeline.is_empty() {
                    "*syntax.MatchersExpr"
                } else {
                    "*syntax.PipelineExpr"
                };
                Err(plain(format!(
                    "unexpected type for {side} leg of binary operation ({sym}): {ty}"
                )))
            }
        }
    };
    let lhs = leg("left", lhs)?;
    let rhs = leg("right", rhs)?;
    if matches!(op, BinOp::And | BinOp::Or | BinOp::Unless) {
        if let Some(v) = literal_value(&lhs) {
            return Err(plain(format!(
                "unexpected literal for left leg of logical/set binary operation ({sym}): {v:.6}"
            )));
        }
        if let Some(v) = literal_value(&rhs) {
            return Err(plain(format!(
                "unexpected literal for right leg of logical/set binary operation ({sym}): {v:.6}"
            )));
        }
    }
    Ok(MetricExpr::Binary(BinaryExpr {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
        modifier,
    }))
}

fn literal_value(e: &MetricExpr) -> Option<f64> {
    match e {
        MetricExpr::Literal(v) => Some(*v),
        MetricExpr::Paren(p) => literal_value(p),
        _ => None,
    }
}

fn range_op(f: &str) -> Option<RangeOp> {
    Some(match f {
        "count_over_time" => RangeOp::CountOverTime,
        "rate" => RangeOp::Rate,
        "rate_counter" => RangeOp::RateCounter,
        "bytes_over_time" => RangeOp::BytesOverTime,
        "bytes_rate" => RangeOp::BytesRate,
        "absent_over_time" => RangeOp::AbsentOverTime,
        "sum_over_time" => RangeOp::SumOverTime,
        "avg_over_time" => RangeOp::AvgOverTime,
        "max_over_time" => RangeOp::MaxOverTime,
        "min_over_time" => RangeOp::MinOverTime,
        "first_over_time" => RangeOp::FirstOverTime,
        "last_over_time" => RangeOp::LastOverTime,
        "stdvar_over_time" => RangeOp::StdvarOverTime,
        "stddev_over_time" => RangeOp::StddevOverTime,
        "quantile_over_time" => RangeOp::QuantileOverTime,
        _ => return None,
    })
}

fn vector_op(f: &str) -> Option<VectorOp> {
    Some(match f {
        "sum" => VectorOp::Sum,
        "avg" => VectorOp::Avg,
        "min" => VectorOp::Min,
        "max" => VectorOp::Max,
        "count" => VectorOp::Count,
        "stddev" => VectorOp::Stddev,
        "stdvar" => VectorOp::Stdvar,
        "topk" => VectorOp::Topk,
        "bottomk" => VectorOp::Bottomk,
        "sort" => VectorOp::Sort,
        "sort_desc" => VectorOp::SortDesc,
        "approx_topk" => VectorOp::ApproxTopk,
        _ => return None,
    })
}

/// Loki's `RangeAggregationExpr.validate`.
fn validate_range_agg(
    op: RangeOp,
    name: &str,
    has_unwrap: bool,
    has_grouping: bool,
) -> PResult<()> {
    use RangeOp::*;
    if has_grouping
        && !matches!(
            op,
            AvgOverTime
                | StddevOverTime
                | StdvarOverTime
                | QuantileOverTime
                | MaxOverTime
                | MinOverTime
                | FirstOverTime
                | LastOverTime
        )
    {
        return Err(plain(format!(
            "grouping not allowed for {name} aggregation"
        )));
    }
    if has_unwrap {
        if matches!(op, CountOverTime | BytesOverTime | BytesRate) {
            return Err(plain(format!("invalid aggregation {name} with unwrap")));
        }
        return Ok(());
    }
    if !matches!(
        op,
        BytesOverTime | BytesRate | CountOverTime | Rate | AbsentOverTime
    ) {
        return Err(plain(format!("invalid aggregation {name} without unwrap")));
    }
    Ok(())
}

/// Go's `strconv.ParseFloat` for the decimal forms the lexer produces.
fn parse_float(text: &str) -> Result<f64, String> {
    let invalid = || format!("strconv.ParseFloat: parsing {text:?}: invalid syntax");
    let v: f64 = match text.get(..2) {
        Some("0x" | "0X") => parse_hex_float(&text[2..]).ok_or_else(invalid)?,
        _ => text.parse().map_err(|_| invalid())?,
    };
    if v.is_infinite() {
        return Err(format!(
            "strconv.ParseFloat: parsing {text:?}: value out of range"
        ));
    }
    Ok(v)
}

/// Go's hex floats, which need a binary exponent: `1p3`, `1.8p1`, `Ap-2`.
fn parse_hex_float(s: &str) -> Option<f64> {
    let (mant, exp) = s.split_once(['p', 'P'])?;
    let exp: i32 = exp.parse().ok()?;
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars().filter(|c| *c != '_') {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    Some(v * 2f64.powi(exp))
}

pub(crate) fn compile_anchored(re: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{re})$"))
        .size_limit(1 << 22)
        .build()
}

/// Go's `error parsing regexp: <what>: `<expr>`` from a Rust regex error.
pub(crate) fn regex_msg(re: &str, e: &regex::Error) -> String {
    let detail = match e {
        regex::Error::Syntax(s) => s
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with("error:"))
            .map(|l| {
                l.trim_start()
                    .trim_start_matches("error:")
                    .trim()
                    .to_string()
            })
            .unwrap_or_else(|| s.clone()),
        regex::Error::CompiledTooBig(_) => "expression too large".to_string(),
        other => other.to_string(),
    };
    format!("error parsing regexp: {detail}: `{re}`")
}

fn new_matcher(name: String, op: MatchOp, value: String) -> PResult<Matcher> {
    if matches!(op, MatchOp::Re | MatchOp::Nre) {
        if let Err(e) = compile_anchored(&value) {
            return Err(plain(regex_msg(&value, &e)));
        }
    }
    Ok(Matcher { name, op, value })
}

/// Loki's regexp parser rules: a valid RE2 with at least one named group,
/// names valid label names and distinct.
fn validate_regexp_parser(re: &str) -> PResult<()> {
    let wrap = |m: String| plain(format!("invalid regexp parser: {m}"));
    let compiled = regex::Regex::new(re).map_err(|e| wrap(regex_msg(re, &e)))?;
    let mut names: Vec<&str> = Vec::new();
    for n in compiled.capture_names().flatten() {
        if !crate::labels::is_valid_label_name(n) {
            return Err(wrap(format!("invalid extracted label name '{n}'")));
        }
        if names.contains(&n) {
            return Err(wrap(format!("duplicate extracted label name '{n}'")));
        }
        names.push(n);
    }
    if names.is_empty() {
        return Err(wrap("at least one named capture must be supplied".into()));
    }
    Ok(())
}

/// Loki's pattern rules: at least one named capture (`<name>`; `<_>` does
/// not count), no two captures side by side, no duplicate names.
pub(crate) fn validate_pattern(p: &str) -> Result<(), String> {
    // Split into captures and literals.
    let mut nodes: Vec<(bool, &str)> = Vec::new();
    let rest = p;
    let mut lit_start = 0usize;
    let mut i = 0usize;
    while i < rest.len() {
        let tail = &rest[i..];
        if let Some(after_lt) = tail.strip_prefix('<') {
            let name_len = after_lt
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after_lt.len());
            let name = &after_lt[..name_len];
            let is_name = !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit());
            if is_name && after_lt[name_len..].starts_with('>') {
                if lit_start < i {
                    nodes.push((false, &rest[lit_start..i]));
                }
                nodes.push((true, name));
                i += name_len + 2;
                lit_start = i;
                continue;
            }
        }
        i += tail.chars().next().map_or(1, char::len_utf8);
    }
    if lit_start < rest.len() {
        nodes.push((false, &rest[lit_start..]));
    }
    let mut seen: Vec<&str> = Vec::new();
    let mut named = 0;
    for (idx, (is_cap, text)) in nodes.iter().enumerate() {
        if !is_cap {
            continue;
        }
        if let Some((true, next)) = nodes.get(idx + 1) {
            return Err(format!(
                "found consecutive capture '<{text}><{next}>': invalid expression"
            ));
        }
        if *text != "_" {
            if seen.contains(text) {
                return Err(format!(
                    "duplicate capture name ({text}): invalid expression"
                ));
            }
            seen.push(text);
            named += 1;
        }
    }
    if named == 0 {
        return Err("at least one capture is required".into());
    }
    Ok(())
}

/// `ip("...")` patterns: an address, a CIDR range or `a-b`.
fn validate_ip_pattern(p: &str) -> PResult<()> {
    use std::net::IpAddr;
    let ok = if let Some((a, b)) = p.split_once('-') {
        match (a.trim().parse::<IpAddr>(), b.trim().parse::<IpAddr>()) {
            (Ok(x), Ok(y)) => x.is_ipv4() == y.is_ipv4() && x <= y,
            _ => false,
        }
    } else if let Some((a, bits)) = p.split_once('/') {
        match (a.parse::<IpAddr>(), bits.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(n)) => n <= 32,
            (Ok(IpAddr::V6(_)), Ok(n)) => n <= 128,
            _ => false,
        }
    } else {
        p.parse::<IpAddr>().is_ok()
    };
    if ok {
        Ok(())
    } else {
        Err(plain(format!("ip: invalid pattern: {p:?}")))
    }
}

/// Walks every stream selector of a parsed query and applies Loki's rule
/// that at least one matcher must not match the empty string.
pub(crate) fn validate_selectors(e: &Expr) -> PResult<()> {
    match e {
        Expr::Log(l) => validate_matchers(&l.selector),
        Expr::Metric(m) => validate_metric(m),
    }
}

fn validate_metric(m: &MetricExpr) -> PResult<()> {
    match m {
        MetricExpr::RangeAgg(r) => validate_matchers(&r.log.selector),
        MetricExpr::VectorAgg(v) => validate_metric(&v.expr),
        MetricExpr::Binary(b) => {
            validate_metric(&b.lhs)?;
            validate_metric(&b.rhs)
        }
        MetricExpr::LabelReplace(l) => validate_metric(&l.expr),
        MetricExpr::Paren(p) => validate_metric(p),
        MetricExpr::Literal(_) | MetricExpr::Vector(_) => Ok(()),
    }
}

pub(crate) const ERR_EMPTY_MATCHERS: &str = "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will";

pub(crate) fn validate_matchers(ms: &[Matcher]) -> PResult<()> {
    let selective = ms.iter().any(|m| !matcher_matches_empty(m));
    if selective {
        Ok(())
    } else {
        Err(plain(ERR_EMPTY_MATCHERS))
    }
}

fn matcher_matches_empty(m: &Matcher) -> bool {
    match m.op {
        MatchOp::Eq => m.value.is_empty(),
        MatchOp::Neq => !m.value.is_empty(),
        MatchOp::Re => compile_anchored(&m.value).map_or(true, |r| r.is_match("")),
        MatchOp::Nre => compile_anchored(&m.value).map_or(true, |r| !r.is_match("")),
    }
}
