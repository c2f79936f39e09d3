//! Table tests for the LogQL parser and canonical printer.
//!
//! * `CANONICAL`: valid queries with their expected canonical print
//!   (written by hand from the printing rules in `syntax/print.rs`);
//! * `VALID`: more valid queries, likewise;
//! * `DOCS`: the queries from Loki's LogQL documentation pages, likewise;
//!   every valid query is also checked for a print -> parse round trip;
//! * `INVALID`: queries with their exact error text (message and position);
//! * AST checks for a representative subset, and no-panic checks on random
//!   input and on every truncation of every valid query.

use miniloki::logql::syntax::ast::*;
use miniloki::logql::syntax::{parse_expr, parse_log_selector, parse_matchers};

const MS: i64 = 1_000_000;
const SEC: i64 = 1_000 * MS;
const MIN: i64 = 60 * SEC;

/// Parses, prints, and checks that the print parses back to the same tree.
fn round_trip(q: &str) -> String {
    let e = parse_expr(q).unwrap_or_else(|err| panic!("{q:?} should parse, got {err}"));
    let printed = e.to_string();
    let again = parse_expr(&printed)
        .unwrap_or_else(|err| panic!("print of {q:?} = {printed:?} does not parse: {err}"));
    assert_eq!(
        again, e,
        "round trip changed the tree of {q:?} (printed {printed:?})"
    );
    assert_eq!(
        again.to_string(),
        printed,
        "print is not a fixed point for {q:?}"
    );
    printed
}

/// (input, canonical print)
const CANONICAL: &[(&str, &str)] = &[
    // --- stream selectors
    (r#"{app="foo"}"#, r#"{app="foo"}"#),
    (r#"{ app = "foo" }"#, r#"{app="foo"}"#),
    (r#"{app="foo",env=~"b.*"}"#, r#"{app="foo", env=~"b.*"}"#),
    (
        r#"{app="foo", env!="prod", pod!~"x-.*", ns=~"a|b"}"#,
        r#"{app="foo", env!="prod", pod!~"x-.*", ns=~"a|b"}"#,
    ),
    (r#"{app=`foo`}"#, r#"{app="foo"}"#),
    (r#"{app="a\"b"}"#, r#"{app="a\"b"}"#),
    (r#"{app="tab\there"}"#, r#"{app="tab\there"}"#),
    (r#"{app=`back\slash`}"#, r#"{app="back\\slash"}"#),
    (r#"{app="\u00e9t\u00e9"}"#, r#"{app="été"}"#),
    (r#"{app="x\x41"}"#, r#"{app="xA"}"#),
    (r#"{app="x\101"}"#, r#"{app="xA"}"#),
    (r#"{_a1="x"}"#, r#"{_a1="x"}"#),
    (r#"{app="foo"} # trailing comment"#, r#"{app="foo"}"#),
    ("# leading comment\n{app=\"foo\"}", r#"{app="foo"}"#),
    ("{app=\"foo\",\n env=\"dev\"}", r#"{app="foo", env="dev"}"#),
    (r#"{app!=""}"#, r#"{app!=""}"#),
    (r#"{app=~".+"}"#, r#"{app=~".+"}"#),
    (r#"{app="foo", x=""}"#, r#"{app="foo", x=""}"#),
    (r#"({app="foo"})"#, r#"{app="foo"}"#),
    // --- line filters
    (r#"{app="foo"} |= "x""#, r#"{app="foo"} |= "x""#),
    (r#"{app="foo"}|="x"!="y""#, r#"{app="foo"} |= "x" != "y""#),
    (
        r#"{app="foo"} |~ "a.*b" !~ "c""#,
        r#"{app="foo"} |~ "a.*b" !~ "c""#,
    ),
    (
        r#"{app="foo"} |> "<_> error <_>" !> "debug <_>""#,
        r#"{app="foo"} |> "<_> error <_>" !> "debug <_>""#,
    ),
    (
        r#"{app="foo"} |= "a" or "b""#,
        r#"{app="foo"} |= "a" or "b""#,
    ),
    (
        r#"{app="foo"} != "a" or "b" or "c""#,
        r#"{app="foo"} != "a" or "b" or "c""#,
    ),
    (
        r#"{app="foo"} |~ "a" or "b" |= "c""#,
        r#"{app="foo"} |~ "a" or "b" |= "c""#,
    ),
    (
        r#"{app="foo"} |= ip("10.0.0.0/8")"#,
        r#"{app="foo"} |= ip("10.0.0.0/8")"#,
    ),
    (
        r#"{app="foo"} != ip("10.0.0.1-10.0.0.9")"#,
        r#"{app="foo"} != ip("10.0.0.1-10.0.0.9")"#,
    ),
    (r#"{app="foo"} |= ip("::1")"#, r#"{app="foo"} |= ip("::1")"#),
    (
        r#"{app="foo"} |= "x" or ip("1.2.3.4")"#,
        r#"{app="foo"} |= "x" or ip("1.2.3.4")"#,
    ),
    (r#"{app="foo"} |= `raw\d`"#, r#"{app="foo"} |= "raw\\d""#),
    (
        r#"{app="foo"} |= "line1\nline2""#,
        r#"{app="foo"} |= "line1\nline2""#,
    ),
    (
        r#"{app="foo"} |~ `(?i)error`"#,
        r#"{app="foo"} |~ "(?i)error""#,
    ),
    (r#"{app="foo"} |= """#, r#"{app="foo"} |= """#),
    // --- parsers
    (r#"{app="foo"} | json"#, r#"{app="foo"} | json"#),
    (r#"{app="foo"} | JSON"#, r#"{app="foo"} | json"#),
    (
        r#"{app="foo"} | json first="servers[0]", ua="request.headers[\"User-Agent\"]""#,
        r#"{app="foo"} | json first="servers[0]", ua="request.headers[\"User-Agent\"]""#,
    ),
    (r#"{app="foo"} | json a"#, r#"{app="foo"} | json a"#),
    (
        r#"{app="foo"} | json a, b="c.d""#,
        r#"{app="foo"} | json a, b="c.d""#,
    ),
    (r#"{app="foo"} | logfmt"#, r#"{app="foo"} | logfmt"#),
    (
        r#"{app="foo"} | logfmt --strict"#,
        r#"{app="foo"} | logfmt --strict"#,
    ),
    (
        r#"{app="foo"} | logfmt --keep-empty --strict"#,
        r#"{app="foo"} | logfmt --strict --keep-empty"#,
    ),
    (
        r#"{app="foo"} | logfmt --strict host, code="status""#,
        r#"{app="foo"} | logfmt --strict host, code="status""#,
    ),
    (
        r#"{app="foo"} | logfmt a="b""#,
        r#"{app="foo"} | logfmt a="b""#,
    ),
    (
        r#"{app="foo"} | regexp "(?P<ip>\\S+) (?P<status>\\d+)""#,
        r#"{app="foo"} | regexp "(?P<ip>\\S+) (?P<status>\\d+)""#,
    ),
    (
        r#"{app="foo"} | regexp `(?P<method>\w+) (?<path>\S+)`"#,
        r#"{app="foo"} | regexp "(?P<method>\\w+) (?<path>\\S+)""#,
    ),
    (
        r#"{app="foo"} | pattern "<ip> - <_> \"<method> <uri>\"""#,
        r#"{app="foo"} | pattern "<ip> - <_> \"<method> <uri>\"""#,
    ),
    (
        r#"{app="foo"} | pattern `<_> level=<level> <_>`"#,
        r#"{app="foo"} | pattern "<_> level=<level> <_>""#,
    ),
    (r#"{app="foo"} | unpack"#, r#"{app="foo"} | unpack"#),
    (
        r#"{app="foo"} | json | logfmt | unpack"#,
        r#"{app="foo"} | json | logfmt | unpack"#,
    ),
    // --- label filters
    (
        r#"{app="foo"} | level="error""#,
        r#"{app="foo"} | level="error""#,
    ),
    (
        r#"{app="foo"} | level = "error""#,
        r#"{app="foo"} | level="error""#,
    ),
    (
        r#"{app="foo"} | level!="debug""#,
        r#"{app="foo"} | level!="debug""#,
    ),
    (
        r#"{app="foo"} | level=~"err.*""#,
        r#"{app="foo"} | level=~"err.*""#,
    ),
    (
        r#"{app="foo"} | level!~"info|debug""#,
        r#"{app="foo"} | level!~"info|debug""#,
    ),
    (
        r#"{app="foo"} | status >= 400"#,
        r#"{app="foo"} | status>=400"#,
    ),
    (
        r#"{app="foo"} | status == 200"#,
        r#"{app="foo"} | status==200"#,
    ),
    (
        r#"{app="foo"} | status = 200"#,
        r#"{app="foo"} | status==200"#,
    ),
    (
        r#"{app="foo"} | status != 200"#,
        r#"{app="foo"} | status!=200"#,
    ),
    (
        r#"{app="foo"} | status < 500"#,
        r#"{app="foo"} | status<500"#,
    ),
    (
        r#"{app="foo"} | status <= 1.5"#,
        r#"{app="foo"} | status<=1.5"#,
    ),
    (r#"{app="foo"} | x > -3"#, r#"{app="foo"} | x>-3"#),
    (r#"{app="foo"} | x > +3"#, r#"{app="foo"} | x>3"#),
    (r#"{app="foo"} | x > 1e3"#, r#"{app="foo"} | x>1000"#),
    (r#"{app="foo"} | x > .5"#, r#"{app="foo"} | x>0.5"#),
    (
        r#"{app="foo"} | duration > 1m30s"#,
        r#"{app="foo"} | duration>1m30s"#,
    ),
    (
        r#"{app="foo"} | duration > 90s"#,
        r#"{app="foo"} | duration>1m30s"#,
    ),
    (
        r#"{app="foo"} | duration >= 250ms"#,
        r#"{app="foo"} | duration>=250ms"#,
    ),
    (
        r#"{app="foo"} | duration < 1.5h"#,
        r#"{app="foo"} | duration<1h30m"#,
    ),
    (
        r#"{app="foo"} | duration == 1d"#,
        r#"{app="foo"} | duration==1d"#,
    ),
    (
        r#"{app="foo"} | duration != 2w"#,
        r#"{app="foo"} | duration!=2w"#,
    ),
    (
        r#"{app="foo"} | latency > 500us"#,
        r#"{app="foo"} | latency>500us"#,
    ),
    (
        r#"{app="foo"} | latency > 1500ns"#,
        r#"{app="foo"} | latency>1us500ns"#,
    ),
    (
        r#"{app="foo"} | latency > 1.5us"#,
        r#"{app="foo"} | latency>1us500ns"#,
    ),
    (
        r#"{app="foo"} | latency > 0s"#,
        r#"{app="foo"} | latency>0s"#,
    ),
    (r#"{app="foo"} | delta > -5m"#, r#"{app="foo"} | delta>-5m"#),
    (r#"{app="foo"} | size > 20MB"#, r#"{app="foo"} | size>20MB"#),
    (
        r#"{app="foo"} | size > 1.5KiB"#,
        r#"{app="foo"} | size>1536B"#,
    ),
    (r#"{app="foo"} | size > 42B"#, r#"{app="foo"} | size>42B"#),
    (
        r#"{app="foo"} | size <= 2KiB"#,
        r#"{app="foo"} | size<=2KiB"#,
    ),
    (r#"{app="foo"} | size == 1GB"#, r#"{app="foo"} | size==1GB"#),
    (
        r#"{app="foo"} | size > 1000kB"#,
        r#"{app="foo"} | size>1MB"#,
    ),
    (r#"{app="foo"} | size > 5M"#, r#"{app="foo"} | size>5MB"#),
    (r#"{app="foo"} | size > 0B"#, r#"{app="foo"} | size>0B"#),
    (
        r#"{app="foo"} | addr = ip("192.168.0.0/24")"#,
        r#"{app="foo"} | addr=ip("192.168.0.0/24")"#,
    ),
    (
        r#"{app="foo"} | addr != ip("10.0.0.1")"#,
        r#"{app="foo"} | addr!=ip("10.0.0.1")"#,
    ),
    (
        r#"{app="foo"} | a="1" and b="2""#,
        r#"{app="foo"} | a="1" and b="2""#,
    ),
    (
        r#"{app="foo"} | a="1", b="2""#,
        r#"{app="foo"} | a="1" and b="2""#,
    ),
    (
        r#"{app="foo"} | a="1" b="2""#,
        r#"{app="foo"} | a="1" and b="2""#,
    ),
    (
        r#"{app="foo"} | a="1" or b="2""#,
        r#"{app="foo"} | a="1" or b="2""#,
    ),
    (
        r#"{app="foo"} | a="1" or b="2" and c="3""#,
        r#"{app="foo"} | a="1" or b="2" and c="3""#,
    ),
    (
        r#"{app="foo"} | (a="1" or b="2") and c="3""#,
        r#"{app="foo"} | (a="1" or b="2") and c="3""#,
    ),
    (
        r#"{app="foo"} | a="1" and (b="2" or c="3")"#,
        r#"{app="foo"} | a="1" and (b="2" or c="3")"#,
    ),
    (r#"{app="foo"} | ((a="1"))"#, r#"{app="foo"} | ((a="1"))"#),
    (
        r#"{app="foo"} | duration >= 20ms or size == 20KB and method!~"2..""#,
        r#"{app="foo"} | duration>=20ms or size==20kB and method!~"2..""#,
    ),
    (
        r#"{app="foo"} | __error__="""#,
        r#"{app="foo"} | __error__="""#,
    ),
    (
        r#"{app="foo"} | json | __error__ != "JSONParserErr""#,
        r#"{app="foo"} | json | __error__!="JSONParserErr""#,
    ),
    (
        r#"{app="foo"} | level="error" | status>=500"#,
        r#"{app="foo"} | level="error" | status>=500"#,
    ),
    // --- formatting and label shaping
    (
        r#"{app="foo"} | line_format "{{.a}}""#,
        r#"{app="foo"} | line_format "{{.a}}""#,
    ),
    (
        r#"{app="foo"} | line_format `{{.a}} "q"`"#,
        r#"{app="foo"} | line_format "{{.a}} \"q\"""#,
    ),
    (
        r#"{app="foo"} | label_format a=b"#,
        r#"{app="foo"} | label_format a=b"#,
    ),
    (
        r#"{app="foo"} | label_format a=b, c="{{.d}}""#,
        r#"{app="foo"} | label_format a=b, c="{{.d}}""#,
    ),
    (
        r#"{app="foo"} | label_format c=`{{ .d | ToUpper }}`,e=f"#,
        r#"{app="foo"} | label_format c="{{ .d | ToUpper }}", e=f"#,
    ),
    (r#"{app="foo"} | drop a"#, r#"{app="foo"} | drop a"#),
    (
        r#"{app="foo"} | drop a, b="v", c=~"re.*", d!="x", e!~"y""#,
        r#"{app="foo"} | drop a, b="v", c=~"re.*", d!="x", e!~"y""#,
    ),
    (
        r#"{app="foo"} | drop __error__, __error_details__"#,
        r#"{app="foo"} | drop __error__, __error_details__"#,
    ),
    (
        r#"{app="foo"} | keep a,b="v""#,
        r#"{app="foo"} | keep a, b="v""#,
    ),
    (r#"{app="foo"} | decolorize"#, r#"{app="foo"} | decolorize"#),
    (
        r#"{app="foo"} |= "x" | json | level="error" | line_format "{{.a}}""#,
        r#"{app="foo"} |= "x" | json | level="error" | line_format "{{.a}}""#,
    ),
    // --- range aggregations
    (
        r#"count_over_time({app="foo"}[5m])"#,
        r#"count_over_time({app="foo"}[5m])"#,
    ),
    (
        r#"count_over_time({app="foo"}[300s])"#,
        r#"count_over_time({app="foo"}[5m])"#,
    ),
    (
        r#"count_over_time({app="foo"}[90m])"#,
        r#"count_over_time({app="foo"}[1h30m])"#,
    ),
    (
        r#"count_over_time({app="foo"}[1h30m])"#,
        r#"count_over_time({app="foo"}[1h30m])"#,
    ),
    (
        r#"count_over_time({app="foo"}[24h])"#,
        r#"count_over_time({app="foo"}[1d])"#,
    ),
    (
        r#"count_over_time({app="foo"}[7d])"#,
        r#"count_over_time({app="foo"}[1w])"#,
    ),
    (
        r#"count_over_time({app="foo"}[1500ms])"#,
        r#"count_over_time({app="foo"}[1s500ms])"#,
    ),
    (
        r#"COUNT_OVER_TIME({app="foo"}[5m])"#,
        r#"count_over_time({app="foo"}[5m])"#,
    ),
    (r#"rate({app="foo"}[1m])"#, r#"rate({app="foo"}[1m])"#),
    (
        r#"bytes_over_time({app="foo"}[1m])"#,
        r#"bytes_over_time({app="foo"}[1m])"#,
    ),
    (
        r#"bytes_rate({app="foo"}[1m])"#,
        r#"bytes_rate({app="foo"}[1m])"#,
    ),
    (
        r#"absent_over_time({app="foo"}[1m])"#,
        r#"absent_over_time({app="foo"}[1m])"#,
    ),
    (
        r#"count_over_time({app="foo"} |= "x" [5m])"#,
        r#"count_over_time({app="foo"} |= "x" [5m])"#,
    ),
    (
        r#"count_over_time({app="foo"} |= "x"[5m])"#,
        r#"count_over_time({app="foo"} |= "x" [5m])"#,
    ),
    (
        r#"count_over_time({app="foo"}[5m] |= "x")"#,
        r#"count_over_time({app="foo"} |= "x" [5m])"#,
    ),
    (
        r#"count_over_time({app="foo"}[5m] offset 1h)"#,
        r#"count_over_time({app="foo"}[5m] offset 1h)"#,
    ),
    (
        r#"count_over_time({app="foo"} | json [5m] offset 30s)"#,
        r#"count_over_time({app="foo"} | json [5m] offset 30s)"#,
    ),
    (
        r#"count_over_time({app="foo"}[5m] offset -5m)"#,
        r#"count_over_time({app="foo"}[5m] offset -5m)"#,
    ),
    (
        r#"count_over_time(({app="foo"})[5m])"#,
        r#"count_over_time({app="foo"}[5m])"#,
    ),
    (
        r#"count_over_time(({app="foo"} |= "x")[5m])"#,
        r#"count_over_time({app="foo"} |= "x" [5m])"#,
    ),
    (
        r#"count_over_time(({app="foo"}[5m]))"#,
        r#"count_over_time({app="foo"}[5m])"#,
    ),
    (
        r#"sum_over_time({app="foo"} | unwrap bytes_sent [5m])"#,
        r#"sum_over_time({app="foo"} | unwrap bytes_sent [5m])"#,
    ),
    (
        r#"sum_over_time({app="foo"} | json | unwrap duration(d) [5m])"#,
        r#"sum_over_time({app="foo"} | json | unwrap duration(d) [5m])"#,
    ),
    (
        r#"sum_over_time({app="foo"} | json | unwrap bytes(size) [5m])"#,
        r#"sum_over_time({app="foo"} | json | unwrap bytes(size) [5m])"#,
    ),
    (
        r#"sum_over_time({app="foo"} | json | unwrap duration_seconds(d) [5m])"#,
        r#"sum_over_time({app="foo"} | json | unwrap duration_seconds(d) [5m])"#,
    ),
    (
        r#"sum_over_time({app="foo"} | logfmt | unwrap duration [5m])"#,
        r#"sum_over_time({app="foo"} | logfmt | unwrap duration [5m])"#,
    ),
    (
        r#"sum_over_time({app="foo"} | json | unwrap latency | __error__="" [5m])"#,
        r#"sum_over_time({app="foo"} | json | unwrap latency | __error__="" [5m])"#,
    ),
    (
        r#"sum_over_time({app="foo"} | json | unwrap latency | __error__="" | latency > 10 [5m])"#,
        r#"sum_over_time({app="foo"} | json | unwrap latency | __error__="" | latency>10 [5m])"#,
    ),
    (
        r#"sum_over_time({app="foo"}[5m] | json | unwrap latency)"#,
        r#"sum_over_time({app="foo"} | json | unwrap latency [5m])"#,
    ),
    (
        r#"sum_over_time({app="foo"}[5m] | unwrap latency)"#,
        r#"sum_over_time({app="foo"} | unwrap latency [5m])"#,
    ),
    (
        r#"sum_over_time({app="foo"}[5m] offset 1m | json | unwrap latency)"#,
        r#"sum_over_time({app="foo"} | json | unwrap latency [5m] offset 1m)"#,
    ),
    (
        r#"sum_over_time(({app="foo"} | unwrap x)[5m])"#,
        r#"sum_over_time({app="foo"} | unwrap x [5m])"#,
    ),
    (
        r#"sum_over_time(({app="foo"})[5m] | unwrap x)"#,
        r#"sum_over_time({app="foo"} | unwrap x [5m])"#,
    ),
    (
        r#"avg_over_time({app="foo"} | unwrap x [5m]) by (host)"#,
        r#"avg_over_time({app="foo"} | unwrap x [5m]) by (host)"#,
    ),
    (
        r#"max_over_time({app="foo"} | unwrap x [5m]) without (pod, ns)"#,
        r#"max_over_time({app="foo"} | unwrap x [5m]) without (pod, ns)"#,
    ),
    (
        r#"min_over_time({app="foo"} | unwrap x [5m]) by ()"#,
        r#"min_over_time({app="foo"} | unwrap x [5m]) by ()"#,
    ),
    (
        r#"first_over_time({app="foo"} | unwrap x [5m]) by (a)"#,
        r#"first_over_time({app="foo"} | unwrap x [5m]) by (a)"#,
    ),
    (
        r#"last_over_time({app="foo"} | unwrap x [5m]) by (a)"#,
        r#"last_over_time({app="foo"} | unwrap x [5m]) by (a)"#,
    ),
    (
        r#"stddev_over_time({app="foo"} | unwrap x [5m]) by (a)"#,
        r#"stddev_over_time({app="foo"} | unwrap x [5m]) by (a)"#,
    ),
    (
        r#"stdvar_over_time({app="foo"} | unwrap x [5m]) by (a)"#,
        r#"stdvar_over_time({app="foo"} | unwrap x [5m]) by (a)"#,
    ),
    (
        r#"rate({app="foo"} | unwrap x [5m])"#,
        r#"rate({app="foo"} | unwrap x [5m])"#,
    ),
    (
        r#"rate_counter({app="foo"} | unwrap x [5m])"#,
        r#"rate_counter({app="foo"} | unwrap x [5m])"#,
    ),
    (
        r#"absent_over_time({app="foo"} | unwrap x [5m])"#,
        r#"absent_over_time({app="foo"} | unwrap x [5m])"#,
    ),
    (
        r#"quantile_over_time(0.99, {app="foo"} | json | unwrap latency [5m]) by (path)"#,
        r#"quantile_over_time(0.99, {app="foo"} | json | unwrap latency [5m]) by (path)"#,
    ),
    (
        r#"quantile_over_time(.5,{app="foo"} | unwrap latency [1m])"#,
        r#"quantile_over_time(0.5, {app="foo"} | unwrap latency [1m])"#,
    ),
    (
        r#"quantile_over_time(1,{app="foo"} | unwrap latency [1m])"#,
        r#"quantile_over_time(1, {app="foo"} | unwrap latency [1m])"#,
    ),
    // --- vector aggregations
    (
        r#"sum(count_over_time({app="foo"}[5m]))"#,
        r#"sum(count_over_time({app="foo"}[5m]))"#,
    ),
    (
        r#"sum by (level) (count_over_time({app="foo"}[5m]))"#,
        r#"sum by (level) (count_over_time({app="foo"}[5m]))"#,
    ),
    (
        r#"sum(count_over_time({app="foo"}[5m])) by (level)"#,
        r#"sum by (level) (count_over_time({app="foo"}[5m]))"#,
    ),
    (
        r#"sum by(a,b)(rate({app="foo"}[5m]))"#,
        r#"sum by (a, b) (rate({app="foo"}[5m]))"#,
    ),
    (
        r#"sum without (a) (rate({app="foo"}[5m]))"#,
        r#"sum without (a) (rate({app="foo"}[5m]))"#,
    ),
    (
        r#"sum by () (rate({app="foo"}[5m]))"#,
        r#"sum by () (rate({app="foo"}[5m]))"#,
    ),
    (
        r#"SUM BY (a) (rate({app="foo"}[5m]))"#,
        r#"sum by (a) (rate({app="foo"}[5m]))"#,
    ),
    (
        r#"avg(rate({app="foo"}[5m]))"#,
        r#"avg(rate({app="foo"}[5m]))"#,
    ),
    (
        r#"min(rate({app="foo"}[5m]))"#,
        r#"min(rate({app="foo"}[5m]))"#,
    ),
    (
        r#"max(rate({app="foo"}[5m]))"#,
        r#"max(rate({app="foo"}[5m]))"#,
    ),
    (
        r#"count(rate({app="foo"}[5m]))"#,
        r#"count(rate({app="foo"}[5m]))"#,
    ),
    (
        r#"stddev(rate({app="foo"}[5m]))"#,
        r#"stddev(rate({app="foo"}[5m]))"#,
    ),
    (
        r#"stdvar(rate({app="foo"}[5m]))"#,
        r#"stdvar(rate({app="foo"}[5m]))"#,
    ),
    (
        r#"topk(5, rate({app="foo"}[5m]))"#,
        r#"topk(5, rate({app="foo"}[5m]))"#,
    ),
    (
        r#"topk(5,rate({app="foo"}[5m])) by (a)"#,
        r#"topk by (a) (5, rate({app="foo"}[5m]))"#,
    ),
    (
        r#"bottomk by (a) (3, rate({app="foo"}[5m]))"#,
        r#"bottomk by (a) (3, rate({app="foo"}[5m]))"#,
    ),
    (
        r#"sort(rate({app="foo"}[5m]))"#,
        r#"sort(rate({app="foo"}[5m]))"#,
    ),
    (
        r#"sort_desc(rate({app="foo"}[5m]))"#,
        r#"sort_desc(rate({app="foo"}[5m]))"#,
    ),
    (
        r#"approx_topk(10, rate({app="foo"}[5m]))"#,
        r#"approx_topk(10, rate({app="foo"}[5m]))"#,
    ),
    (
        r#"sum(sum by (a) (rate({app="foo"}[5m])))"#,
        r#"sum(sum by (a) (rate({app="foo"}[5m])))"#,
    ),
    (
        r#"sum((rate({app="foo"}[5m])))"#,
        r#"sum((rate({app="foo"}[5m])))"#,
    ),
    (
        r#"sum(rate({app="foo"}[5m]) * 2)"#,
        r#"sum(rate({app="foo"}[5m]) * 2)"#,
    ),
    // --- binary operators, literals, functions
    (r#"1"#, r#"1"#),
    (r#"-1.5"#, r#"-1.5"#),
    (r#"+2"#, r#"2"#),
    (r#"1e3"#, r#"1000"#),
    (r#"2.5E-3"#, r#"0.0025"#),
    (r#"0x1p3"#, r#"8"#),
    (r#"0x1.8p1 + 0"#, r#"3 + 0"#),
    (r#"1 + 2 * 3"#, r#"1 + 2 * 3"#),
    (r#"(1 + 2) * 3"#, r#"(1 + 2) * 3"#),
    (r#"1 - 2 - 3"#, r#"1 - 2 - 3"#),
    (r#"1 - (2 - 3)"#, r#"1 - (2 - 3)"#),
    (r#"2 ^ 3 ^ 2"#, r#"2 ^ 3 ^ 2"#),
    (r#"(2 ^ 3) ^ 2"#, r#"(2 ^ 3) ^ 2"#),
    (r#"1 - -1"#, r#"1 - -1"#),
    (r#"2*-1"#, r#"2 * -1"#),
    (r#"10 % 3"#, r#"10 % 3"#),
    (r#"1 == bool 1"#, r#"1 == bool 1"#),
    (r#"vector(1)"#, r#"vector(1)"#),
    (r#"vector(0.5)"#, r#"vector(0.5)"#),
    (
        r#"rate({app="foo"}[1m]) * 100"#,
        r#"rate({app="foo"}[1m]) * 100"#,
    ),
    (
        r#"rate({app="foo"}[1m]) > 10"#,
        r#"rate({app="foo"}[1m]) > 10"#,
    ),
    (
        r#"rate({app="foo"}[1m]) >= bool 10"#,
        r#"rate({app="foo"}[1m]) >= bool 10"#,
    ),
    (
        r#"rate({app="foo"}[1m]) != 0"#,
        r#"rate({app="foo"}[1m]) != 0"#,
    ),
    (
        r#"rate({app="foo"}[1m]) < 1 or rate({app="bar"}[1m])"#,
        r#"rate({app="foo"}[1m]) < 1 or rate({app="bar"}[1m])"#,
    ),
    (
        r#"rate({app="a"}[1m]) and rate({app="b"}[1m]) or rate({app="c"}[1m])"#,
        r#"rate({app="a"}[1m]) and rate({app="b"}[1m]) or rate({app="c"}[1m])"#,
    ),
    (
        r#"rate({app="a"}[1m]) or rate({app="b"}[1m]) unless rate({app="c"}[1m])"#,
        r#"rate({app="a"}[1m]) or rate({app="b"}[1m]) unless rate({app="c"}[1m])"#,
    ),
    (
        r#"sum(rate({app="a"}[1m])) / on (x) sum(rate({app="b"}[1m]))"#,
        r#"sum(rate({app="a"}[1m])) / on (x) sum(rate({app="b"}[1m]))"#,
    ),
    (
        r#"sum(rate({app="a"}[1m])) / ignoring(x,y) sum(rate({app="b"}[1m]))"#,
        r#"sum(rate({app="a"}[1m])) / ignoring (x, y) sum(rate({app="b"}[1m]))"#,
    ),
    (
        r#"sum(rate({app="a"}[1m])) * on (x) group_left sum(rate({app="b"}[1m]))"#,
        r#"sum(rate({app="a"}[1m])) * on (x) group_left sum(rate({app="b"}[1m]))"#,
    ),
    (
        r#"sum(rate({app="a"}[1m])) * on (x) group_left (y, z) sum(rate({app="b"}[1m]))"#,
        r#"sum(rate({app="a"}[1m])) * on (x) group_left (y, z) sum(rate({app="b"}[1m]))"#,
    ),
    (
        r#"sum(rate({app="a"}[1m])) * on (x) group_right() sum(rate({app="b"}[1m]))"#,
        r#"sum(rate({app="a"}[1m])) * on (x) group_right sum(rate({app="b"}[1m]))"#,
    ),
    (
        r#"sum(rate({app="a"}[1m])) > bool on () sum(rate({app="b"}[1m]))"#,
        r#"sum(rate({app="a"}[1m])) > bool on () sum(rate({app="b"}[1m]))"#,
    ),
    (
        r#"label_replace(rate({app="foo"}[1m]), "dst", "$1", "src", "(.*)")"#,
        r#"label_replace(rate({app="foo"}[1m]), "dst", "$1", "src", "(.*)")"#,
    ),
    (
        r#"label_replace(sum by (a) (rate({app="foo"}[1m])),"b","x-$1","a","(.+)")"#,
        r#"label_replace(sum by (a) (rate({app="foo"}[1m])), "b", "x-$1", "a", "(.+)")"#,
    ),
    (
        r#"(sum(rate({app="foo"}[1m])))"#,
        r#"(sum(rate({app="foo"}[1m])))"#,
    ),
    (
        r#"sum(count_over_time({app="foo"}[5m])) or vector(0)"#,
        r#"sum(count_over_time({app="foo"}[5m])) or vector(0)"#,
    ),
    (
        "sum(\n  rate({app=\"foo\"}[5m])\n) by (x)",
        r#"sum by (x) (rate({app="foo"}[5m]))"#,
    ),
    // names that are keywords only before "(": plain label names elsewhere
    (
        r#"{rate="x", sum="y", bytes="z", ip="w", vector="v"}"#,
        r#"{rate="x", sum="y", bytes="z", ip="w", vector="v"}"#,
    ),
    (
        r#"sum by (count) (rate({app="foo"}[5m]))"#,
        r#"sum by (count) (rate({app="foo"}[5m]))"#,
    ),
    (
        r#"{app="foo"} | json rate, duration="d""#,
        r#"{app="foo"} | json rate, duration="d""#,
    ),
    (
        r#"{app="foo"} | bytes > 10KB"#,
        r#"{app="foo"} | bytes>10kB"#,
    ),
];

/// More valid queries with their canonical print (checked by hand).
const VALID: &[(&str, &str)] = &[
    (
        r#"{app="foo"} |= "a" |= "b" |= "c" != "d" |~ "e" !~ "f" |> "<_>g" !> "h<_>""#,
        r#"{app="foo"} |= "a" |= "b" |= "c" != "d" |~ "e" !~ "f" |> "<_>g" !> "h<_>""#,
    ),
    (
        r#"{app="foo"} | json | line_format "{{.message}}" |= "error" | logfmt | level="error""#,
        r#"{app="foo"} | json | line_format "{{.message}}" |= "error" | logfmt | level="error""#,
    ),
    (
        r#"{app="foo"} | json | label_format level=lvl | level="error""#,
        r#"{app="foo"} | json | label_format level=lvl | level="error""#,
    ),
    (
        r#"{app="foo"} | logfmt --keep-empty"#,
        r#"{app="foo"} | logfmt --keep-empty"#,
    ),
    (
        r#"{app="foo"} | logfmt --strict --keep-empty a, b="c", d"#,
        r#"{app="foo"} | logfmt --strict --keep-empty a, b="c", d"#,
    ),
    (
        r#"{app="foo"} | json | keep level, app | drop app"#,
        r#"{app="foo"} | json | keep level, app | drop app"#,
    ),
    (
        r#"{app="foo"} | pattern "<_> <a>" | a=~"x.*" | line_format "{{.a}}""#,
        r#"{app="foo"} | pattern "<_> <a>" | a=~"x.*" | line_format "{{.a}}""#,
    ),
    (
        r#"{app="foo"} | regexp "(?P<a>\\d+)" | a > 10 and a < 20 or a == 100"#,
        r#"{app="foo"} | regexp "(?P<a>\\d+)" | a>10 and a<20 or a==100"#,
    ),
    (
        r#"{app="foo"} | a > 1 and b > 2 and c > 3"#,
        r#"{app="foo"} | a>1 and b>2 and c>3"#,
    ),
    (
        r#"{app="foo"} | a > 1 or b > 2 or c > 3"#,
        r#"{app="foo"} | a>1 or b>2 or c>3"#,
    ),
    (
        r#"{app="foo"} | a > 1 or (b > 2 or c > 3)"#,
        r#"{app="foo"} | a>1 or (b>2 or c>3)"#,
    ),
    (
        r#"{app="foo"} | (a > 1 and b > 2) or (c > 3 and d > 4)"#,
        r#"{app="foo"} | (a>1 and b>2) or (c>3 and d>4)"#,
    ),
    (
        r#"{app="foo"} | a > 1, b > 2 c > 3 and d > 4"#,
        r#"{app="foo"} | a>1 and b>2 and c>3 and d>4"#,
    ),
    (
        r#"{app="foo"} | a = ip("10.0.0.0/8") or b != ip("::1")"#,
        r#"{app="foo"} | a=ip("10.0.0.0/8") or b!=ip("::1")"#,
    ),
    (
        r#"{app="foo"} | duration > 1h2m3s4ms"#,
        r#"{app="foo"} | duration>1h2m3s4ms"#,
    ),
    (r#"{app="foo"} | d > 1y"#, r#"{app="foo"} | d>1y"#),
    (r#"{app="foo"} | d > 1ns"#, r#"{app="foo"} | d>1ns"#),
    (r#"{app="foo"} | d > 2.5s"#, r#"{app="foo"} | d>2s500ms"#),
    (
        r#"{app="foo"} | d > 1h0m0.000000001s"#,
        r#"{app="foo"} | d>1h1ns"#,
    ),
    (
        r#"{app="foo"} | s > 1TiB or s > 1PB or s > 3GiB or s > 7MiB"#,
        r#"{app="foo"} | s>1TiB or s>1PB or s>3GiB or s>7MiB"#,
    ),
    (
        r#"{app="foo"} | line_format "{{ __line__ | ToUpper }} {{ __timestamp__ }}""#,
        r#"{app="foo"} | line_format "{{ __line__ | ToUpper }} {{ __timestamp__ }}""#,
    ),
    (
        r#"{app="foo"} | label_format ts="{{ unixEpochMillis __timestamp__ }}", lvl=level, x="\t""#,
        r#"{app="foo"} | label_format ts="{{ unixEpochMillis __timestamp__ }}", lvl=level, x="\t""#,
    ),
    (
        r#"{app="foo"} |= "\"quoted\"" != `back\tick`"#,
        r#"{app="foo"} |= "\"quoted\"" != "back\\tick""#,
    ),
    // U+2028 is kept as is (Go's strconv.Quote would escape it).
    (
        r#"{app="foo"} |= "\x7f\u2028""#,
        "{app=\"foo\"} |= \"\\x7f\u{2028}\"",
    ),
    (
        r#"{app="foo"} |= "日本語" | json name="名前""#,
        r#"{app="foo"} |= "日本語" | json name="名前""#,
    ),
    (r#"{app="foo", 名前="x"}"#, r#"{app="foo", 名前="x"}"#),
    (
        r#"{app="foo"} | json | __error__="" | __error_details__!="x""#,
        r#"{app="foo"} | json | __error__="" | __error_details__!="x""#,
    ),
    (
        r#"{app="foo"} | unpack | line_format "{{._entry}}""#,
        r#"{app="foo"} | unpack | line_format "{{._entry}}""#,
    ),
    (
        r#"{app="foo"} | decolorize | json"#,
        r#"{app="foo"} | decolorize | json"#,
    ),
    (
        r#"count_over_time({app="foo"} | json | level="error" [1m])"#,
        r#"count_over_time({app="foo"} | json | level="error" [1m])"#,
    ),
    (
        r#"count_over_time({app="foo"} | pattern "<_> <status> <_>" | status >= 500 [1m])"#,
        r#"count_over_time({app="foo"} | pattern "<_> <status> <_>" | status>=500 [1m])"#,
    ),
    (
        r#"count_over_time({app="foo"}[1m] offset 1d)"#,
        r#"count_over_time({app="foo"}[1m] offset 1d)"#,
    ),
    (
        r#"count_over_time({app="foo"}[1y])"#,
        r#"count_over_time({app="foo"}[1y])"#,
    ),
    (
        r#"count_over_time({app="foo"}[1d12h])"#,
        r#"count_over_time({app="foo"}[1d12h])"#,
    ),
    (
        r#"count_over_time({app="foo"}[0s])"#,
        r#"count_over_time({app="foo"}[0s])"#,
    ),
    (
        r#"count_over_time({app="foo"}[10ms])"#,
        r#"count_over_time({app="foo"}[10ms])"#,
    ),
    (
        r#"count_over_time({app="foo"}[5m] offset 1h30m)"#,
        r#"count_over_time({app="foo"}[5m] offset 1h30m)"#,
    ),
    (
        r#"count_over_time({app="foo"}[5m] offset 10s)"#,
        r#"count_over_time({app="foo"}[5m] offset 10s)"#,
    ),
    (
        r#"count_over_time({app="foo"}[5m] offset 250ms)"#,
        r#"count_over_time({app="foo"}[5m] offset 250ms)"#,
    ),
    (
        r#"rate({app="foo"} |= "x" | logfmt | label_format a=b [1m])"#,
        r#"rate({app="foo"} |= "x" | logfmt | label_format a=b [1m])"#,
    ),
    (
        r#"bytes_rate({app="foo"} | decolorize [1m])"#,
        r#"bytes_rate({app="foo"} | decolorize [1m])"#,
    ),
    (
        r#"sum_over_time({app="foo"} | logfmt | unwrap bytes(size) | __error__="" [1m])"#,
        r#"sum_over_time({app="foo"} | logfmt | unwrap bytes(size) | __error__="" [1m])"#,
    ),
    (
        r#"avg_over_time({app="foo"} | json | unwrap duration_seconds(d) | d > 0 [1m]) by (a, b)"#,
        r#"avg_over_time({app="foo"} | json | unwrap duration_seconds(d) | d>0 [1m]) by (a, b)"#,
    ),
    (
        r#"quantile_over_time(0.5, {app="foo"} | logfmt | unwrap latency [1m]) without (pod)"#,
        r#"quantile_over_time(0.5, {app="foo"} | logfmt | unwrap latency [1m]) without (pod)"#,
    ),
    (
        r#"quantile_over_time(0.999, {app="foo"} | json | unwrap latency | latency < 10 and latency > 1 [1m])"#,
        r#"quantile_over_time(0.999, {app="foo"} | json | unwrap latency | latency<10 and latency>1 [1m])"#,
    ),
    (
        r#"max_over_time({app="foo"}[1m] | json | unwrap x | x > 0)"#,
        r#"max_over_time({app="foo"} | json | unwrap x | x>0 [1m])"#,
    ),
    (
        r#"stddev_over_time({app="foo"} | unwrap x [1m] offset 1m) by (a)"#,
        r#"stddev_over_time({app="foo"} | unwrap x [1m] offset 1m) by (a)"#,
    ),
    (
        r#"sum by (a) (count_over_time({app="foo"}[1m])) / sum by (a) (count_over_time({app="bar"}[1m]))"#,
        r#"sum by (a) (count_over_time({app="foo"}[1m])) / sum by (a) (count_over_time({app="bar"}[1m]))"#,
    ),
    (
        r#"sum(rate({app="foo"}[1m])) by (a) > 0.5 and sum(rate({app="bar"}[1m])) by (a) < 10"#,
        r#"sum by (a) (rate({app="foo"}[1m])) > 0.5 and sum by (a) (rate({app="bar"}[1m])) < 10"#,
    ),
    (
        r#"1 + 2 - 3 * 4 / 5 % 6 ^ 7"#,
        r#"1 + 2 - 3 * 4 / 5 % 6 ^ 7"#,
    ),
    (r#"((1 + 2)) * (3)"#, r#"((1 + 2)) * (3)"#),
    (r#"1 < bool 2 == bool 1"#, r#"1 < bool 2 == bool 1"#),
    (
        r#"(1 > bool 2) + (3 <= bool 4)"#,
        r#"(1 > bool 2) + (3 <= bool 4)"#,
    ),
    (r#"-1 ^ 2"#, r#"-1 ^ 2"#),
    (r#"2 ^ -1"#, r#"2 ^ -1"#),
    (r#"vector(1) + vector(2)"#, r#"vector(1) + vector(2)"#),
    (
        r#"vector(1) * on () group_left vector(2)"#,
        r#"vector(1) * on () group_left vector(2)"#,
    ),
    (
        r#"sum(rate({app="a"}[1m])) - on (x) group_right (y) sum(rate({app="b"}[1m]))"#,
        r#"sum(rate({app="a"}[1m])) - on (x) group_right (y) sum(rate({app="b"}[1m]))"#,
    ),
    (
        r#"sum(rate({app="a"}[1m])) == ignoring () sum(rate({app="b"}[1m]))"#,
        r#"sum(rate({app="a"}[1m])) == ignoring () sum(rate({app="b"}[1m]))"#,
    ),
    (
        r#"sum(rate({app="a"}[1m])) == bool ignoring (q) group_left () sum(rate({app="b"}[1m]))"#,
        r#"sum(rate({app="a"}[1m])) == bool ignoring (q) group_left sum(rate({app="b"}[1m]))"#,
    ),
    (
        r#"rate({app="a"}[1m]) unless on (x) rate({app="b"}[1m])"#,
        r#"rate({app="a"}[1m]) unless on (x) rate({app="b"}[1m])"#,
    ),
    (
        r#"rate({app="a"}[1m]) and ignoring (x) rate({app="b"}[1m])"#,
        r#"rate({app="a"}[1m]) and ignoring (x) rate({app="b"}[1m])"#,
    ),
    (
        r#"topk(1, topk(2, rate({app="a"}[1m])))"#,
        r#"topk(1, topk(2, rate({app="a"}[1m])))"#,
    ),
    (
        r#"bottomk by (a) (1, sum by (a, b) (rate({app="a"}[1m])))"#,
        r#"bottomk by (a) (1, sum by (a, b) (rate({app="a"}[1m])))"#,
    ),
    (
        r#"sort_desc(sum by (a) (rate({app="a"}[1m])))"#,
        r#"sort_desc(sum by (a) (rate({app="a"}[1m])))"#,
    ),
    (
        r#"sort(sum(rate({app="a"}[1m])))"#,
        r#"sort(sum(rate({app="a"}[1m])))"#,
    ),
    (
        r#"sort by () (rate({app="a"}[1m]))"#,
        r#"sort by () (rate({app="a"}[1m]))"#,
    ),
    (
        r#"count(count by (a) (rate({app="a"}[1m])))"#,
        r#"count(count by (a) (rate({app="a"}[1m])))"#,
    ),
    (
        r#"avg without () (rate({app="a"}[1m]))"#,
        r#"avg without () (rate({app="a"}[1m]))"#,
    ),
    (
        r#"label_replace(vector(1), "a", "b", "", "")"#,
        r#"label_replace(vector(1), "a", "b", "", "")"#,
    ),
    (
        r#"label_replace(label_replace(rate({app="a"}[1m]), "x", "$1", "a", "(.*)"), "y", "$1", "x", "(.*)")"#,
        r#"label_replace(label_replace(rate({app="a"}[1m]), "x", "$1", "a", "(.*)"), "y", "$1", "x", "(.*)")"#,
    ),
    (
        r#"sum(rate({app="a"}[1m])) * 100 / on () group_left sum(rate({app="b"}[1m]))"#,
        r#"sum(rate({app="a"}[1m])) * 100 / on () group_left sum(rate({app="b"}[1m]))"#,
    ),
    (
        r#"max by (a) (rate({app="a"}[1m])) > bool ignoring (a) avg(rate({app="a"}[1m]))"#,
        r#"max by (a) (rate({app="a"}[1m])) > bool ignoring (a) avg(rate({app="a"}[1m]))"#,
    ),
    (
        r#"sum(count_over_time({app="a"}[1m])) or on () vector(0)"#,
        r#"sum(count_over_time({app="a"}[1m])) or on () vector(0)"#,
    ),
    (
        r#"absent_over_time({app="a"} |= "x" [1h])"#,
        r#"absent_over_time({app="a"} |= "x" [1h])"#,
    ),
    (
        r#"rate({app="a"}[1m]) > 1 or rate({app="a"}[1m]) < -1"#,
        r#"rate({app="a"}[1m]) > 1 or rate({app="a"}[1m]) < -1"#,
    ),
    (r#"0.5"#, r#"0.5"#),
    (r#"- 0"#, r#"0"#),
    (r#"{app="foo"} |~ "a[""#, r#"{app="foo"} |~ "a[""#),
    (r#"100000000000000000000000"#, r#"100000000000000000000000"#),
];

/// Queries from Loki's LogQL documentation (docs/sources/query/).
const DOCS: &[(&str, &str)] = &[
    (r#"0.000001"#, r#"0.000001"#),
    (r#"{service_name="nginx", status="500"}"#, r#"{service_name="nginx", status="500"}"#),
    (r#"{job_name="myapp"} |= "3.180.71.3""#, r#"{job_name="myapp"} |= "3.180.71.3""#),
    (r#"{job_name="myapp"} |= ip("192.168.4.5/16")"#, r#"{job_name="myapp"} |= ip("192.168.4.5/16")"#),
    (r#"{job_name="myapp"} != ip("192.168.4.5-192.168.4.20")"#, r#"{job_name="myapp"} != ip("192.168.4.5-192.168.4.20")"#),
    ("{job_name=\"myapp\"}\n\t\t| logfmt\n\t\t| remote_addr = ip(\"2001:db8::1-2001:db8::8\")\n\t\t| level = \"error\"", r#"{job_name="myapp"} | logfmt | remote_addr=ip("2001:db8::1-2001:db8::8") | level="error""#),
    ("{job_name=\"myapp\"}\n\t\t| logfmt\n\t\t| addr = ip(\"192.168.4.5/16\")\n\t\t| addr != ip(\"192.168.4.2\")", r#"{job_name="myapp"} | logfmt | addr=ip("192.168.4.5/16") | addr!=ip("192.168.4.2")"#),
    ("{job_name=\"myapp\"}\n\t\t| logfmt\n\t\t| addr = ip(\"192.168.4.0/24\") or addr = ip(\"10.10.15.0/24\")", r#"{job_name="myapp"} | logfmt | addr=ip("192.168.4.0/24") or addr=ip("10.10.15.0/24")"#),
    (r#"{container="query-frontend",namespace="loki-dev"} |= "metrics.go" | logfmt | duration > 10s and throughput_mb < 500"#, r#"{container="query-frontend", namespace="loki-dev"} |= "metrics.go" | logfmt | duration>10s and throughput_mb<500"#),
    (r#"{app="mysql",name="mysql-backup"}"#, r#"{app="mysql", name="mysql-backup"}"#),
    (r#"{job="mysql"} |= "error""#, r#"{job="mysql"} |= "error""#),
    (r#"{instance=~"kafka-[23]",name="kafka"} != "kafka.server:type=ReplicaManager""#, r#"{instance=~"kafka-[23]", name="kafka"} != "kafka.server:type=ReplicaManager""#),
    (r#"{name="kafka"} |~ "tsdb-ops.*io:2003""#, r#"{name="kafka"} |~ "tsdb-ops.*io:2003""#),
    (r#"{name="cassandra"} |~  `error=\w+`"#, r#"{name="cassandra"} |~ "error=\\w+""#),
    (r#"{job="mysql"} |= "error" != "timeout""#, r#"{job="mysql"} |= "error" != "timeout""#),
    (r#"{job="mysql"} |= "error" | json | line_format "{{.err}}""#, r#"{job="mysql"} |= "error" | json | line_format "{{.err}}""#),
    (r#"{job="mysql"} | json | line_format "{{.message}}" |= "error""#, r#"{job="mysql"} | json | line_format "{{.message}}" |= "error""#),
    (r#"{job="example"} | decolorize"#, r#"{job="example"} | decolorize"#),
    (r#"{a_b_c="d", e="f"}"#, r#"{a_b_c="d", e="f"}"#),
    (r#"{container="frontend"} | logfmt | line_format "{{.query}} {{.duration}}""#, r#"{container="frontend"} | logfmt | line_format "{{.query}} {{.duration}}""#),
    (r#"{container="frontend"} | logfmt | line_format "{{.ip}} {{.status}} {{div .duration 1000}}""#, r#"{container="frontend"} | logfmt | line_format "{{.ip}} {{.status}} {{div .duration 1000}}""#),
    (r#"{container="query-frontend",namespace="loki-dev"}"#, r#"{container="query-frontend", namespace="loki-dev"}"#),
    (r#"{name =~ "mysql.+"}"#, r#"{name=~"mysql.+"}"#),
    (r#"{name =~ ".*mysql.*"}"#, r#"{name=~".*mysql.*"}"#),
    (r#"{job="varlogs"}|json|drop level, method="GET""#, r#"{job="varlogs"} | json | drop level, method="GET""#),
    (r#"{job="varlogs"}|json|drop __error__"#, r#"{job="varlogs"} | json | drop __error__"#),
    (r#"{job="varlogs"}|json|drop level, path, app=~"some-api.*""#, r#"{job="varlogs"} | json | drop level, path, app=~"some-api.*""#),
    (r#"{job="varlogs"}|json|keep level, method="GET""#, r#"{job="varlogs"} | json | keep level, method="GET""#),
    (r#"{job="varlogs"}|json|keep level, tenant, app=~"some-api.*""#, r#"{job="varlogs"} | json | keep level, tenant, app=~"some-api.*""#),
    (r#"count_over_time({job="mysql"}[5m])"#, r#"count_over_time({job="mysql"}[5m])"#),
    (r#"sum by (host) (rate({job="mysql"} |= "error" != "timeout" | json | duration > 10s [1m]))"#, r#"sum by (host) (rate({job="mysql"} |= "error" != "timeout" | json | duration>10s [1m]))"#),
    ("sum(count_over_time({namespace=\"traefik\"}[5m])) # will return nothing\n      or\n    vector(0) # will return 0", r#"sum(count_over_time({namespace="traefik"}[5m])) or vector(0)"#),
    ("{job=\"security\"} \n        |~ \"Invalid user.*\"\n        | regexp \"(^(?P<user>\\\\S+ {1,2}){8})\"\n        | regexp \"(^(?P<ip>\\\\S+ {1,2}){10})\"\n        | line_format \"IP = {{.ip}}\\tUSER = {{.user}}\"", r#"{job="security"} |~ "Invalid user.*" | regexp "(^(?P<user>\\S+ {1,2}){8})" | regexp "(^(?P<ip>\\S+ {1,2}){10})" | line_format "IP = {{.ip}}\tUSER = {{.user}}""#),
    ("{job=\"security\"}\n        != \"grafana_com\"\n        |= \"session opened\"\n        != \"sudo: \"\n        | regexp \"(^(?P<user>\\\\S+ {1,2}){11})\"\n        | line_format \"USER = {{.user}}\"", r#"{job="security"} != "grafana_com" |= "session opened" != "sudo: " | regexp "(^(?P<user>\\S+ {1,2}){11})" | line_format "USER = {{.user}}""#),
    ("sum by (host) (rate({job=\"mysql\"}\n        |= \"error\" != \"timeout\"\n        | json\n        | duration > 10s [1m]))", r#"sum by (host) (rate({job="mysql"} |= "error" != "timeout" | json | duration>10s [1m]))"#),
    (r#"{cluster="ops-tools1", namespace="loki-dev", job="loki-dev/query-frontend"} |= "metrics.go" != "out of order" | logfmt | duration > 30s or status_code != "200""#, r#"{cluster="ops-tools1", namespace="loki-dev", job="loki-dev/query-frontend"} |= "metrics.go" != "out of order" | logfmt | duration>30s or status_code!="200""#),
    (r#"{cluster="ops-tools1", namespace="loki-dev", job="loki-dev/query-frontend"}"#, r#"{cluster="ops-tools1", namespace="loki-dev", job="loki-dev/query-frontend"}"#),
    (r#"{job="loki-ops/query-frontend"} | logfmt | line_format "{{.msg}}" | regexp "(?P<method>\\w+) (?P<path>[\\w|/]+) \\((?P<status>\\d+?)\\) (?P<duration>.*)""#, r#"{job="loki-ops/query-frontend"} | logfmt | line_format "{{.msg}}" | regexp "(?P<method>\\w+) (?P<path>[\\w|/]+) \\((?P<status>\\d+?)\\) (?P<duration>.*)""#),
    ("{cluster=\"ops-tools1\", name=\"querier\", namespace=\"loki-dev\"}\n  |= \"metrics.go\" != \"loki-canary\"\n  | logfmt\n  | query != \"\"\n  | label_format query=\"{{ Replace .query \\\"\\\\n\\\" \\\"\\\" -1 }}\"\n  | line_format \"{{ .ts}}\\t{{.duration}}\\ttraceID = {{.traceID}}\\t{{ printf \\\"%-100.100s\\\" .query }} \"", r#"{cluster="ops-tools1", name="querier", namespace="loki-dev"} |= "metrics.go" != "loki-canary" | logfmt | query!="" | label_format query="{{ Replace .query \"\\n\" \"\" -1 }}" | line_format "{{ .ts}}\t{{.duration}}\ttraceID = {{.traceID}}\t{{ printf \"%-100.100s\" .query }} ""#),
    ("quantile_over_time(0.99,\n      {cluster=\"ops-tools1\",container=\"ingress-nginx\"}\n        | json\n        | __error__ = \"\"\n        | unwrap request_time [1m]) by (path)", r#"quantile_over_time(0.99, {cluster="ops-tools1", container="ingress-nginx"} | json | __error__="" | unwrap request_time [1m]) by (path)"#),
    ("sum by (org_id) (\n      sum_over_time(\n      {cluster=\"ops-tools1\",container=\"loki-dev\"}\n          |= \"metrics.go\"\n          | logfmt\n          | unwrap bytes_processed [1m])\n      )", r#"sum by (org_id) (sum_over_time({cluster="ops-tools1", container="loki-dev"} |= "metrics.go" | logfmt | unwrap bytes_processed [1m]))"#),
    (r#"topk(10,sum(rate({region="us-east1"}[5m])) by (name))"#, r#"topk(10, sum by (name) (rate({region="us-east1"}[5m])))"#),
    (r#"sum(count_over_time({job="mysql"}[5m])) by (level)"#, r#"sum by (level) (count_over_time({job="mysql"}[5m]))"#),
    (r#"avg(rate(({job="nginx"} |= "GET" | json | path="/home")[10s])) by (region)"#, r#"avg by (region) (rate({job="nginx"} |= "GET" | json | path="/home" [10s]))"#),
    (r#"1 + 1"#, r#"1 + 1"#),
    (r#"sum(rate({app="foo"}[1m])) * 2"#, r#"sum(rate({app="foo"}[1m])) * 2"#),
    (r#"sum(rate({app="foo", level="warn"}[1m])) / sum(rate({app="foo", level="error"}[1m]))"#, r#"sum(rate({app="foo", level="warn"}[1m])) / sum(rate({app="foo", level="error"}[1m]))"#),
    (r#"rate({app=~"foo|bar"}[1m]) and rate({app="bar"}[1m])"#, r#"rate({app=~"foo|bar"}[1m]) and rate({app="bar"}[1m])"#),
    (r#"count_over_time({foo="bar"}[1m]) > 10"#, r#"count_over_time({foo="bar"}[1m]) > 10"#),
    (r#"count_over_time({foo="bar"}[1m]) > bool 10"#, r#"count_over_time({foo="bar"}[1m]) > bool 10"#),
    (r#"sum without(app) (count_over_time({app="foo"}[1m])) > sum without(app) (count_over_time({app="bar"}[1m]))"#, r#"sum without (app) (count_over_time({app="foo"}[1m])) > sum without (app) (count_over_time({app="bar"}[1m]))"#),
    (r#"sum without(app) (count_over_time({app="foo"}[1m])) > bool sum without(app) (count_over_time({app="bar"}[1m]))"#, r#"sum without (app) (count_over_time({app="foo"}[1m])) > bool sum without (app) (count_over_time({app="bar"}[1m]))"#),
    (r#"{service_name=`distributor`} |> `<_> caller=http.go:194 level=debug <_> msg="POST /push.v1.PusherService/Push <_>`"#, r#"{service_name="distributor"} |> "<_> caller=http.go:194 level=debug <_> msg=\"POST /push.v1.PusherService/Push <_>""#),
    (r#"{service_name=`distributor`} !> `<_> caller=http.go:194 level=debug <_> msg="POST /push.v1.PusherService/Push <_>`"#, r#"{service_name="distributor"} !> "<_> caller=http.go:194 level=debug <_> msg=\"POST /push.v1.PusherService/Push <_>""#),
    (r#"max by(machine) (count_over_time({app="foo"}[1m])) > bool ignoring(machine) avg(count_over_time({app="foo"}[1m]))"#, r#"max by (machine) (count_over_time({app="foo"}[1m])) > bool ignoring (machine) avg(count_over_time({app="foo"}[1m]))"#),
    (r#"sum by(machine) (count_over_time({app="foo"}[1m])) / on() sum(count_over_time({app="foo"}[1m]))"#, r#"sum by (machine) (count_over_time({app="foo"}[1m])) / on () sum(count_over_time({app="foo"}[1m]))"#),
    ("sum by (app, status) (\n  rate(\n    {job=\"http-server\"}\n      | json\n      [5m]\n  )\n)\n/ on (app) group_left\nsum by (app) (\n  rate(\n    {job=\"http-server\"}\n      | json\n      [5m]\n  )\n)", r#"sum by (app, status) (rate({job="http-server"} | json [5m])) / on (app) group_left sum by (app) (rate({job="http-server"} | json [5m]))"#),
    ("sum by (user, namespace) (\n  rate(\n    {job=\"events\"}\n      | logfmt\n      | discarded=\"true\"\n      [5m]\n  )\n)\n* on (user) group_left(organization)\nmax_over_time(\n  {job=\"cost-calculator\"}\n    | logfmt\n    | unwrap cost\n    [5m]\n) by (user, organization)", r#"sum by (user, namespace) (rate({job="events"} | logfmt | discarded="true" [5m])) * on (user) group_left (organization) max_over_time({job="cost-calculator"} | logfmt | unwrap cost [5m]) by (user, organization)"#),
    (r#"{app="foo"} # anything that comes after will not be interpreted in your query"#, r#"{app="foo"}"#),
    ("{app=\"foo\"}\n    | json\n    # this line will be ignored\n    | bar=\"baz\" # this checks if bar = \"baz\"", r#"{app="foo"} | json | bar="baz""#),
    ("{cluster=\"ops-tools1\",container=\"ingress-nginx\"}\n    | json\n    | __error__ != \"JSONParserErr\"", r#"{cluster="ops-tools1", container="ingress-nginx"} | json | __error__!="JSONParserErr""#),
    ("quantile_over_time(\n\t0.99,\n\t{container=\"ingress-nginx\",service=\"hosted-grafana\"}\n\t| json\n\t| unwrap response_latency_seconds\n\t| __error__=\"\"[1m]\n\t) by (cluster)", r#"quantile_over_time(0.99, {container="ingress-nginx", service="hosted-grafana"} | json | unwrap response_latency_seconds | __error__="" [1m]) by (cluster)"#),
    ("label_replace(rate({job=\"api-server\",service=\"a:c\"} |= \"err\" [1m]), \"foo\", \"$1\",\n  \"service\", \"(.*):.*\")", r#"label_replace(rate({job="api-server", service="a:c"} |= "err" [1m]), "foo", "$1", "service", "(.*):.*")"#),
    (r#"{job="loki/querier"} | label_format nowEpoch=`{{(unixEpoch now)}}`,createDateEpoch=`{{unixEpoch (toDate "2006-01-02" .createDate)}}` | label_format dateTimeDiff=`{{sub .nowEpoch .createDateEpoch}}` | dateTimeDiff > 86400"#, r#"{job="loki/querier"} | label_format nowEpoch="{{(unixEpoch now)}}", createDateEpoch="{{unixEpoch (toDate \"2006-01-02\" .createDate)}}" | label_format dateTimeDiff="{{sub .nowEpoch .createDateEpoch}}" | dateTimeDiff>86400"#),
    (r#"{job="access_log"} | json | line_format `{{.http_request_headers_x_forwarded_for | default "-"}}`"#, r#"{job="access_log"} | json | line_format "{{.http_request_headers_x_forwarded_for | default \"-\"}}""#),
    (r#"{job="loki/querier"} |= "finish in prometheus" | logfmt | line_format `{{ range $q := fromJson .queries }} {{ $q.query }} {{ end }}`"#, r#"{job="loki/querier"} |= "finish in prometheus" | logfmt | line_format "{{ range $q := fromJson .queries }} {{ $q.query }} {{ end }}""#),
    (r#"{job="xyzlog"} | line_format `{{ __line__ | count "XYZ"}}`"#, r#"{job="xyzlog"} | line_format "{{ __line__ | count \"XYZ\"}}""#),
];

/// (input, the error's full text)
const INVALID: &[(&str, &str)] = &[
    // positions and goyacc-style token names (column of the offending token)
    (r#"unk({ foo = "bar" }[5m])"#, "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER"),
    (r#"bottomk(he,count_over_time({ foo = "bar" }[5h]))"#, "parse error at line 1, col 9: syntax error: unexpected IDENTIFIER"),
    (r#"stddev({ foo = "bar" })"#, "parse error at line 1, col 23: syntax error: unexpected )"),
    (r#"{foo="bar}"#, "parse error at line 1, col 6: literal not terminated"),
    (r#"{foo="a\qb"}"#, "parse error at line 1, col 6: invalid char escape"),
    ("{foo=\"a\nb\"}", "parse error at line 1, col 6: literal not terminated"),
    ("{foo=`a", "parse error at line 1, col 6: literal not terminated"),
    (r#"{foo="bar""#, "parse error at line 1, col 11: syntax error: unexpected $end, expecting } or ,"),
    (r#"{foo="bar"} |~"#, "parse error at line 1, col 15: syntax error: unexpected $end, expecting STRING or ip"),
    (r#"{foo="bar"} "foo""#, "parse error at line 1, col 13: syntax error: unexpected STRING"),
    (r#"{foo="bar"} foo"#, "parse error at line 1, col 13: syntax error: unexpected IDENTIFIER"),
    (r#"bool 1 > 1 > bool 1"#, "parse error at line 1, col 1: syntax error: unexpected bool"),
    (r#"vector(abc)"#, "parse error at line 1, col 8: syntax error: unexpected IDENTIFIER, expecting NUMBER"),
    (r##"#{app="foo"} | json"##, "parse error at line 1, col 20: syntax error: unexpected $end"),
    (r#"count without (rate({namespace="apps"}[15s]))"#, "parse error at line 1, col 16: syntax error: unexpected RATE, expecting IDENTIFIER or )"),
    (r#"quantile_over_time(foo,{namespace="tns"} | unwrap latency [5m])"#, "parse error at line 1, col 20: syntax error: unexpected IDENTIFIER, expecting NUMBER or { or ("),
    (r#"{ foo = "bar" }|logfmt|addr>=ip("1.2.3.4")"#, "parse error at line 1, col 30: syntax error: unexpected ip"),
    (r#"{ foo = "bar" }|logfmt|addr>ip("1.2.3.4")"#, "parse error at line 1, col 29: syntax error: unexpected ip"),
    (r#"{ foo = "bar" }|logfmt|addr<=ip("1.2.3.4")"#, "parse error at line 1, col 30: syntax error: unexpected ip"),
    (r#"{app="foo"} |= "a" or"#, "parse error at line 1, col 22: syntax error: unexpected $end, expecting STRING or ip"),
    (r#"{app="foo"} | json a="#, "parse error at line 1, col 22: syntax error: unexpected $end, expecting STRING"),
    (r#"{app="foo"} | level > "x""#, "parse error at line 1, col 23: syntax error: unexpected STRING"),
    (r#"{app="foo"} | level =~ 5"#, "parse error at line 1, col 24: syntax error: unexpected NUMBER, expecting STRING"),
    (r#"{app="foo"} | line_format"#, "parse error at line 1, col 26: syntax error: unexpected $end, expecting STRING"),
    (r#"{app="foo"} | json | drop"#, "parse error at line 1, col 26: syntax error: unexpected $end, expecting IDENTIFIER"),
    (r#"{app foo}"#, "parse error at line 1, col 6: syntax error: unexpected IDENTIFIER, expecting = or != or =~ or !~"),
    (r#"{="foo"}"#, "parse error at line 1, col 2: syntax error: unexpected =, expecting IDENTIFIER or }"),
    ("{app=\"foo\"}\n| json\n| foo bar", "parse error at line 3, col 7: syntax error: unexpected IDENTIFIER"),
    (r#"count_over_time({app="foo"})"#, "parse error at line 1, col 28: syntax error: unexpected )"),
    (r#"count_over_time({app="foo"}[5m] offset)"#, "parse error at line 1, col 39: syntax error: unexpected ), expecting DURATION"),
    (r#"sum(rate({app="foo"}[5m])) by (a,)"#, "parse error at line 1, col 34: syntax error: unexpected ), expecting IDENTIFIER"),
    (r#"sum by (a) (rate({app="foo"}[5m])) by (b)"#, "parse error at line 1, col 36: syntax error: unexpected by"),
    (r#"-0"#, "parse error at line 1, col 1: syntax error: unexpected DURATION"),
    (r#"vector(1) +"#, "parse error at line 1, col 12: syntax error: unexpected $end"),
    (r#"sum_over_time({app="foo"} | unwrap x | json [5m])"#, "parse error at line 1, col 40: syntax error: unexpected json, expecting IDENTIFIER or ("),
    (r#"{app="foo"} | unwrap x"#, "parse error at line 1, col 15: syntax error: unexpected unwrap"),
    // range tokens: Loki reports line 0 with the bracket's column
    (r#"rate({ foo = "bar" }[5minutes])"#, "parse error at line 0, col 21: unknown unit \"minutes\" in duration \"5minutes\""),
    (r#"rate({ foo = "bar" }[5)"#, "parse error at line 0, col 21: missing closing ']' in duration"),
    (r#"rate({ foo = "bar" }[1.5m])"#, "parse error at line 0, col 21: unknown unit \".\" in duration \"1.5m\""),
    (r#"rate({ foo = "bar" }[])"#, "parse error at line 0, col 21: empty duration string"),
    (r#"min({ foo = "bar" }[5m])"#, "parse error at line 0, col 20: syntax error: unexpected RANGE"),
    (r#"{app="foo"} |= "x" [5m]"#, "parse error at line 0, col 20: syntax error: unexpected RANGE"),
    // errors Loki raises while building nodes: no position
    (r#"absent_over_time({ foo = "bar" }[5h]) by (foo)"#, "parse error : grouping not allowed for absent_over_time aggregation"),
    (r#"count_over_time({app="foo"}[5m]) by (a)"#, "parse error : grouping not allowed for count_over_time aggregation"),
    (r#"rate({app="foo"}[5m]) without (a)"#, "parse error : grouping not allowed for rate aggregation"),
    (r#"sum_over_time({app="foo"} | unwrap x [5m]) by (foo)"#, "parse error : grouping not allowed for sum_over_time aggregation"),
    (r#"approx_topk(2, count_over_time({ foo = "bar" }[5h])) by (foo)"#, "parse error : grouping not allowed for approx_topk aggregation"),
    (r#"sum_over_time({ foo = "bar" }[5m])"#, "parse error : invalid aggregation sum_over_time without unwrap"),
    (r#"rate_counter({app="foo"}[5m])"#, "parse error : invalid aggregation rate_counter without unwrap"),
    (r#"quantile_over_time(0.9, {app="foo"}[5m])"#, "parse error : invalid aggregation quantile_over_time without unwrap"),
    (r#"count_over_time({app="foo"} |= "foo" | json | unwrap foo [5m])"#, "parse error : invalid aggregation count_over_time with unwrap"),
    (r#"bytes_rate({app="foo"} | unwrap foo [5m])"#, "parse error : invalid aggregation bytes_rate with unwrap"),
    (r#"sum_over_time(50,{namespace="tns"} | unwrap latency [5m])"#, "parse error : parameter 50 not supported for operation sum_over_time"),
    (r#"quantile_over_time({namespace="tns"} | unwrap latency [5m])"#, "parse error : parameter required for operation quantile_over_time"),
    (r#"sum(3 ,count_over_time({ foo = "bar" }[5h]))"#, "parse error : unsupported parameter for operation sum(3,"),
    (r#"topk(count_over_time({ foo = "bar" }[5h]))"#, "parse error : parameter required for operation topk"),
    (r#"bottomk(1.2,count_over_time({ foo = "bar" }[5h]))"#, "parse error : invalid parameter bottomk(1.2,"),
    (r#"topk(0, rate({app="foo"}[5m]))"#, "parse error : invalid parameter (must be greater than 0) topk(0"),
    (r#"sort by (a) (rate({app="foo"}[5m]))"#, "parse error : sort and sort_desc doesn't allow grouping by "),
    (r#"{foo="bar"} + {foo="bar"}"#, "parse error : unexpected type for left leg of binary operation (+): *syntax.MatchersExpr"),
    (r#"sum(count_over_time({foo="bar"}[5m])) by (foo) - {foo="bar"}"#, "parse error : unexpected type for right leg of binary operation (-): *syntax.MatchersExpr"),
    (r#"{foo="bar"} |= "x" / 2"#, "parse error : unexpected type for left leg of binary operation (/): *syntax.PipelineExpr"),
    (r#"sum(count_over_time({foo="bar"}[5m])) by (foo) or 1"#, "parse error : unexpected literal for right leg of logical/set binary operation (or): 1.000000"),
    (r#"1 unless sum(count_over_time({foo="bar"}[5m])) by (foo)"#, "parse error : unexpected literal for left leg of logical/set binary operation (unless): 1.000000"),
    (r#"{app="foo"} | logfmt | status_code > 0x10"#, "parse error : unable to parse literal as a float: strconv.ParseFloat: parsing \"0x10\": invalid syntax"),
    (
        r#"0b01"#,
        "parse error : unable to parse literal as a float: strconv.ParseFloat: parsing \"0b01\": invalid syntax",
    ),
    (r#"{app="foo"} |~ ip("1.2.3.4")"#, "parse error : ip: invalid operation"),
    (r#"{app="foo"} |> ip("1.2.3.4")"#, "parse error : ip: invalid operation"),
    (r#"{app="foo"} |= ip("1.2.3")"#, "parse error : ip: invalid pattern: \"1.2.3\""),
    (r#"{app="foo"} | a = ip("10.0.0.0/33")"#, "parse error : ip: invalid pattern: \"10.0.0.0/33\""),
    (r#"{app="foo"} | label_format a=b, a="{{.c}}""#, "parse error : multiple label name 'a' not allowed in a single format operation"),
    (r#"{app="foo"} | regexp "(.*)""#, "parse error : invalid regexp parser: at least one named capture must be supplied"),
    (r#"{app="foo"} | regexp "(?P<a>.)(?P<a>.)""#, "parse error : invalid regexp parser: error parsing regexp: duplicate capture group name: `(?P<a>.)(?P<a>.)`"),
    (r#"{app="foo"} | pattern "<a><b>""#, "parse error : invalid pattern parser: found consecutive capture '<a><b>': invalid expression"),
    (r#"{app="foo"} | pattern "f<_><b> x""#, "parse error : invalid pattern parser: found consecutive capture '<_><b>': invalid expression"),
    (r#"{app="foo"} | pattern "<a> <a>""#, "parse error : invalid pattern parser: duplicate capture name (a): invalid expression"),
    (r#"{app="foo"} | pattern "foo <_> bar""#, "parse error : invalid pattern parser: at least one capture is required"),
    (r#"{app="foo"} | json 名前="a""#, "parse error : invalid extracted label name '名前'"),
    (r#"{app=~"("}"#, "parse error : error parsing regexp: unclosed group: `(`"),
    (r#"label_replace(rate({app="foo"}[1m]), "dst", "$1", "src", "(")"#, "parse error : invalid regex in label_replace: error parsing regexp: unclosed group: `(`"),
    // the selector rule
    (r#"{}"#, "parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will"),
    (r#"{foo!="bar"}"#, "parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will"),
    (r#"{app=""}"#, "parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will"),
    (r#"count_over_time({app=~".*"}[5m])"#, "parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will"),
    (r#"count_over_time({app!~"bar|baz"}[5m])"#, "parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will"),
    (r#"1 + count_over_time({app=~".+"}[5m]) + count_over_time({app=~".*"}[5m])"#, "parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will"),
    // the histogram trap
    (
        r#"histogram_quantile(0.95, sum(rate({app="x"} | json | unwrap duration_ms [5m])) by (le))"#,
        "parse error at line 1, col 1: syntax error: histogram_quantile is a PromQL function that LogQL does not have; to compute a quantile of a value extracted from log lines use quantile_over_time, e.g. quantile_over_time(0.95, {app=\"x\"} | json | unwrap duration_ms [5m]) by (...)",
    ),
    (
        r#"histogram_quantile(0.99, sum by (le, path) (rate({app="x"} | logfmt | unwrap latency [1m])))"#,
        "parse error at line 1, col 1: syntax error: histogram_quantile is a PromQL function that LogQL does not have; to compute a quantile of a value extracted from log lines use quantile_over_time, e.g. quantile_over_time(0.99, {app=\"x\"} | logfmt | unwrap latency [1m]) by (path)",
    ),
    (
        r#"sum(rate({app="x"}[1m])) / histogram_quantile(0.9, rate(foo_bucket[5m]))"#,
        "parse error at line 1, col 28: syntax error: histogram_quantile is a PromQL function that LogQL does not have; to compute a quantile of a value extracted from log lines use quantile_over_time, e.g. quantile_over_time(0.9, {app=\"x\"} | json | unwrap duration_ms [5m]) by (...)",
    ),
];

fn m(name: &str, op: MatchOp, value: &str) -> Matcher {
    Matcher {
        name: name.into(),
        op,
        value: value.into(),
    }
}

fn sel(app: &str) -> Vec<Matcher> {
    vec![m("app", MatchOp::Eq, app)]
}

fn metric(q: &str) -> MetricExpr {
    match parse_expr(q) {
        Ok(Expr::Metric(e)) => e,
        other => panic!("{q:?}: expected a metric query, got {other:?}"),
    }
}

fn log(q: &str) -> LogExpr {
    match parse_expr(q) {
        Ok(Expr::Log(e)) => e,
        other => panic!("{q:?}: expected a log query, got {other:?}"),
    }
}

fn check_canonical(table: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (q, want) in table {
        let got = round_trip(q);
        if got != *want {
            failures.push(format!("{q}\n   want {want}\n   got  {got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} canonical mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn canonical_prints() {
    check_canonical(CANONICAL);
}

#[test]
fn more_canonical_prints() {
    check_canonical(VALID);
}

#[test]
fn docs_examples_canonical_prints() {
    check_canonical(DOCS);
}

#[test]
fn invalid_queries_report_loki_errors() {
    let mut failures = Vec::new();
    for (q, want) in INVALID {
        match parse_expr(q) {
            Ok(e) => failures.push(format!("{q}\n   should fail, parsed as {e}")),
            Err(err) if err.to_string() != *want => {
                failures.push(format!("{q}\n   want {want}\n   got  {err}"));
            }
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} error mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn input_size_limit() {
    let q = format!("{{app=\"foo\"}}{}", " ".repeat(131_072 - 11));
    assert_eq!(q.len(), 131_072);
    assert_eq!(
        parse_expr(&q).unwrap_err().to_string(),
        "parse error : input size too long (131072 > 131072)"
    );
}

#[test]
fn ast_of_log_pipeline() {
    let l = log(
        r#"{app="foo", env=~"b.*"} |= "a" or "b" | json x="y.z", w | level="error" | line_format "{{.a}}""#,
    );
    assert_eq!(
        l.selector,
        vec![m("app", MatchOp::Eq, "foo"), m("env", MatchOp::Re, "b.*")]
    );
    assert_eq!(
        l.pipeline,
        vec![
            Stage::LineFilter(LineFilter {
                op: LineFilterOp::Contains,
                values: vec![
                    LineFilterValue::Str("a".into()),
                    LineFilterValue::Str("b".into())
                ],
            }),
            Stage::Parser(ParserStage::Json(vec![
                ExtractParam {
                    label: "x".into(),
                    expr: Some("y.z".into())
                },
                ExtractParam {
                    label: "w".into(),
                    expr: None
                },
            ])),
            Stage::LabelFilter(LabelFilterExpr::String(m("level", MatchOp::Eq, "error"))),
            Stage::LineFormat("{{.a}}".into()),
        ]
    );
}

#[test]
fn ast_of_parsers_and_shaping() {
    let l = log(
        r#"{app="foo"} | logfmt --keep-empty a | regexp "(?P<x>.)" | pattern "<y> <_>" | unpack | label_format a=b, c="{{.d}}" | drop e, f="g" | keep h | decolorize"#,
    );
    assert_eq!(
        l.pipeline,
        vec![
            Stage::Parser(ParserStage::Logfmt {
                strict: false,
                keep_empty: true,
                params: vec![ExtractParam {
                    label: "a".into(),
                    expr: None
                }],
            }),
            Stage::Parser(ParserStage::Regexp("(?P<x>.)".into())),
            Stage::Parser(ParserStage::Pattern("<y> <_>".into())),
            Stage::Parser(ParserStage::Unpack),
            Stage::LabelFormat(vec![
                LabelFmt::Rename {
                    dst: "a".into(),
                    src: "b".into()
                },
                LabelFmt::Template {
                    dst: "c".into(),
                    template: "{{.d}}".into()
                },
            ]),
            Stage::Drop(vec![
                LabelSelection {
                    name: "e".into(),
                    matcher: None
                },
                LabelSelection {
                    name: "f".into(),
                    matcher: Some(m("f", MatchOp::Eq, "g"))
                },
            ]),
            Stage::Keep(vec![LabelSelection {
                name: "h".into(),
                matcher: None
            }]),
            Stage::Decolorize,
        ]
    );
}

#[test]
fn ast_of_label_filter_precedence() {
    use LabelFilterExpr::*;
    let l = log(r#"{app="foo"} | a > 1 or b >= 1m30s, c < 20MB and d = ip("::1")"#);
    let a = Number {
        name: "a".into(),
        op: CmpOp::Gt,
        value: 1.0,
    };
    let b = Duration {
        name: "b".into(),
        op: CmpOp::Gte,
        value: 90 * SEC,
    };
    let c = Bytes {
        name: "c".into(),
        op: CmpOp::Lt,
        value: 20_000_000,
    };
    let d = Ip {
        name: "d".into(),
        negate: false,
        pattern: "::1".into(),
    };
    let want = Or(
        Box::new(a),
        Box::new(And(Box::new(And(Box::new(b), Box::new(c))), Box::new(d))),
    );
    assert_eq!(l.pipeline, vec![Stage::LabelFilter(want)]);

    let l = log(r#"{app="foo"} | (a="1" or b="2") c!~"x""#);
    let want = And(
        Box::new(Paren(Box::new(Or(
            Box::new(String(m("a", MatchOp::Eq, "1"))),
            Box::new(String(m("b", MatchOp::Eq, "2"))),
        )))),
        Box::new(String(m("c", MatchOp::Nre, "x"))),
    );
    assert_eq!(l.pipeline, vec![Stage::LabelFilter(want)]);
}

#[test]
fn ast_of_range_aggregation_with_unwrap() {
    let e = metric(
        r#"quantile_over_time(0.99, {app="foo"} | json | unwrap duration(d) | __error__="" [5m] offset 1m) by (a)"#,
    );
    assert_eq!(
        e,
        MetricExpr::RangeAgg(RangeAggregation {
            op: RangeOp::QuantileOverTime,
            param: Some(0.99),
            log: LogExpr {
                selector: sel("foo"),
                pipeline: vec![Stage::Parser(ParserStage::Json(vec![]))]
            },
            unwrap: Some(Unwrap {
                label: "d".into(),
                conversion: Some(UnwrapConversion::Duration),
                post_filters: vec![LabelFilterExpr::String(m("__error__", MatchOp::Eq, ""))],
            }),
            range: 5 * MIN,
            offset: MIN,
            grouping: Some(Grouping {
                without: false,
                labels: vec!["a".into()]
            }),
        })
    );
    // The range may sit right after the selector; the tree is the same.
    assert_eq!(
        metric(
            r#"quantile_over_time(0.99, {app="foo"}[5m] offset 1m | json | unwrap duration(d) | __error__="") by (a)"#
        ),
        e
    );
}

#[test]
fn ast_of_vector_aggregation_and_grouping_placement() {
    let inner = MetricExpr::RangeAgg(RangeAggregation {
        op: RangeOp::CountOverTime,
        param: None,
        log: LogExpr {
            selector: sel("foo"),
            pipeline: vec![],
        },
        unwrap: None,
        range: 5 * MIN,
        offset: 0,
        grouping: None,
    });
    let want = MetricExpr::VectorAgg(VectorAggregation {
        op: VectorOp::Topk,
        param: Some(3.0),
        expr: Box::new(inner),
        grouping: Some(Grouping {
            without: true,
            labels: vec!["a".into(), "b".into()],
        }),
    });
    assert_eq!(
        metric(r#"topk without (a, b) (3, count_over_time({app="foo"}[5m]))"#),
        want
    );
    assert_eq!(
        metric(r#"topk(3, count_over_time({app="foo"}[5m])) without (a,b)"#),
        want
    );
}

#[test]
fn ast_of_binary_precedence_and_associativity() {
    use MetricExpr::Literal as L;
    let bin = |op, l, r| {
        MetricExpr::Binary(BinaryExpr {
            op,
            lhs: Box::new(l),
            rhs: Box::new(r),
            modifier: BinModifier::default(),
        })
    };
    // 1 + 2 * 3 ^ 2 ^ 2 - 4  ==  (1 + (2 * (3 ^ (2 ^ 2)))) - 4
    let pow = bin(BinOp::Pow, L(3.0), bin(BinOp::Pow, L(2.0), L(2.0)));
    let want = bin(
        BinOp::Sub,
        bin(BinOp::Add, L(1.0), bin(BinOp::Mul, L(2.0), pow)),
        L(4.0),
    );
    assert_eq!(metric("1 + 2 * 3 ^ 2 ^ 2 - 4"), want);
    // comparisons bind looser than arithmetic, `and` looser than comparisons, `or` loosest
    let e = metric(r#"vector(1) > 2 + 1 and vector(3) or vector(4)"#);
    let want = bin(
        BinOp::Or,
        bin(
            BinOp::And,
            bin(
                BinOp::Gt,
                MetricExpr::Vector(1.0),
                bin(BinOp::Add, L(2.0), L(1.0)),
            ),
            MetricExpr::Vector(3.0),
        ),
        MetricExpr::Vector(4.0),
    );
    assert_eq!(e, want);
    // 1 - -1: a negative literal
    assert_eq!(metric("1 - -1"), bin(BinOp::Sub, L(1.0), L(-1.0)));
}

#[test]
fn ast_of_binary_modifiers() {
    let e = metric(
        r#"sum(rate({app="a"}[1m])) > bool on (x, y) group_left (z) sum(rate({app="b"}[1m]))"#,
    );
    let MetricExpr::Binary(b) = e else {
        panic!("not binary")
    };
    assert_eq!(b.op, BinOp::Gt);
    assert_eq!(
        b.modifier,
        BinModifier {
            return_bool: true,
            matching: Some(VectorMatching {
                on: true,
                labels: vec!["x".into(), "y".into()],
                group: Some(GroupModifier {
                    left: true,
                    include: vec!["z".into()]
                }),
            }),
        }
    );
}

#[test]
fn ast_of_functions() {
    assert_eq!(metric("vector(2.5)"), MetricExpr::Vector(2.5));
    let e = metric(r#"label_replace(vector(1), "dst", "$1-x", "src", "(.*)")"#);
    assert_eq!(
        e,
        MetricExpr::LabelReplace(LabelReplace {
            expr: Box::new(MetricExpr::Vector(1.0)),
            dst: "dst".into(),
            replacement: "$1-x".into(),
            src: "src".into(),
            regex: "(.*)".into(),
        })
    );
    assert_eq!(
        metric("(1)"),
        MetricExpr::Paren(Box::new(MetricExpr::Literal(1.0)))
    );
}

#[test]
fn selector_only_parsing() {
    assert_eq!(
        parse_log_selector(r#"{app="foo", env!~"x|y"}"#).unwrap(),
        vec![m("app", MatchOp::Eq, "foo"), m("env", MatchOp::Nre, "x|y")]
    );
    assert_eq!(
        parse_log_selector(r#"{app="foo"} |= "x""#)
            .unwrap_err()
            .to_string(),
        "parse error : only label matchers are supported"
    );
    assert_eq!(
        parse_log_selector(r#"rate({app="foo"}[1m])"#)
            .unwrap_err()
            .to_string(),
        "parse error : only label matchers are supported"
    );
    assert!(parse_log_selector(r#"{app=~".*"}"#).is_err());
    assert_eq!(
        parse_matchers(r#"{app=~".*"}"#, false).unwrap(),
        vec![m("app", MatchOp::Re, ".*")]
    );
    assert_eq!(parse_matchers("{}", false).unwrap(), vec![]);
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn all_valid() -> Vec<&'static str> {
    CANONICAL
        .iter()
        .chain(VALID)
        .chain(DOCS)
        .map(|(q, _)| *q)
        .collect()
}

#[test]
fn truncations_never_panic() {
    for q in all_valid() {
        for (i, _) in q.char_indices() {
            let _ = parse_expr(&q[..i]);
            let _ = parse_expr(&q[i..]);
        }
    }
}

#[test]
fn random_input_never_panics() {
    const PIECES: &[&str] = &[
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        "[5m]",
        "|",
        "|=",
        "|~",
        "|>",
        "!=",
        "!~",
        "!>",
        "=",
        "==",
        "=~",
        ",",
        " ",
        "\n",
        "\"x\"",
        "`y`",
        "\"",
        "`",
        "#",
        "a",
        "app",
        "json",
        "logfmt",
        "--strict",
        "--keep-empty",
        "regexp",
        "pattern",
        "\"<a> <_>\"",
        "\"(?P<a>.)\"",
        "unwrap",
        "bytes",
        "duration",
        "ip",
        "ip(\"1.2.3.4\")",
        "line_format",
        "label_format",
        "drop",
        "keep",
        "decolorize",
        "unpack",
        "rate",
        "count_over_time",
        "quantile_over_time",
        "sum",
        "topk",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "+",
        "-",
        "*",
        "/",
        "%",
        "^",
        ">",
        ">=",
        "<",
        "<=",
        "1",
        "0.5",
        "-1",
        "5m",
        "1h30m",
        "20MB",
        "1.5KiB",
        "offset",
        "vector",
        "label_replace",
        "histogram_quantile",
        "é",
        "\\",
        "0x",
        "1e",
        ".",
        "µ",
        "ms",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let n = 1 + rng.below(14);
        let mut s = String::new();
        for _ in 0..n {
            s.push_str(PIECES[rng.below(PIECES.len())]);
        }
        if let Ok(e) = parse_expr(&s) {
            // Whatever parses must print to something that parses the same.
            assert_eq!(
                parse_expr(&e.to_string()).as_ref(),
                Ok(&e),
                "round trip of generated {s:?}"
            );
        }
    }
    // Random bytes (as lossy UTF-8) too.
    for _ in 0..5_000 {
        let n = rng.below(40);
        let bytes: Vec<u8> = (0..n).map(|_| (rng.next() & 0xff) as u8).collect();
        let _ = parse_expr(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let q = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(parse_expr(&q).is_err());
    let q = format!(
        "{{app=\"foo\"}} | {}a=\"1\"{}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    assert!(parse_expr(&q).is_err());
    let q = format!(
        "{}count_over_time({{app=\"foo\"}}[1m]){}",
        "sum(".repeat(5_000),
        ")".repeat(5_000)
    );
    assert!(parse_expr(&q).is_err());
    // Moderate nesting is fine.
    let q = format!("{}1{}", "(".repeat(50), ")".repeat(50));
    assert!(parse_expr(&q).is_ok());
}

/// Loki's docs: "`and` can be equivalently expressed by a comma or a space.
/// Loki evaluates `and` before `or`", with these four as equivalent.
#[test]
fn docs_label_filter_equivalences() {
    let pre = r#"{app="foo"} "#;
    let first = log(&format!(
        r#"{pre}| duration >= 20ms or size == 20KB and method!~"2..""#
    ));
    for q in [
        r#"| duration >= 20ms or size == 20KB , method!~"2..""#,
        r#"| duration >= 20ms or size == 20KB  method!~"2..""#,
    ] {
        assert_eq!(log(&format!("{pre}{q}")), first, "{q}");
    }
    let paren = log(&format!(
        r#"{pre}| duration >= 20ms or (size == 20KB and method!~"2..")"#
    ));
    let Stage::LabelFilter(LabelFilterExpr::Or(a, b)) = &paren.pipeline[0] else {
        panic!("expected an or: {paren:?}")
    };
    let LabelFilterExpr::Paren(inner) = b.as_ref() else {
        panic!("expected a parenthesised right side")
    };
    assert_eq!(
        first.pipeline[0],
        Stage::LabelFilter(LabelFilterExpr::Or(a.clone(), inner.clone()))
    );
}

/// Mutations of valid queries (a character dropped, doubled or replaced):
/// none may panic, and whatever still parses must round-trip.
#[test]
fn mutations_never_panic_and_round_trip() {
    const INSERTS: &[&str] = &[
        "(",
        ")",
        " ",
        "|",
        ",",
        "-",
        "\"",
        "`",
        "[",
        "]",
        "1",
        "or ",
        " and ",
        "=",
        "!",
        "~",
        ">",
        "#",
        "\n",
        "by (a)",
        "| json",
        "[1m]",
        "offset 1m",
        "bool ",
        "on () ",
    ];
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut parsed = 0;
    for q in all_valid() {
        let chars: Vec<char> = q.chars().collect();
        for _ in 0..30 {
            let mut c = chars.clone();
            let at = rng.below(c.len().max(1));
            let mut s: String;
            match rng.below(3) {
                0 if !c.is_empty() => {
                    c.remove(at);
                    s = c.iter().collect();
                }
                1 if !c.is_empty() => {
                    let ch = c[at];
                    c.insert(at, ch);
                    s = c.iter().collect();
                }
                _ => {
                    s = c[..at].iter().collect();
                    s.push_str(INSERTS[rng.below(INSERTS.len())]);
                    s.extend(&c[at..]);
                }
            }
            if let Ok(e) = parse_expr(&s) {
                parsed += 1;
                let printed = e.to_string();
                assert_eq!(
                    parse_expr(&printed).as_ref(),
                    Ok(&e),
                    "mutant {s:?} printed as {printed:?}"
                );
            }
        }
    }
    assert!(
        parsed > 1000,
        "too few mutants parsed ({parsed}) for the check to mean much"
    );
}
