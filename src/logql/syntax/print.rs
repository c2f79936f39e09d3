//! The canonical printer: `Display` for every AST type.
//!
//! The output follows the shape of Loki's `String()` methods (strings quoted
//! as Go's `strconv.Quote`, durations as Prometheus prints them: `5m`,
//! `1h30m`) with a few readability choices: `sum by (a, b) (...)`, spaces
//! around binary operators, and `and`/`or` in label filters. Parentheses
//! come from [`MetricExpr::Paren`]/[`LabelFilterExpr::Paren`] nodes, and are
//! added wherever operator precedence requires them, so that for every tree
//! `parse(print(t)) == t` (when the tree is one the parser can produce).

use std::fmt::{self, Display, Formatter, Write};

use super::ast::*;
use crate::labels::write_go_quoted;

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Log(l) => l.fmt(f),
            Expr::Metric(m) => m.fmt(f),
        }
    }
}

/// Writes a stream selector `{a="1", b=~"x"}`.
pub fn write_selector(f: &mut impl Write, ms: &[Matcher]) -> fmt::Result {
    f.write_char('{')?;
    for (i, m) in ms.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{m}")?;
    }
    f.write_char('}')
}

impl Display for LogExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_selector(f, &self.selector)?;
        for s in &self.pipeline {
            write!(f, " {s}")?;
        }
        Ok(())
    }
}

impl Display for Matcher {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.name, self.op)?;
        write_go_quoted(f, &self.value)
    }
}

impl Display for MatchOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Eq => "=",
            MatchOp::Neq => "!=",
            MatchOp::Re => "=~",
            MatchOp::Nre => "!~",
        })
    }
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stage::LineFilter(lf) => lf.fmt(f),
            Stage::Parser(p) => write!(f, "| {p}"),
            Stage::LabelFilter(l) => write!(f, "| {l}"),
            Stage::LineFormat(t) => {
                f.write_str("| line_format ")?;
                write_go_quoted(f, t)
            }
            Stage::LabelFormat(fmts) => {
                f.write_str("| label_format ")?;
                write_list(f, fmts)
            }
            Stage::Drop(sel) => {
                f.write_str("| drop ")?;
                write_list(f, sel)
            }
            Stage::Keep(sel) => {
                f.write_str("| keep ")?;
                write_list(f, sel)
            }
            Stage::Decolorize => f.write_str("| decolorize"),
        }
    }
}

fn write_list<T: Display>(f: &mut Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        x.fmt(f)?;
    }
    Ok(())
}

impl Display for LineFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.op.fmt(f)?;
        for (i, v) in self.values.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { " or " })?;
            v.fmt(f)?;
        }
        Ok(())
    }
}

impl Display for LineFilterOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LineFilterOp::Contains => "|=",
            LineFilterOp::NotContains => "!=",
            LineFilterOp::Regex => "|~",
            LineFilterOp::NotRegex => "!~",
            LineFilterOp::Pattern => "|>",
            LineFilterOp::NotPattern => "!>",
        })
    }
}

impl Display for LineFilterValue {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LineFilterValue::Str(s) => write_go_quoted(f, s),
            LineFilterValue::Ip(s) => {
                f.write_str("ip(")?;
                write_go_quoted(f, s)?;
                f.write_char(')')
            }
        }
    }
}

impl Display for ParserStage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ParserStage::Json(params) => {
                f.write_str("json")?;
                if !params.is_empty() {
                    f.write_char(' ')?;
                    write_list(f, params)?;
                }
                Ok(())
            }
            ParserStage::Logfmt {
                strict,
                keep_empty,
                params,
            } => {
                f.write_str("logfmt")?;
                if *strict {
                    f.write_str(" --strict")?;
                }
                if *keep_empty {
                    f.write_str(" --keep-empty")?;
                }
                if !params.is_empty() {
                    f.write_char(' ')?;
                    write_list(f, params)?;
                }
                Ok(())
            }
            ParserStage::Regexp(re) => {
                f.write_str("regexp ")?;
                write_go_quoted(f, re)
            }
            ParserStage::Pattern(p) => {
                f.write_str("pattern ")?;
                write_go_quoted(f, p)
            }
            ParserStage::Unpack => f.write_str("unpack"),
        }
    }
}

impl Display for ExtractParam {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)?;
        if let Some(e) = &self.expr {
            f.write_char('=')?;
            write_go_quoted(f, e)?;
        }
        Ok(())
    }
}

impl LabelFilterExpr {
    /// 1 for `or`, 2 for `and`, 3 for anything atomic.
    fn prec(&self) -> u8 {
        match self {
            LabelFilterExpr::Or(..) => 1,
            LabelFilterExpr::And(..) => 2,
            _ => 3,
        }
    }

    fn fmt_child(&self, f: &mut Formatter<'_>, parent: u8, right: bool) -> fmt::Result {
        let p = self.prec();
        if p < parent || (right && p == parent) {
            write!(f, "({self})")
        } else {
            self.fmt(f)
        }
    }
}

impl Display for LabelFilterExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LabelFilterExpr::And(a, b) => {
                a.fmt_child(f, 2, false)?;
                f.write_str(" and ")?;
                b.fmt_child(f, 2, true)
            }
            LabelFilterExpr::Or(a, b) => {
                a.fmt_child(f, 1, false)?;
                f.write_str(" or ")?;
                b.fmt_child(f, 1, true)
            }
            LabelFilterExpr::Paren(e) => write!(f, "({e})"),
            LabelFilterExpr::String(m) => m.fmt(f),
            LabelFilterExpr::Number { name, op, value } => {
                write!(f, "{name}{op}")?;
                write_float(f, *value)
            }
            LabelFilterExpr::Duration { name, op, value } => {
                write!(f, "{name}{op}")?;
                write_duration(f, *value)
            }
            LabelFilterExpr::Bytes { name, op, value } => {
                write!(f, "{name}{op}")?;
                write_bytes(f, *value)
            }
            LabelFilterExpr::Ip {
                name,
                negate,
                pattern,
            } => {
                write!(f, "{name}{}ip(", if *negate { "!=" } else { "=" })?;
                write_go_quoted(f, pattern)?;
                f.write_char(')')
            }
        }
    }
}

impl Display for CmpOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CmpOp::Eq => "==",
            CmpOp::Neq => "!=",
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
        })
    }
}

impl Display for LabelFmt {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LabelFmt::Rename { dst, src } => write!(f, "{dst}={src}"),
            LabelFmt::Template { dst, template } => {
                write!(f, "{dst}=")?;
                write_go_quoted(f, template)
            }
        }
    }
}

impl Display for LabelSelection {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.matcher {
            Some(m) => m.fmt(f),
            None => f.write_str(&self.name),
        }
    }
}

impl MetricExpr {
    /// Binding strength for printing: binary operators by Prometheus
    /// precedence, 7 for anything atomic.
    fn prec(&self) -> u8 {
        match self {
            MetricExpr::Binary(b) => b.op.precedence(),
            // A negative literal on the left of `^` reads as `-(x ^ y)` in
            // PromQL, but LogQL's lexer makes it one token; keep it atomic.
            _ => 7,
        }
    }
}

impl Display for MetricExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            MetricExpr::RangeAgg(r) => r.fmt(f),
            MetricExpr::VectorAgg(v) => v.fmt(f),
            MetricExpr::Binary(b) => b.fmt(f),
            MetricExpr::Literal(v) => write_float(f, *v),
            MetricExpr::Vector(v) => {
                f.write_str("vector(")?;
                write_float(f, *v)?;
                f.write_char(')')
            }
            MetricExpr::LabelReplace(l) => l.fmt(f),
            MetricExpr::Paren(e) => write!(f, "({e})"),
        }
    }
}

impl Display for RangeAggregation {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.op)?;
        if let Some(p) = self.param {
            write_float(f, p)?;
            f.write_str(", ")?;
        }
        self.log.fmt(f)?;
        if let Some(u) = &self.unwrap {
            write!(f, " {u}")?;
        }
        f.write_str(if self.log.pipeline.is_empty() && self.unwrap.is_none() {
            "["
        } else {
            " ["
        })?;
        write_duration(f, self.range)?;
        f.write_char(']')?;
        if self.offset != 0 {
            f.write_str(" offset ")?;
            write_duration(f, self.offset)?;
        }
        f.write_char(')')?;
        if let Some(g) = &self.grouping {
            write!(f, " {g}")?;
        }
        Ok(())
    }
}

impl Display for RangeOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RangeOp {
    /// The function's LogQL name.
    pub fn as_str(&self) -> &'static str {
        match self {
            RangeOp::CountOverTime => "count_over_time",
            RangeOp::Rate => "rate",
            RangeOp::RateCounter => "rate_counter",
            RangeOp::BytesOverTime => "bytes_over_time",
            RangeOp::BytesRate => "bytes_rate",
            RangeOp::AbsentOverTime => "absent_over_time",
            RangeOp::SumOverTime => "sum_over_time",
            RangeOp::AvgOverTime => "avg_over_time",
            RangeOp::MaxOverTime => "max_over_time",
            RangeOp::MinOverTime => "min_over_time",
            RangeOp::FirstOverTime => "first_over_time",
            RangeOp::LastOverTime => "last_over_time",
            RangeOp::StdvarOverTime => "stdvar_over_time",
            RangeOp::StddevOverTime => "stddev_over_time",
            RangeOp::QuantileOverTime => "quantile_over_time",
        }
    }
}

impl Display for Unwrap {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("| unwrap ")?;
        match self.conversion {
            Some(c) => write!(f, "{c}({})", self.label)?,
            None => f.write_str(&self.label)?,
        }
        for p in &self.post_filters {
            write!(f, " | {p}")?;
        }
        Ok(())
    }
}

impl Display for UnwrapConversion {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnwrapConversion::Bytes => "bytes",
            UnwrapConversion::Duration => "duration",
            UnwrapConversion::DurationSeconds => "duration_seconds",
        })
    }
}

impl Display for Grouping {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(if self.without { "without (" } else { "by (" })?;
        f.write_str(&self.labels.join(", "))?;
        f.write_char(')')
    }
}

impl Display for VectorAggregation {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.op.fmt(f)?;
        if let Some(g) = &self.grouping {
            write!(f, " {g} ")?;
        }
        f.write_char('(')?;
        if let Some(p) = self.param {
            write_float(f, p)?;
            f.write_str(", ")?;
        }
        write!(f, "{})", self.expr)
    }
}

impl Display for VectorOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl VectorOp {
    /// The aggregation's LogQL name.
    pub fn as_str(&self) -> &'static str {
        match self {
            VectorOp::Sum => "sum",
            VectorOp::Avg => "avg",
            VectorOp::Min => "min",
            VectorOp::Max => "max",
            VectorOp::Count => "count",
            VectorOp::Stddev => "stddev",
            VectorOp::Stdvar => "stdvar",
            VectorOp::Topk => "topk",
            VectorOp::Bottomk => "bottomk",
            VectorOp::Sort => "sort",
            VectorOp::SortDesc => "sort_desc",
            VectorOp::ApproxTopk => "approx_topk",
        }
    }
}

impl BinOp {
    /// The operator as written.
    pub fn as_str(&self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
            BinOp::Eq => "==",
            BinOp::Neq => "!=",
            BinOp::Gt => ">",
            BinOp::Gte => ">=",
            BinOp::Lt => "<",
            BinOp::Lte => "<=",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Unless => "unless",
        }
    }

    /// Prometheus precedence: `or` 1, `and unless` 2, comparisons 3,
    /// `+ -` 4, `* / %` 5, `^` 6 (right-associative).
    pub fn precedence(&self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And | BinOp::Unless => 2,
            BinOp::Eq | BinOp::Neq | BinOp::Gt | BinOp::Gte | BinOp::Lt | BinOp::Lte => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Mod => 5,
            BinOp::Pow => 6,
        }
    }
}

impl Display for BinOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Display for BinaryExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let p = self.op.precedence();
        let right_assoc = self.op == BinOp::Pow;
        let lp = self.lhs.prec();
        if lp < p || (lp == p && right_assoc) {
            write!(f, "({})", self.lhs)?;
        } else {
            self.lhs.fmt(f)?;
        }
        write!(f, " {}", self.op)?;
        if self.modifier.return_bool {
            f.write_str(" bool")?;
        }
        if let Some(m) = &self.modifier.matching {
            write!(
                f,
                " {} ({})",
                if m.on { "on" } else { "ignoring" },
                m.labels.join(", ")
            )?;
            if let Some(g) = &m.group {
                f.write_str(if g.left {
                    " group_left"
                } else {
                    " group_right"
                })?;
                if !g.include.is_empty() {
                    write!(f, " ({})", g.include.join(", "))?;
                }
            }
        }
        f.write_char(' ')?;
        let rp = self.rhs.prec();
        if rp < p || (rp == p && !right_assoc) {
            write!(f, "({})", self.rhs)
        } else {
            self.rhs.fmt(f)
        }
    }
}

impl Display for LabelReplace {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "label_replace({}, ", self.expr)?;
        write_go_quoted(f, &self.dst)?;
        f.write_str(", ")?;
        write_go_quoted(f, &self.replacement)?;
        f.write_str(", ")?;
        write_go_quoted(f, &self.src)?;
        f.write_str(", ")?;
        write_go_quoted(f, &self.regex)?;
        f.write_char(')')
    }
}

/// Writes a float the shortest way that reads back exactly (`2`, `0.99`,
/// `-1.5`, `1e-7` stays `0.0000001`).
pub fn write_float(f: &mut impl Write, v: f64) -> fmt::Result {
    if v.is_nan() {
        f.write_str("NaN")
    } else if v.is_infinite() {
        f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" })
    } else if v == 0.0 {
        // Never `-0`: LogQL's lexer reads `-0` as a (zero) duration.
        f.write_char('0')
    } else {
        write!(f, "{v}")
    }
}

/// Formats nanoseconds as LogQL duration text (see [`write_duration`]).
pub fn format_duration(ns: i64) -> String {
    let mut s = String::new();
    let _ = write_duration(&mut s, ns);
    s
}

/// Writes a duration as Prometheus does when it is a whole number of
/// milliseconds (`5m`, `1h30m`, `1d`, `2w`, `250ms`, `0s`); otherwise with
/// Go's units down to nanoseconds (`1s500ns`), which LogQL also reads.
pub fn write_duration(f: &mut impl Write, ns: i64) -> fmt::Result {
    if ns == 0 {
        return f.write_str("0s");
    }
    if ns < 0 {
        f.write_char('-')?;
    }
    let abs = ns.unsigned_abs();
    const MS: u64 = 1_000_000;
    let units: &[(&str, u64)] = if abs.is_multiple_of(MS) {
        &[
            ("y", 365 * 24 * 3600 * 1000 * MS),
            ("w", 7 * 24 * 3600 * 1000 * MS),
            ("d", 24 * 3600 * 1000 * MS),
            ("h", 3600 * 1000 * MS),
            ("m", 60 * 1000 * MS),
            ("s", 1000 * MS),
            ("ms", MS),
        ]
    } else {
        &[
            ("h", 3600 * 1000 * MS),
            ("m", 60 * 1000 * MS),
            ("s", 1000 * MS),
            ("ms", MS),
            ("us", 1000),
            ("ns", 1),
        ]
    };
    let mut rest = abs;
    for (name, size) in units {
        if rest >= *size {
            write!(f, "{}{name}", rest / size)?;
            rest %= size;
        }
    }
    Ok(())
}

/// Writes a byte size exactly, in the unit that gives the smallest whole
/// number: `42B`, `20MB`, `2KiB`; `1.5KiB` becomes `1536B`.
pub fn write_bytes(f: &mut impl Write, b: u64) -> fmt::Result {
    const UNITS: [(&str, u64); 10] = [
        ("PiB", 1 << 50),
        ("PB", 1_000_000_000_000_000),
        ("TiB", 1 << 40),
        ("TB", 1_000_000_000_000),
        ("GiB", 1 << 30),
        ("GB", 1_000_000_000),
        ("MiB", 1 << 20),
        ("MB", 1_000_000),
        ("KiB", 1 << 10),
        ("kB", 1_000),
    ];
    let mut best: (u64, &str) = (b, "B");
    if b != 0 {
        for (name, size) in UNITS {
            if b.is_multiple_of(size) && b / size < best.0 {
                best = (b / size, name);
            }
        }
    }
    write!(f, "{}{}", best.0, best.1)
}
