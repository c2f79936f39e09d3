//! Golden tests of metric evaluation over fixed samples. Every expected
//! value is computed by hand from the definitions (see the comments).

use std::sync::Mutex;

use super::range::{RangeAccumulator, SumAcc, VarAcc};
use super::*;
use crate::logql::syntax::ast::*;
use crate::storage::Direction;

const S: i64 = 1_000_000_000;

/// An in-memory sample source: the boundary of metric evaluation. It keeps
/// the samples whose labels match the aggregation's selector (`=`, `!=`,
/// `=~`) and whose timestamp is in `[from, through)`, in the stored order.
struct VecSource {
    samples: Vec<(Labels, i64, f64)>,
    calls: Mutex<Vec<(i64, i64)>>,
}

impl VecSource {
    fn new(samples: Vec<(Labels, i64, f64)>) -> Self {
        VecSource {
            samples,
            calls: Mutex::new(Vec::new()),
        }
    }
}

impl SampleSource for VecSource {
    fn for_each_sample(
        &self,
        agg: &RangeAggregation,
        from: i64,
        through: i64,
        sink: &mut dyn FnMut(&Labels, i64, f64),
    ) -> Result<(), EvalError> {
        if let Ok(mut c) = self.calls.lock() {
            c.push((from, through));
        }
        for (l, ts, v) in &self.samples {
            let ok = agg.log.selector.iter().all(|m| {
                let val = l.get(&m.name).unwrap_or("");
                match m.op {
                    MatchOp::Eq => val == m.value,
                    MatchOp::Neq => val != m.value,
                    MatchOp::Re => regex::Regex::new(&format!("^(?:{})$", m.value))
                        .map(|r| r.is_match(val))
                        .unwrap_or(false),
                    MatchOp::Nre => true,
                }
            });
            if ok && *ts >= from && *ts < through {
                sink(l, *ts, *v);
            }
        }
        Ok(())
    }
}

fn lbl(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().map(|(k, v)| (*k, *v)))
}

fn m(name: &str, op: MatchOp, value: &str) -> crate::logql::syntax::ast::Matcher {
    crate::logql::syntax::ast::Matcher {
        name: name.into(),
        op,
        value: value.into(),
    }
}

fn sel(pairs: &[(&str, &str)]) -> LogExpr {
    LogExpr {
        selector: pairs.iter().map(|(k, v)| m(k, MatchOp::Eq, v)).collect(),
        pipeline: vec![],
    }
}

fn ragg(op: RangeOp, log: LogExpr, range_s: i64) -> RangeAggregation {
    let unwrap = match op {
        RangeOp::CountOverTime
        | RangeOp::Rate
        | RangeOp::BytesOverTime
        | RangeOp::BytesRate
        | RangeOp::AbsentOverTime => None,
        _ => Some(Unwrap {
            label: "v".into(),
            conversion: None,
            post_filters: vec![],
        }),
    };
    RangeAggregation {
        op,
        param: None,
        log,
        unwrap,
        range: range_s * S,
        offset: 0,
        grouping: None,
    }
}

fn r(op: RangeOp, log: LogExpr, range_s: i64) -> MetricExpr {
    MetricExpr::RangeAgg(ragg(op, log, range_s))
}

fn vagg(op: VectorOp, param: Option<f64>, e: MetricExpr, g: Option<(bool, &[&str])>) -> MetricExpr {
    MetricExpr::VectorAgg(VectorAggregation {
        op,
        param,
        expr: Box::new(e),
        grouping: g.map(|(without, ls)| Grouping {
            without,
            labels: ls.iter().map(|s| s.to_string()).collect(),
        }),
    })
}

fn bin(op: BinOp, l: MetricExpr, rhs: MetricExpr, modifier: BinModifier) -> MetricExpr {
    MetricExpr::Binary(BinaryExpr {
        op,
        lhs: Box::new(l),
        rhs: Box::new(rhs),
        modifier,
    })
}

fn on(labels: &[&str], group: Option<(bool, &[&str])>) -> BinModifier {
    BinModifier {
        return_bool: false,
        matching: Some(VectorMatching {
            on: true,
            labels: labels.iter().map(|s| s.to_string()).collect(),
            group: group.map(|(left, inc)| GroupModifier {
                left,
                include: inc.iter().map(|s| s.to_string()).collect(),
            }),
        }),
    }
}

fn instant(t_s: i64) -> QueryParams {
    QueryParams {
        start: t_s * S,
        end: t_s * S,
        step: 0,
        interval: 0,
        limit: 100,
        direction: Direction::Backward,
        instant: true,
    }
}

fn range_q(start_s: i64, end_s: i64, step_s: i64) -> QueryParams {
    QueryParams {
        start: start_s * S,
        end: end_s * S,
        step: step_s * S,
        interval: 0,
        limit: 100,
        direction: Direction::Backward,
        instant: false,
    }
}

fn eval(e: &MetricExpr, p: &QueryParams, src: &VecSource) -> Result<QueryResult, EvalError> {
    eval_metric(e, p, src, &MetricLimits::default())
}

/// `{app="a"}`: one sample every 10s from 10s to 60s, values 1..=6, stored
/// out of order (the source may yield any order).
fn series_a() -> Vec<(Labels, i64, f64)> {
    let a = lbl(&[("app", "a")]);
    let mut v: Vec<(Labels, i64, f64)> =
        (1..=6).map(|i| (a.clone(), i * 10 * S, i as f64)).collect();
    v.reverse();
    v.swap(0, 3);
    v
}

fn vector_of(res: QueryResult) -> Vec<(Labels, f64)> {
    match res {
        QueryResult::Vector(v) => v
            .into_iter()
            .map(|s| {
                assert_eq!(
                    s.ts_ms, 60_000,
                    "instant samples are stamped at the query time"
                );
                (s.metric, s.value)
            })
            .collect(),
        other => panic!("expected a vector, got {other:?}"),
    }
}

fn one_value(e: &MetricExpr, t_s: i64, src: &VecSource) -> f64 {
    let p = instant(t_s);
    match eval(e, &p, src) {
        Ok(QueryResult::Vector(v)) if v.len() == 1 => v[0].value,
        other => panic!("expected one sample, got {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

// ---------------------------------------------------------------- windows

#[test]
fn count_over_time_window_edges_and_steps_not_dividing_range() {
    let src = VecSource::new(series_a());
    let e = r(RangeOp::CountOverTime, sel(&[("app", "a")]), 30);
    // Steps 30s, 50s, 70s (step 20s does not divide the 30s range).
    // t=30: (0,30]  -> 10,20,30        = 3
    // t=50: (20,50] -> 30,40,50 (20 excluded, 50 included) = 3
    // t=70: (40,70] -> 50,60 (40 excluded) = 2
    let res = eval(&e, &range_q(30, 70, 20), &src).unwrap();
    assert_eq!(
        res,
        QueryResult::Matrix(vec![Series {
            metric: lbl(&[("app", "a")]),
            points: vec![(30_000, 3.0), (50_000, 3.0), (70_000, 2.0)],
        }])
    );
    // One source call over [start - range + 1ns, end + 1ns).
    let calls = src.calls.lock().unwrap().clone();
    assert_eq!(calls, vec![(1, 70 * S + 1)]);
}

#[test]
fn empty_steps_are_omitted_and_empty_result_is_empty_matrix() {
    let src = VecSource::new(series_a());
    let e = r(RangeOp::CountOverTime, sel(&[("app", "a")]), 5);
    // t=0: (-5,0] none; t=25: (20,25] none; t=50: (45,50] -> 50; t=75: none.
    let res = eval(&e, &range_q(0, 75, 25), &src).unwrap();
    assert_eq!(
        res,
        QueryResult::Matrix(vec![Series {
            metric: lbl(&[("app", "a")]),
            points: vec![(50_000, 1.0)],
        }])
    );
    let none = r(RangeOp::CountOverTime, sel(&[("app", "zzz")]), 5);
    assert_eq!(
        eval(&none, &range_q(0, 75, 25), &src).unwrap(),
        QueryResult::Matrix(vec![])
    );
    assert_eq!(
        eval(&none, &instant(60), &src).unwrap(),
        QueryResult::Vector(vec![])
    );
}

#[test]
fn every_range_function_at_an_instant() {
    let src = VecSource::new(series_a());
    let a = || sel(&[("app", "a")]);
    // Instant at 60s over 30s: (30,60] holds 40,50,60 with values 4,5,6.
    let cases: Vec<(RangeOp, f64)> = vec![
        (RangeOp::CountOverTime, 3.0),
        (RangeOp::BytesOverTime, 15.0), // 4+5+6
        (RangeOp::BytesRate, 0.5),      // 15/30s
        (RangeOp::SumOverTime, 15.0),
        (RangeOp::AvgOverTime, 5.0),
        (RangeOp::MaxOverTime, 6.0),
        (RangeOp::MinOverTime, 4.0),
        (RangeOp::FirstOverTime, 4.0),
        (RangeOp::LastOverTime, 6.0),
        // mean 5, squared deviations 1+0+1 = 2, population variance 2/3
        (RangeOp::StdvarOverTime, 2.0 / 3.0),
        (RangeOp::StddevOverTime, (2.0f64 / 3.0).sqrt()),
        // 4→6 over (30,60]: increase 2; first sample 10s after the window
        // start (< 1.1 × 10s average spacing, so extrapolated by 10s), last
        // at the end: 2 × (20+10)/20 = 3 over 30s = 0.1/s.
        (RangeOp::RateCounter, 0.1),
    ];
    for (op, want) in cases {
        let got = one_value(&r(op, a(), 30), 60, &src);
        assert!(close(got, want), "{op:?}: got {got}, want {want}");
    }
    // rate of lines: 3 lines / 30s; rate of unwrapped values: 15 / 30s.
    let mut lines = ragg(RangeOp::Rate, a(), 30);
    assert!(close(
        one_value(&MetricExpr::RangeAgg(lines.clone()), 60, &src),
        0.1
    ));
    lines.unwrap = Some(Unwrap {
        label: "v".into(),
        conversion: None,
        post_filters: vec![],
    });
    assert!(close(
        one_value(&MetricExpr::RangeAgg(lines), 60, &src),
        0.5
    ));
}

#[test]
fn quantile_over_time_interpolates_and_out_of_range_phi_is_infinite() {
    let src = VecSource::new(series_a());
    let q = |phi: f64| {
        let mut agg = ragg(RangeOp::QuantileOverTime, sel(&[("app", "a")]), 30);
        agg.param = Some(phi);
        one_value(&MetricExpr::RangeAgg(agg), 60, &src)
    };
    // values 4,5,6: φ=0.5 → rank 1 → 5; φ=0.9 → rank 1.8 → 5×0.2 + 6×0.8 = 5.8
    assert!(close(q(0.5), 5.0));
    assert!(close(q(0.9), 5.8));
    assert!(close(q(0.0), 4.0));
    assert_eq!(q(1.5), f64::INFINITY);
    assert_eq!(q(-0.5), f64::NEG_INFINITY);
}

#[test]
fn rate_counter_handles_resets_and_single_samples() {
    let c = lbl(&[("app", "c")]);
    let src = VecSource::new(vec![
        (c.clone(), 60 * S, 3.0),
        (c.clone(), 40 * S, 5.0),
        (c.clone(), 50 * S, 1.0),
    ]);
    // 5, 1 (reset), 3: increase = 3 − 5 + 5 = 3. to_start = 10s (< 11s
    // threshold); zero point 20 × 5/3 = 33s is farther, so kept. Extrapolated
    // 3 × 30/20 = 4.5 over 30s = 0.15/s.
    let e = r(RangeOp::RateCounter, sel(&[("app", "c")]), 30);
    assert!(close(one_value(&e, 60, &src), 0.15));
    // A window with one sample gives 0 (Loki keeps the series with 0).
    let e = r(RangeOp::RateCounter, sel(&[("app", "c")]), 5);
    assert_eq!(one_value(&e, 60, &src), 0.0);
}

#[test]
fn offset_moves_the_window_not_the_timestamps() {
    let src = VecSource::new(series_a());
    let mut agg = ragg(RangeOp::SumOverTime, sel(&[("app", "a")]), 20);
    // Without offset at 60s: (40,60] → 5+6 = 11.
    assert_eq!(
        one_value(&MetricExpr::RangeAgg(agg.clone()), 60, &src),
        11.0
    );
    // offset 10s: (30,50] → 4+5 = 9, still stamped 60s (one_value checks).
    agg.offset = 10 * S;
    let e = MetricExpr::RangeAgg(agg);
    assert_eq!(one_value(&e, 60, &src), 9.0);
    // Range query: t=40 → (10,30] → 2+3 = 5; t=60 → 9; source asked for
    // [40−20−10 s + 1ns, 60−10 s + 1ns).
    let src = VecSource::new(series_a());
    let res = eval(&e, &range_q(40, 60, 20), &src).unwrap();
    assert_eq!(
        res,
        QueryResult::Matrix(vec![Series {
            metric: lbl(&[("app", "a")]),
            points: vec![(40_000, 5.0), (60_000, 9.0)],
        }])
    );
    assert_eq!(
        src.calls.lock().unwrap().clone(),
        vec![(10 * S + 1, 50 * S + 1)]
    );
}

#[test]
fn absent_over_time_uses_equality_matchers_of_the_selector() {
    let src = VecSource::new(series_a());
    let log = LogExpr {
        selector: vec![
            m("app", MatchOp::Eq, "zzz"),
            m("job", MatchOp::Eq, "j"),
            m("job", MatchOp::Neq, "k"),
            m("env", MatchOp::Re, ".*"),
        ],
        pipeline: vec![],
    };
    // Nothing matches: 1 at every step, labelled app="zzz" only (job has a
    // second matcher so it is dropped; env is a regex).
    let e = r(RangeOp::AbsentOverTime, log, 30);
    let res = eval(&e, &range_q(30, 100, 35), &src).unwrap();
    assert_eq!(
        res,
        QueryResult::Matrix(vec![Series {
            metric: lbl(&[("app", "zzz")]),
            points: vec![(30_000, 1.0), (65_000, 1.0), (100_000, 1.0)],
        }])
    );
    // Steps 30, 65, 100 over 30s: (0,30] and (35,65] have samples; (70,100]
    // is empty → 1 at 100s only.
    let e = r(RangeOp::AbsentOverTime, sel(&[("app", "a")]), 30);
    let res = eval(&e, &range_q(30, 100, 35), &src).unwrap();
    assert_eq!(
        res,
        QueryResult::Matrix(vec![Series {
            metric: lbl(&[("app", "a")]),
            points: vec![(100_000, 1.0)],
        }])
    );
    // Present at the instant → empty vector.
    assert_eq!(
        eval(&e, &instant(60), &src).unwrap(),
        QueryResult::Vector(vec![])
    );
}

#[test]
fn range_grouping_happens_before_the_window_computation() {
    let p1 = lbl(&[("app", "a"), ("pod", "1")]);
    let p2 = lbl(&[("app", "a"), ("pod", "2")]);
    let src = VecSource::new(vec![
        (p1.clone(), 40 * S, 3.0),
        (p1.clone(), 50 * S, 7.0),
        (p2.clone(), 45 * S, 1.0),
        (p2.clone(), 55 * S, 1.0),
        (p2.clone(), 60 * S, 2.0),
    ]);
    let mut agg = ragg(RangeOp::AvgOverTime, sel(&[("app", "a")]), 30);
    agg.grouping = Some(Grouping {
        without: false,
        labels: vec!["app".into()],
    });
    // One group {app="a"} over (30,60]: (3+7+1+1+2)/5 = 2.8, not the
    // average of the per-pod averages ((5 + 4/3)/2 ≈ 3.17).
    assert!(close(
        one_value(&MetricExpr::RangeAgg(agg.clone()), 60, &src),
        2.8
    ));
    agg.op = RangeOp::FirstOverTime; // earliest sample of the group: 40s → 3
    assert_eq!(one_value(&MetricExpr::RangeAgg(agg.clone()), 60, &src), 3.0);
    agg.op = RangeOp::LastOverTime; // latest: 60s → 2
    assert_eq!(one_value(&MetricExpr::RangeAgg(agg.clone()), 60, &src), 2.0);
    // without(pod) gives the same group.
    agg.op = RangeOp::MaxOverTime;
    agg.grouping = Some(Grouping {
        without: true,
        labels: vec!["pod".into()],
    });
    let res = vector_of(eval(&MetricExpr::RangeAgg(agg), &instant(60), &src).unwrap());
    assert_eq!(res, vec![(lbl(&[("app", "a")]), 7.0)]);
}

// ---------------------------------------------------------- pipeline errors

#[test]
fn pipeline_error_fails_the_query_with_lokis_message() {
    let bad = lbl(&[("__error__", "JSONParserErr"), ("app", "a")]);
    let src = VecSource::new(vec![
        (lbl(&[("app", "a")]), 50 * S, 1.0),
        (bad, 55 * S, 1.0),
    ]);
    let e = vagg(
        VectorOp::Sum,
        None,
        r(RangeOp::CountOverTime, sel(&[("app", "a")]), 30),
        Some((false, &["app"])),
    );
    let err = eval(&e, &instant(60), &src).unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(
        err.to_string(),
        "pipeline error: 'JSONParserErr' for series: '{__error__=\"JSONParserErr\", app=\"a\"}'.\n\
         Use a label filter to intentionally skip this error. (e.g | __error__!=\"JSONParserErr\").\n\
         To skip all potential errors you can match empty errors.(e.g __error__=\"\")\n\
         The label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )\n"
    );
    // Grouping by __error__ makes errors data: 1 line with and 1 without.
    let e = vagg(
        VectorOp::Sum,
        None,
        r(RangeOp::CountOverTime, sel(&[("app", "a")]), 30),
        Some((false, &["__error__"])),
    );
    let res = vector_of(eval(&e, &instant(60), &src).unwrap());
    assert_eq!(
        res,
        vec![
            (lbl(&[]), 1.0),
            (lbl(&[("__error__", "JSONParserErr")]), 1.0)
        ]
    );
    // An error sample outside every window is never seen: (56,60] is empty.
    let e = r(RangeOp::CountOverTime, sel(&[("app", "a")]), 4);
    assert_eq!(vector_of(eval(&e, &instant(60), &src).unwrap()), vec![]);
}

#[test]
fn preserve_error_label_from_the_pipeline_is_honoured() {
    let bad = lbl(&[
        ("__error__", "LogfmtParserErr"),
        ("__preserve_error__", "true"),
        ("app", "a"),
    ]);
    let src = VecSource::new(vec![(bad.clone(), 55 * S, 1.0)]);
    let e = r(RangeOp::CountOverTime, sel(&[("app", "a")]), 30);
    assert_eq!(
        vector_of(eval(&e, &instant(60), &src).unwrap()),
        vec![(bad, 1.0)]
    );
}

// ------------------------------------------------------------------ limits

#[test]
fn series_limit_counts_result_series() {
    let src = VecSource::new(web());
    let e = r(RangeOp::CountOverTime, sel(&[]), 30);
    let limits = MetricLimits {
        max_query_series: 3,
        ..MetricLimits::default()
    };
    let msg = "maximum number of series (3) reached for a single query; consider reducing query cardinality by adding more specific stream selectors, reducing the time range, or aggregating results with functions like sum(), count() or topk()";
    for p in [instant(60), range_q(30, 60, 10)] {
        let err = eval_metric(&e, &p, &src, &limits).unwrap_err();
        assert!(matches!(err, EvalError::Limit(_)));
        assert_eq!(err.to_string(), msg);
    }
    // Aggregated below the limit: fine (2 groups).
    let e = vagg(VectorOp::Sum, None, e, Some((false, &["dc"])));
    assert!(eval_metric(&e, &instant(60), &src, &limits).is_ok());
}

#[test]
fn too_many_steps_and_bad_steps_are_rejected() {
    let src = VecSource::new(vec![]);
    let e = r(RangeOp::CountOverTime, sel(&[("app", "a")]), 30);
    let err = eval(&e, &range_q(0, 11_001, 1), &src).unwrap_err();
    assert_eq!(
        err.to_string(),
        "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter"
    );
    // 11,000 intervals (11,001 steps) are allowed.
    assert!(eval(&e, &range_q(0, 11_000, 1), &src).is_ok());
    assert_eq!(
        eval(&e, &range_q(0, 10, 0), &src).unwrap_err().status(),
        400
    );
}

// ------------------------------------------------------ vector aggregations

/// Four series; at 60s over 30s their counts are p1=3, p2=1, p3=3, p4=2.
fn web() -> Vec<(Labels, i64, f64)> {
    let p1 = lbl(&[("app", "web"), ("dc", "x"), ("pod", "p1")]);
    let p2 = lbl(&[("app", "web"), ("dc", "x"), ("pod", "p2")]);
    let p3 = lbl(&[("app", "web"), ("dc", "y"), ("pod", "p3")]);
    let p4 = lbl(&[("app", "db"), ("dc", "y"), ("pod", "p4")]);
    let mut v = vec![];
    for t in [40, 50, 60] {
        v.push((p1.clone(), t * S, 1.0));
        v.push((p3.clone(), t * S, 1.0));
    }
    v.push((p2.clone(), 45 * S, 1.0));
    v.push((p4.clone(), 35 * S, 1.0));
    v.push((p4.clone(), 59 * S, 1.0));
    // Outside (30,60]: must not count.
    v.push((p2.clone(), 30 * S, 1.0));
    v
}

fn cot() -> MetricExpr {
    r(RangeOp::CountOverTime, sel(&[]), 30)
}

fn p(n: u8) -> Labels {
    match n {
        1 => lbl(&[("app", "web"), ("dc", "x"), ("pod", "p1")]),
        2 => lbl(&[("app", "web"), ("dc", "x"), ("pod", "p2")]),
        3 => lbl(&[("app", "web"), ("dc", "y"), ("pod", "p3")]),
        _ => lbl(&[("app", "db"), ("dc", "y"), ("pod", "p4")]),
    }
}

fn at60(e: &MetricExpr) -> Vec<(Labels, f64)> {
    let src = VecSource::new(web());
    vector_of(eval(e, &instant(60), &src).unwrap())
}

#[test]
fn vector_aggregations_by_and_without() {
    let x = || lbl(&[("dc", "x")]);
    let y = || lbl(&[("dc", "y")]);
    let by_dc = Some((false, &["dc"][..]));
    // x: p1=3, p2=1; y: p3=3, p4=2
    assert_eq!(
        at60(&vagg(VectorOp::Sum, None, cot(), by_dc)),
        vec![(x(), 4.0), (y(), 5.0)]
    );
    assert_eq!(
        at60(&vagg(VectorOp::Avg, None, cot(), by_dc)),
        vec![(x(), 2.0), (y(), 2.5)]
    );
    assert_eq!(
        at60(&vagg(VectorOp::Count, None, cot(), by_dc)),
        vec![(x(), 2.0), (y(), 2.0)]
    );
    assert_eq!(
        at60(&vagg(VectorOp::Min, None, cot(), by_dc)),
        vec![(x(), 1.0), (y(), 2.0)]
    );
    assert_eq!(
        at60(&vagg(VectorOp::Max, None, cot(), by_dc)),
        vec![(x(), 3.0), (y(), 3.0)]
    );
    // x: mean 2, deviations ±1 → variance 1; y: mean 2.5, ±0.5 → 0.25
    assert_eq!(
        at60(&vagg(VectorOp::Stdvar, None, cot(), by_dc)),
        vec![(x(), 1.0), (y(), 0.25)]
    );
    assert_eq!(
        at60(&vagg(VectorOp::Stddev, None, cot(), by_dc)),
        vec![(x(), 1.0), (y(), 0.5)]
    );
    // No grouping: one series without labels, 3+1+3+2 = 9.
    assert_eq!(
        at60(&vagg(VectorOp::Sum, None, cot(), None)),
        vec![(lbl(&[]), 9.0)]
    );
    // without(pod): {app=db,dc=y}=2, {app=web,dc=x}=4, {app=web,dc=y}=3
    assert_eq!(
        at60(&vagg(VectorOp::Sum, None, cot(), Some((true, &["pod"])))),
        vec![
            (lbl(&[("app", "db"), ("dc", "y")]), 2.0),
            (lbl(&[("app", "web"), ("dc", "x")]), 4.0),
            (lbl(&[("app", "web"), ("dc", "y")]), 3.0),
        ]
    );
}

#[test]
fn topk_bottomk_and_ties() {
    // p1 and p3 tie at 3: the first in label order (p1: dc="x") wins.
    assert_eq!(
        at60(&vagg(VectorOp::Topk, Some(1.0), cot(), None)),
        vec![(p(1), 3.0)]
    );
    assert_eq!(
        at60(&vagg(VectorOp::Topk, Some(2.0), cot(), None)),
        vec![(p(1), 3.0), (p(3), 3.0)]
    );
    assert_eq!(
        at60(&vagg(VectorOp::ApproxTopk, Some(1.0), cot(), None)),
        vec![(p(1), 3.0)]
    );
    assert_eq!(
        at60(&vagg(VectorOp::Bottomk, Some(1.0), cot(), None)),
        vec![(p(2), 1.0)]
    );
    // bottomk(2): p2=1, p4=2; result sorted by labels (p4 app="db" first).
    assert_eq!(
        at60(&vagg(VectorOp::Bottomk, Some(2.0), cot(), None)),
        vec![(p(4), 2.0), (p(2), 1.0)]
    );
    // Per group: x → p1 (3 > 1); y → p3 (3 > 2).
    assert_eq!(
        at60(&vagg(
            VectorOp::Topk,
            Some(1.0),
            cot(),
            Some((false, &["dc"]))
        )),
        vec![(p(1), 3.0), (p(3), 3.0)]
    );
    // k larger than the group keeps all; k < 1 keeps nothing.
    assert_eq!(
        at60(&vagg(VectorOp::Topk, Some(10.0), cot(), None)).len(),
        4
    );
    assert_eq!(at60(&vagg(VectorOp::Topk, Some(0.0), cot(), None)), vec![]);
}

#[test]
fn sort_and_sort_desc_order_the_instant_vector_by_value() {
    // values p1=3, p2=1, p3=3, p4=2; ties keep label order (p1 before p3).
    assert_eq!(
        at60(&vagg(VectorOp::SortDesc, None, cot(), None)),
        vec![(p(1), 3.0), (p(3), 3.0), (p(4), 2.0), (p(2), 1.0)]
    );
    assert_eq!(
        at60(&vagg(VectorOp::Sort, None, cot(), None)),
        vec![(p(2), 1.0), (p(4), 2.0), (p(1), 3.0), (p(3), 3.0)]
    );
}

// -------------------------------------------------------- binary operators

fn lit(v: f64) -> MetricExpr {
    MetricExpr::Literal(v)
}

fn with_bool() -> BinModifier {
    BinModifier {
        return_bool: true,
        matching: None,
    }
}

#[test]
fn arithmetic_between_vectors_and_with_literals() {
    let d = BinModifier::default;
    // Matching on all labels: 3+3, 1+1, ...
    assert_eq!(
        at60(&bin(BinOp::Add, cot(), cot(), d())),
        vec![(p(4), 4.0), (p(1), 6.0), (p(2), 2.0), (p(3), 6.0)]
    );
    // 2 ^ count: 2^2, 2^3, 2^1, 2^3
    assert_eq!(
        at60(&bin(BinOp::Pow, lit(2.0), cot(), d())),
        vec![(p(4), 4.0), (p(1), 8.0), (p(2), 2.0), (p(3), 8.0)]
    );
    // count % 2 and count − 1
    assert_eq!(
        at60(&bin(BinOp::Mod, cot(), lit(2.0), d())),
        vec![(p(4), 0.0), (p(1), 1.0), (p(2), 1.0), (p(3), 1.0)]
    );
    assert_eq!(
        at60(&bin(BinOp::Sub, cot(), lit(1.0), d())),
        vec![(p(4), 1.0), (p(1), 2.0), (p(2), 0.0), (p(3), 2.0)]
    );
    // 6 / count: 3, 2, 6, 2
    assert_eq!(
        at60(&bin(BinOp::Div, lit(6.0), cot(), d())),
        vec![(p(4), 3.0), (p(1), 2.0), (p(2), 6.0), (p(3), 2.0)]
    );
    // Division and modulo by zero are NaN in Loki.
    for op in [BinOp::Div, BinOp::Mod] {
        let res = at60(&bin(op, cot(), lit(0.0), d()));
        assert_eq!(res.len(), 4);
        assert!(res.iter().all(|(_, v)| v.is_nan()));
    }
}

#[test]
fn comparisons_filter_or_return_bool() {
    let d = BinModifier::default;
    // count > 2 keeps p1, p3 with their values; 2 < count keeps the vector
    // value too.
    assert_eq!(
        at60(&bin(BinOp::Gt, cot(), lit(2.0), d())),
        vec![(p(1), 3.0), (p(3), 3.0)]
    );
    assert_eq!(
        at60(&bin(BinOp::Lt, lit(2.0), cot(), d())),
        vec![(p(1), 3.0), (p(3), 3.0)]
    );
    assert_eq!(
        at60(&bin(BinOp::Gt, cot(), lit(2.0), with_bool())),
        vec![(p(4), 0.0), (p(1), 1.0), (p(2), 0.0), (p(3), 1.0)]
    );
    // count == bool count → all 1; count != count filters everything.
    assert_eq!(
        at60(&bin(BinOp::Eq, cot(), cot(), with_bool())),
        vec![(p(4), 1.0), (p(1), 1.0), (p(2), 1.0), (p(3), 1.0)]
    );
    assert_eq!(at60(&bin(BinOp::Neq, cot(), cot(), d())), vec![]);
    // Vector-vector filter keeps the left value: count >= (count − 1).
    let minus1 = bin(BinOp::Sub, cot(), lit(1.0), d());
    assert_eq!(at60(&bin(BinOp::Gte, cot(), minus1.clone(), d())).len(), 4);
    assert_eq!(at60(&bin(BinOp::Lte, cot(), minus1, d())), vec![]);
}

#[test]
fn set_operators() {
    let d = BinModifier::default;
    let big = || bin(BinOp::Gt, cot(), lit(2.0), d()); // p1=3, p3=3
    assert_eq!(
        at60(&bin(BinOp::And, cot(), big(), d())),
        vec![(p(1), 3.0), (p(3), 3.0)]
    );
    assert_eq!(
        at60(&bin(BinOp::Unless, cot(), big(), d())),
        vec![(p(4), 2.0), (p(2), 1.0)]
    );
    // (count × 10 > 20) or count: p1=30, p3=30 from the left, p2=1, p4=2
    // from the right.
    let tens = bin(
        BinOp::Gt,
        bin(BinOp::Mul, cot(), lit(10.0), d()),
        lit(20.0),
        d(),
    );
    assert_eq!(
        at60(&bin(BinOp::Or, tens, cot(), d())),
        vec![(p(4), 2.0), (p(1), 30.0), (p(2), 1.0), (p(3), 30.0)]
    );
    // and on(dc) with a one-series-per-dc right side keeping only dc="y".
    let y_only = bin(
        BinOp::Gt,
        vagg(VectorOp::Sum, None, cot(), Some((false, &["dc"]))),
        lit(4.5),
        d(),
    );
    assert_eq!(
        at60(&bin(BinOp::And, cot(), y_only, on(&["dc"], None))),
        vec![(p(4), 2.0), (p(3), 3.0)]
    );
    // A literal operand of a set operator is a parse error.
    let src = VecSource::new(web());
    let err = eval(&bin(BinOp::And, cot(), lit(1.0), d()), &instant(60), &src).unwrap_err();
    assert_eq!(
        err.to_string(),
        "parse error : unexpected literal for right leg of logical/set binary operation (and): 1.000000"
    );
}

#[test]
fn group_left_joins_include_labels_from_the_one_side() {
    // rhs: per-dc sums with region="r-<dc>" added by label_replace.
    let per_dc = MetricExpr::LabelReplace(LabelReplace {
        expr: Box::new(vagg(VectorOp::Sum, None, cot(), Some((false, &["dc"])))),
        dst: "region".into(),
        replacement: "r-$1".into(),
        src: "dc".into(),
        regex: "(.*)".into(),
    });
    // Share of each pod in its dc: 3/4, 1/4, 3/5, 2/5, with the region.
    let e = bin(
        BinOp::Div,
        cot(),
        per_dc.clone(),
        on(&["dc"], Some((true, &["region"]))),
    );
    let with_region = |n: u8, r: &str| {
        let mut l = p(n);
        l.insert("region", r);
        l
    };
    assert_eq!(
        at60(&e),
        vec![
            (with_region(4, "r-y"), 0.4),
            (with_region(1, "r-x"), 0.75),
            (with_region(2, "r-x"), 0.25),
            (with_region(3, "r-y"), 0.6),
        ]
    );
    // group_right: the one side is on the left; 4/3, 4/1, 5/3, 5/2 labelled
    // by the pods.
    let sums = vagg(VectorOp::Sum, None, cot(), Some((false, &["dc"])));
    let res = at60(&bin(
        BinOp::Div,
        sums.clone(),
        cot(),
        on(&["dc"], Some((false, &[]))),
    ));
    let want = [
        (p(4), 2.5),
        (p(1), 4.0 / 3.0),
        (p(2), 4.0),
        (p(3), 5.0 / 3.0),
    ];
    assert_eq!(res.len(), 4);
    for ((gl, gv), (wl, wv)) in res.iter().zip(want.iter()) {
        assert_eq!(gl, wl);
        assert!(close(*gv, *wv));
    }
    // ignoring(pod, app) one-to-one: labels lose pod and app; p1 (dc=x)
    // matches the x sum only if the rest is equal: {dc="x"} vs {dc="x"}.
    let ign = BinModifier {
        return_bool: false,
        matching: Some(VectorMatching {
            on: false,
            labels: vec!["pod".into(), "app".into()],
            group: Some(GroupModifier {
                left: true,
                include: vec![],
            }),
        }),
    };
    assert_eq!(at60(&bin(BinOp::Sub, cot(), sums, ign)).len(), 4);
}

#[test]
fn many_to_one_without_group_modifier_is_an_error() {
    let src = VecSource::new(web());
    let sums = vagg(VectorOp::Sum, None, cot(), Some((false, &["dc"])));
    // Left has p1 and p2 both matching dc="x".
    let err = eval(
        &bin(BinOp::Div, cot(), sums.clone(), on(&["dc"], None)),
        &instant(60),
        &src,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
    );
    // Duplicates on the "one" side.
    let err = eval(
        &bin(BinOp::Div, sums, cot(), on(&["dc"], None)),
        &instant(60),
        &src,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "found duplicate series on the right hand-side;many-to-many matching not allowed: matching labels must be unique on one side"
    );
    // one-to-one `on` keeps only the `on` labels.
    let sums = vagg(VectorOp::Sum, None, cot(), Some((false, &["dc"])));
    let res = at60(&bin(BinOp::Add, sums.clone(), sums, on(&["dc"], None)));
    assert_eq!(
        res,
        vec![(lbl(&[("dc", "x")]), 8.0), (lbl(&[("dc", "y")]), 10.0)]
    );
}

// ------------------------------------------------------ scalars, vector()

#[test]
fn literal_expressions_are_scalars_or_constant_matrices() {
    let src = VecSource::new(vec![]);
    let d = BinModifier::default;
    let e = bin(BinOp::Add, lit(1.0), lit(1.0), d());
    assert_eq!(
        eval(&e, &instant(60), &src).unwrap(),
        QueryResult::Scalar(60_000, 2.0)
    );
    // Comparisons of literals fold to 0/1 (Loki reduces them at parse time).
    let e = bin(BinOp::Gt, lit(1.0), lit(2.0), d());
    assert_eq!(
        eval(&e, &instant(60), &src).unwrap(),
        QueryResult::Scalar(60_000, 0.0)
    );
    let e = MetricExpr::Paren(Box::new(bin(BinOp::Mul, lit(2.0), lit(3.0), d())));
    assert_eq!(
        eval(&e, &range_q(10, 30, 10), &src).unwrap(),
        QueryResult::Matrix(vec![Series {
            metric: lbl(&[]),
            points: vec![(10_000, 6.0), (20_000, 6.0), (30_000, 6.0)],
        }])
    );
}

#[test]
fn vector_plus_vector_is_a_labelless_vector() {
    let src = VecSource::new(vec![]);
    let e = bin(
        BinOp::Add,
        MetricExpr::Vector(1.0),
        MetricExpr::Vector(1.0),
        BinModifier::default(),
    );
    assert_eq!(
        eval(&e, &instant(60), &src).unwrap(),
        QueryResult::Vector(vec![Sample {
            metric: lbl(&[]),
            ts_ms: 60_000,
            value: 2.0,
        }])
    );
    assert_eq!(
        eval(&e, &range_q(0, 20, 10), &src).unwrap(),
        QueryResult::Matrix(vec![Series {
            metric: lbl(&[]),
            points: vec![(0, 2.0), (10_000, 2.0), (20_000, 2.0)],
        }])
    );
    // vector(2) * 3 at an instant.
    let e = bin(
        BinOp::Mul,
        MetricExpr::Vector(2.0),
        lit(3.0),
        BinModifier::default(),
    );
    assert_eq!(
        vector_of(eval(&e, &instant(60), &src).unwrap()),
        vec![(lbl(&[]), 6.0)]
    );
}

// ------------------------------------------------------------ label_replace

fn lr(dst: &str, repl: &str, src: &str, re: &str) -> MetricExpr {
    MetricExpr::LabelReplace(LabelReplace {
        expr: Box::new(bin(BinOp::Lt, cot(), lit(2.0), BinModifier::default())), // p2 only: {app=web, dc=x, pod=p2} = 1
        dst: dst.into(),
        replacement: repl.into(),
        src: src.into(),
        regex: re.into(),
    })
}

#[test]
fn label_replace_expands_and_anchors() {
    let with = |k: &str, v: &str| {
        let mut l = p(2);
        l.insert(k, v);
        l
    };
    // "p2" =~ ^(?:p(\d))$ → $1 = "2"; ${2} does not exist → "".
    assert_eq!(
        at60(&lr("n", "$1-${2}", "pod", r"p(\d)")),
        vec![(with("n", "2-"), 1.0)]
    );
    // Named group.
    assert_eq!(
        at60(&lr("n", "${num}", "pod", r"p(?P<num>\d)")),
        vec![(with("n", "2"), 1.0)]
    );
    // Anchored: "2" alone does not match "p2" → unchanged.
    assert_eq!(at60(&lr("n", "$1", "pod", r"(\d)")), vec![(p(2), 1.0)]);
    // Empty replacement removes the destination label.
    assert_eq!(
        at60(&lr("dc", "", "pod", ".*")),
        vec![(lbl(&[("app", "web"), ("pod", "p2")]), 1.0)]
    );
    // A missing source label is matched as "".
    assert_eq!(
        at60(&lr("n", "empty", "nope", "")),
        vec![(with("n", "empty"), 1.0)]
    );
}

// ----------------------------------------------------------- accumulators

#[test]
fn accumulators_merge_like_a_single_pass() {
    let steps = Steps {
        start: 30 * S,
        step: 10 * S,
        n: 4,
    };
    let agg = ragg(RangeOp::StdvarOverTime, sel(&[("app", "a")]), 30);
    let data = series_a();
    let mut whole = RangeAccumulator::<VarAcc>::new(steps, &agg, false);
    let mut a = RangeAccumulator::<VarAcc>::new(steps, &agg, false);
    let mut b = RangeAccumulator::<VarAcc>::new(steps, &agg, false);
    for (i, (l, ts, v)) in data.iter().enumerate() {
        whole.add(l, *ts, *v);
        if i % 2 == 0 {
            a.add(l, *ts, *v)
        } else {
            b.add(l, *ts, *v)
        }
    }
    a.merge(b);
    let (w, m) = (
        whole.finish(agg.op, 0.0).unwrap(),
        a.finish(agg.op, 0.0).unwrap(),
    );
    // Every window holds three consecutive values: variance 2/3 at each step.
    for (x, y) in w.rows[0].vals.iter().zip(m.rows[0].vals.iter()) {
        assert!(close(x.unwrap(), 2.0 / 3.0));
        assert!(close(y.unwrap(), 2.0 / 3.0));
    }
    let count = ragg(RangeOp::CountOverTime, sel(&[("app", "a")]), 30);
    let mut a = RangeAccumulator::<SumAcc>::new(steps, &count, false);
    let mut b = RangeAccumulator::<SumAcc>::new(steps, &count, false);
    for (i, (l, ts, v)) in data.iter().enumerate() {
        if i < 2 {
            a.add(l, *ts, *v)
        } else {
            b.add(l, *ts, *v)
        }
    }
    a.merge(b);
    let g = a.finish(RangeOp::CountOverTime, 0.0).unwrap();
    // t=30: 3, t=40: 3, t=50: 3, t=60: 3
    assert_eq!(g.rows[0].vals, vec![Some(3.0); 4]);
}

#[test]
fn sum_groups_additive_samples_first_and_intermediate_series_are_bounded() {
    let src = VecSource::new(web());
    // 4 streams, room for 3 per range aggregation at one step.
    let limits = MetricLimits {
        max_intermediate_points: 3,
        ..MetricLimits::default()
    };
    let err = eval_metric(
        &vagg(VectorOp::Topk, Some(1.0), cot(), None),
        &instant(60),
        &src,
        &limits,
    )
    .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err
        .to_string()
        .starts_with("maximum number of series (3) reached for a single query"));
    // The same bound by series count, whatever the number of steps.
    let by_series = MetricLimits {
        max_intermediate_series: 3,
        ..MetricLimits::default()
    };
    let e = vagg(VectorOp::Topk, Some(1.0), cot(), None);
    let err = eval_metric(&e, &range_q(30, 60, 10), &src, &by_series).unwrap_err();
    assert!(matches!(err, EvalError::Limit(_)));
    // sum by (dc) of a count groups the samples into 2 series at the source:
    // x = 3+1, y = 3+2; rate = those / 30s.
    let e = vagg(
        VectorOp::Sum,
        None,
        MetricExpr::Paren(Box::new(r(RangeOp::Rate, sel(&[]), 30))),
        Some((false, &["dc"])),
    );
    let res = vector_of(eval_metric(&e, &instant(60), &src, &limits).unwrap());
    assert_eq!(res.len(), 2);
    assert!(close(res[0].1, 4.0 / 30.0) && close(res[1].1, 5.0 / 30.0));
    assert_eq!(
        (res[0].0.clone(), res[1].0.clone()),
        (lbl(&[("dc", "x")]), lbl(&[("dc", "y")]))
    );
}

#[test]
fn sliding_windows_over_step_buckets_match_the_definition() {
    // range 20s = 2 steps of 10s, so samples are bucketed per step and
    // windows slide. series_a has v=i at 10·i s.
    let src = VecSource::new(series_a());
    let mut agg = ragg(RangeOp::SumOverTime, sel(&[("app", "a")]), 20);
    let pts = |e: &MetricExpr| match eval(e, &range_q(10, 70, 10), &src).unwrap() {
        QueryResult::Matrix(m) if m.len() == 1 => m[0].points.clone(),
        other => panic!("unexpected {other:?}"),
    };
    // t=10: (−10,10] → 1; t=20: (0,20] → 1+2; t=30: 2+3; t=40: 3+4;
    // t=50: 4+5; t=60: 5+6; t=70: (50,70] → 6.
    assert_eq!(
        pts(&MetricExpr::RangeAgg(agg.clone())),
        vec![
            (10_000, 1.0),
            (20_000, 3.0),
            (30_000, 5.0),
            (40_000, 7.0),
            (50_000, 9.0),
            (60_000, 11.0),
            (70_000, 6.0)
        ]
    );
    agg.op = RangeOp::CountOverTime;
    assert_eq!(
        pts(&MetricExpr::RangeAgg(agg.clone())),
        vec![
            (10_000, 1.0),
            (20_000, 2.0),
            (30_000, 2.0),
            (40_000, 2.0),
            (50_000, 2.0),
            (60_000, 2.0),
            (70_000, 1.0)
        ]
    );
    // offset 10s: window (t−30, t−10]; t=10 is empty and omitted.
    agg.op = RangeOp::SumOverTime;
    agg.offset = 10 * S;
    assert_eq!(
        pts(&MetricExpr::RangeAgg(agg)),
        vec![
            (20_000, 1.0),
            (30_000, 3.0),
            (40_000, 5.0),
            (50_000, 7.0),
            (60_000, 9.0),
            (70_000, 11.0)
        ]
    );
    // absent_over_time over buckets: (60,80] and (70,90] are empty.
    let e = r(RangeOp::AbsentOverTime, sel(&[("app", "a")]), 20);
    assert_eq!(
        eval(&e, &range_q(10, 90, 10), &src).unwrap(),
        QueryResult::Matrix(vec![Series {
            metric: lbl(&[("app", "a")]),
            points: vec![(80_000, 1.0), (90_000, 1.0)],
        }])
    );
}

#[test]
fn rate_counter_caps_extrapolation_at_half_an_interval_and_at_the_zero_point() {
    let c = lbl(&[("app", "c")]);
    let rc = |range_s: i64| r(RangeOp::RateCounter, sel(&[("app", "c")]), range_s);
    // Samples 600 @150s and 660 @180s (spacing 30s, threshold 33s).
    let src = VecSource::new(vec![
        (c.clone(), 150 * S, 600.0),
        (c.clone(), 180 * S, 660.0),
    ]);
    // (90,180]: first sample 60s from the start (> 33s) → +15s; end exact.
    // 60 × (30+15)/30 = 90 over 90s = 1.
    assert!(close(one_value(&rc(90), 180, &src), 1.0));
    // (120,210]: 30s each side (< 33s) → 60 × 90/30 = 180 over 90s = 2.
    assert!(close(one_value(&rc(90), 210, &src), 2.0));
    // (90,240]: both sides 60s away → +15s each: 60 × 60/30 = 120 / 150s = 0.8.
    assert!(close(one_value(&rc(150), 240, &src), 0.8));
    // Zero point: 30 @75s and 90 @105s over (45,105]: 30s to the start,
    // but the counter was 0 at 30 × 30/60 = 15s before the first sample:
    // 60 × (30+15)/30 = 90 over 60s = 1.5.
    let src = VecSource::new(vec![(c.clone(), 75 * S, 30.0), (c.clone(), 105 * S, 90.0)]);
    assert!(close(one_value(&rc(60), 105, &src), 1.5));
    // Threshold cap before zero point: 40 @180s, 100 @210s over (120,210]:
    // 60s to the start → capped to 15s; zero point 30 × 40/60 = 20s is not
    // shorter, so 60 × 45/30 = 90 over 90s = 1.
    let src = VecSource::new(vec![(c.clone(), 180 * S, 40.0), (c, 210 * S, 100.0)]);
    assert!(close(one_value(&rc(90), 210, &src), 1.0));
}

#[test]
fn nan_and_infinities_in_aggregations() {
    let k = |v: &str| lbl(&[("app", "n"), ("k", v)]);
    let src = VecSource::new(vec![
        (k("a"), 40 * S, f64::NAN),
        (k("a"), 50 * S, 2.0),
        (k("b"), 40 * S, f64::INFINITY),
        (k("b"), 50 * S, 3.0),
        (k("c"), 40 * S, f64::NAN),
    ]);
    let at = |op: RangeOp| {
        vector_of(eval(&r(op, sel(&[("app", "n")]), 30), &instant(60), &src).unwrap())
    };
    // max/min: a leading NaN is ignored; all NaN stays NaN.
    let max = at(RangeOp::MaxOverTime);
    assert_eq!((max[0].1, max[1].1), (2.0, f64::INFINITY));
    assert!(max[2].1.is_nan());
    // avg: +Inf absorbs a finite value; NaN poisons.
    let avg = at(RangeOp::AvgOverTime);
    assert!(avg[0].1.is_nan());
    assert_eq!(avg[1].1, f64::INFINITY);
    // topk(1) drops NaN behind any number: b (+Inf at max) then a (2).
    let e = vagg(
        VectorOp::Topk,
        Some(2.0),
        r(RangeOp::MaxOverTime, sel(&[("app", "n")]), 30),
        None,
    );
    let top = vector_of(eval(&e, &instant(60), &src).unwrap());
    assert_eq!(top, vec![(k("a"), 2.0), (k("b"), f64::INFINITY)]);
    // NaN != 1 keeps the NaN sample; NaN > bool 1 is 0.
    let maxv = || r(RangeOp::MaxOverTime, sel(&[("app", "n"), ("k", "c")]), 30);
    let res = vector_of(
        eval(
            &bin(BinOp::Neq, maxv(), lit(1.0), BinModifier::default()),
            &instant(60),
            &src,
        )
        .unwrap(),
    );
    assert!(res.len() == 1 && res[0].1.is_nan());
    let res = vector_of(
        eval(
            &bin(BinOp::Gt, maxv(), lit(1.0), with_bool()),
            &instant(60),
            &src,
        )
        .unwrap(),
    );
    assert_eq!(res, vec![(k("c"), 0.0)]);
}

#[test]
fn parse_level_errors_of_functions_and_aggregations() {
    let src = VecSource::new(web());
    let e = vagg(VectorOp::ApproxTopk, Some(1.0), cot(), None);
    let err = eval(&e, &range_q(30, 60, 30), &src).unwrap_err();
    assert_eq!(
        err.to_string(),
        "count min sketches are only supported on instant queries"
    );
    let e = vagg(VectorOp::Topk, None, cot(), None);
    let err = eval(&e, &instant(60), &src).unwrap_err();
    assert_eq!(
        err.to_string(),
        "parse error : parameter required for operation topk"
    );
    let err = eval(&lr("n", "$1", "pod", "("), &instant(60), &src).unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err
        .to_string()
        .starts_with("parse error : invalid regex in label_replace: "));
}

/// Reference: the value of `op` over the samples of one window, straight
/// from the definitions (two-pass variance, sorted quantile).
fn reference_value(op: RangeOp, w: &mut [(i64, f64)], range: i64, end: i64, phi: f64) -> f64 {
    w.sort_by_key(|s| s.0);
    let n = w.len() as f64;
    let sum: f64 = w.iter().map(|s| s.1).sum();
    let secs = range as f64 / 1e9;
    let mean = sum / n;
    let var = w.iter().map(|s| (s.1 - mean) * (s.1 - mean)).sum::<f64>() / n;
    match op {
        RangeOp::CountOverTime => n,
        RangeOp::Rate => n / secs,
        RangeOp::BytesOverTime | RangeOp::SumOverTime => sum,
        RangeOp::BytesRate => sum / secs,
        RangeOp::AvgOverTime => mean,
        RangeOp::MaxOverTime => w.iter().map(|s| s.1).fold(f64::MIN, f64::max),
        RangeOp::MinOverTime => w.iter().map(|s| s.1).fold(f64::MAX, f64::min),
        RangeOp::FirstOverTime => w[0].1,
        RangeOp::LastOverTime => w[w.len() - 1].1,
        RangeOp::StdvarOverTime => var,
        RangeOp::StddevOverTime => var.sqrt(),
        RangeOp::QuantileOverTime => {
            let mut v: Vec<f64> = w.iter().map(|s| s.1).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            let rank = phi * (n - 1.0);
            let (lo, hi) = (
                rank.floor() as usize,
                (rank.floor() as usize + 1).min(v.len() - 1),
            );
            v[lo] + (v[hi] - v[lo]) * (rank - rank.floor())
        }
        RangeOp::RateCounter => super::range::extrapolated_counter_rate(w, range, end),
        RangeOp::AbsentOverTime => 1.0,
    }
}

#[test]
fn every_range_function_matches_a_brute_force_reference() {
    // Deterministic pseudo-random samples: 3 series, distinct ms timestamps
    // in [0, 200s), values in [-5, 10).
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut samples = vec![];
    let mut used = std::collections::HashSet::new();
    for i in 0..240 {
        let ts = (next() % 200_000) as i64 * 1_000_000;
        if !used.insert(ts) {
            continue;
        }
        let v = (next() % 1500) as f64 / 100.0 - 5.0;
        let s = ["1", "2", "3"][i % 3];
        samples.push((lbl(&[("app", "r"), ("s", s)]), ts, v));
    }
    let src = VecSource::new(samples.clone());
    let ops = [
        RangeOp::CountOverTime,
        RangeOp::Rate,
        RangeOp::BytesOverTime,
        RangeOp::BytesRate,
        RangeOp::SumOverTime,
        RangeOp::AvgOverTime,
        RangeOp::MaxOverTime,
        RangeOp::MinOverTime,
        RangeOp::FirstOverTime,
        RangeOp::LastOverTime,
        RangeOp::StdvarOverTime,
        RangeOp::StddevOverTime,
        RangeOp::QuantileOverTime,
        RangeOp::RateCounter,
    ];
    let mut checked = 0;
    for (step_s, range_s, offset_s, start_s) in [
        (10, 30, 0, 0),  // range a multiple of step: sliding buckets
        (10, 10, 5, 23), // range == step
        (7, 30, 13, 60), // step does not divide range
        (15, 1, 0, 40),  // range < step: gaps between windows
        (1, 45, 0, 100), // many windows per sample
        (20, 60, 5, 7),
    ] {
        let (step, range, offset, start) = (step_s * S, range_s * S, offset_s * S, start_s * S);
        let params = range_q(start_s, start_s + 20 * step_s, step_s);
        for op in ops {
            let mut agg = ragg(op, sel(&[("app", "r")]), range_s);
            agg.offset = offset;
            agg.param = Some(0.3);
            let got = match eval(&MetricExpr::RangeAgg(agg), &params, &src).unwrap() {
                QueryResult::Matrix(m) => m,
                other => panic!("{other:?}"),
            };
            for series in ["1", "2", "3"] {
                let l = lbl(&[("app", "r"), ("s", series)]);
                let mut want = vec![];
                for i in 0..=20 {
                    let t = start + i * step;
                    let mut w: Vec<(i64, f64)> = samples
                        .iter()
                        .filter(|(sl, ts, _)| {
                            *sl == l && *ts > t - offset - range && *ts <= t - offset
                        })
                        .map(|(_, ts, v)| (*ts, *v))
                        .collect();
                    if !w.is_empty() {
                        want.push((
                            t / 1_000_000,
                            reference_value(op, &mut w, range, t - offset, 0.3),
                        ));
                    }
                }
                let got_pts = got
                    .iter()
                    .find(|s| s.metric == l)
                    .map(|s| s.points.clone())
                    .unwrap_or_default();
                assert_eq!(
                    got_pts.len(),
                    want.len(),
                    "{op:?} {step_s}/{range_s}/{offset_s} series {series}"
                );
                for ((gt, gv), (wt, wv)) in got_pts.iter().zip(want.iter()) {
                    assert_eq!(gt, wt);
                    assert!(
                        (gv - wv).abs() <= 1e-9 * (1.0 + wv.abs()),
                        "{op:?} at {gt}: {gv} vs {wv}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 1000, "only {checked} points checked");
}
