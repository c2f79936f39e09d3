//! The LogQL abstract syntax tree.
//!
//! One tree for the whole language: log queries (a stream selector and a
//! pipeline of stages) and metric queries (range and vector aggregations,
//! binary operators, literals, `vector()`, `label_replace`). The parser
//! builds it, `Display` prints its canonical form (so that
//! `parse(print(q)) == parse(q)`), the pipeline compiles [`Stage`]s, and the
//! evaluators walk [`Expr`].
//!
//! Durations are nanoseconds (`i64`); byte sizes are bytes (`u64`).

/// A whole query.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Log(LogExpr),
    Metric(MetricExpr),
}

/// `{selector} | stage | stage ...`
#[derive(Clone, Debug, PartialEq)]
pub struct LogExpr {
    pub selector: Vec<Matcher>,
    pub pipeline: Vec<Stage>,
}

/// A label matcher in a stream selector or a label filter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `=~`
    Re,
    /// `!~`
    Nre,
}

/// One stage of a log pipeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// `|= "a" or "b"`, `!~ "re"`, `|> "<_> x"`, ...
    LineFilter(LineFilter),
    /// `| json`, `| logfmt`, `| regexp`, `| pattern`, `| unpack`
    Parser(ParserStage),
    /// `| level="error" and duration > 1s`
    LabelFilter(LabelFilterExpr),
    /// `| line_format "{{.a}}"` (the template source, unquoted)
    LineFormat(String),
    /// `| label_format a=b, c="{{.d}}"`
    LabelFormat(Vec<LabelFmt>),
    /// `| drop a, b="v"`
    Drop(Vec<LabelSelection>),
    /// `| keep a, b="v"`
    Keep(Vec<LabelSelection>),
    /// `| decolorize`
    Decolorize,
}

/// A line filter with its or-chained operands: `|= "a" or "b"` keeps a line
/// matching any operand; `!= "a" or "b"` keeps lines matching none.
#[derive(Clone, Debug, PartialEq)]
pub struct LineFilter {
    pub op: LineFilterOp,
    pub values: Vec<LineFilterValue>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineFilterOp {
    /// `|=`
    Contains,
    /// `!=`
    NotContains,
    /// `|~`
    Regex,
    /// `!~`
    NotRegex,
    /// `|>`
    Pattern,
    /// `!>`
    NotPattern,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LineFilterValue {
    /// A string (literal, regex or pattern, according to the operator).
    Str(String),
    /// `ip("192.168.0.0/24")`; only with `|=` and `!=`.
    Ip(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum ParserStage {
    /// `json` or `json a="x.y", b` (empty params: extract everything).
    Json(Vec<ExtractParam>),
    /// `logfmt [--strict] [--keep-empty] [params]`
    Logfmt {
        strict: bool,
        keep_empty: bool,
        params: Vec<ExtractParam>,
    },
    /// `regexp "(?P<name>...)"`
    Regexp(String),
    /// `pattern "<ip> - <_>"`
    Pattern(String),
    /// `unpack`
    Unpack,
}

/// `label="expression"` or a bare `label` (expression = label name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtractParam {
    pub label: String,
    /// `None` for the bare form.
    pub expr: Option<String>,
}

/// Label filter expressions; `and` binds tighter than `or`.
#[derive(Clone, Debug, PartialEq)]
pub enum LabelFilterExpr {
    And(Box<LabelFilterExpr>, Box<LabelFilterExpr>),
    Or(Box<LabelFilterExpr>, Box<LabelFilterExpr>),
    /// A parenthesised group, kept so the canonical print matches the input.
    Paren(Box<LabelFilterExpr>),
    /// `name = "v"`, `name =~ "re"`, ...
    String(Matcher),
    /// `name > 1.5`
    Number {
        name: String,
        op: CmpOp,
        value: f64,
    },
    /// `name > 1m30s` (nanoseconds)
    Duration {
        name: String,
        op: CmpOp,
        value: i64,
    },
    /// `name > 20MB` (bytes)
    Bytes {
        name: String,
        op: CmpOp,
        value: u64,
    },
    /// `name = ip("...")` or `name != ip("...")`
    Ip {
        name: String,
        negate: bool,
        pattern: String,
    },
}

/// Numeric comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `==` (also written `=`)
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelFmt {
    /// `dst=src`: renames, dropping `src`.
    Rename { dst: String, src: String },
    /// `dst="{{ template }}"`
    Template { dst: String, template: String },
}

/// A `drop`/`keep` operand: a bare name, or a name with a matcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelSelection {
    pub name: String,
    pub matcher: Option<Matcher>,
}

/// Metric expressions.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricExpr {
    RangeAgg(RangeAggregation),
    VectorAgg(VectorAggregation),
    Binary(BinaryExpr),
    /// A scalar literal, e.g. `2` or `1.5e3`.
    Literal(f64),
    /// `vector(1)`
    Vector(f64),
    /// `label_replace(expr, "dst", "replacement", "src", "regex")`
    LabelReplace(LabelReplace),
    /// `( expr )`, kept for printing.
    Paren(Box<MetricExpr>),
}

impl MetricExpr {
    /// Every range aggregation in the expression, left to right.
    pub fn range_aggregations(&self) -> Vec<&RangeAggregation> {
        fn walk<'a>(e: &'a MetricExpr, out: &mut Vec<&'a RangeAggregation>) {
            match e {
                MetricExpr::RangeAgg(r) => out.push(r),
                MetricExpr::VectorAgg(v) => walk(&v.expr, out),
                MetricExpr::Binary(b) => {
                    walk(&b.lhs, out);
                    walk(&b.rhs, out);
                }
                MetricExpr::LabelReplace(l) => walk(&l.expr, out),
                MetricExpr::Paren(p) => walk(p, out),
                MetricExpr::Literal(_) | MetricExpr::Vector(_) => {}
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RangeAggregation {
    pub op: RangeOp,
    /// The φ of `quantile_over_time(φ, ...)`.
    pub param: Option<f64>,
    pub log: LogExpr,
    pub unwrap: Option<Unwrap>,
    /// Range in nanoseconds.
    pub range: i64,
    /// `offset` in nanoseconds (0 when absent).
    pub offset: i64,
    pub grouping: Option<Grouping>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeOp {
    CountOverTime,
    Rate,
    RateCounter,
    BytesOverTime,
    BytesRate,
    AbsentOverTime,
    SumOverTime,
    AvgOverTime,
    MaxOverTime,
    MinOverTime,
    FirstOverTime,
    LastOverTime,
    StdvarOverTime,
    StddevOverTime,
    QuantileOverTime,
}

/// `| unwrap [conv(]label[)] [| label filters]`
#[derive(Clone, Debug, PartialEq)]
pub struct Unwrap {
    pub label: String,
    pub conversion: Option<UnwrapConversion>,
    /// Label filters after the unwrap.
    pub post_filters: Vec<LabelFilterExpr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnwrapConversion {
    Bytes,
    Duration,
    DurationSeconds,
}

/// `by (a, b)` or `without (a, b)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grouping {
    pub without: bool,
    pub labels: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VectorAggregation {
    pub op: VectorOp,
    /// `k` of topk/bottomk/approx_topk.
    pub param: Option<f64>,
    pub expr: Box<MetricExpr>,
    pub grouping: Option<Grouping>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Sort,
    SortDesc,
    ApproxTopk,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BinaryExpr {
    pub op: BinOp,
    pub lhs: Box<MetricExpr>,
    pub rhs: Box<MetricExpr>,
    pub modifier: BinModifier,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    And,
    Or,
    Unless,
}

/// `bool`, `on(...)`/`ignoring(...)` and `group_left(...)`/`group_right(...)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BinModifier {
    pub return_bool: bool,
    pub matching: Option<VectorMatching>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VectorMatching {
    /// `on(...)` when true, `ignoring(...)` when false.
    pub on: bool,
    pub labels: Vec<String>,
    pub group: Option<GroupModifier>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupModifier {
    /// `group_left` when true, `group_right` when false.
    pub left: bool,
    pub include: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LabelReplace {
    pub expr: Box<MetricExpr>,
    pub dst: String,
    pub replacement: String,
    pub src: String,
    pub regex: String,
}
