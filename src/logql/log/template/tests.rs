//! End-to-end tests: Loki's documented examples, Go template semantics,
//! errors and limits. Expected outputs are checked by hand against Go's
//! and sprig's documented behaviour.

use super::*;

struct Entry {
    labels: Vec<(&'static str, &'static str)>,
    line: &'static str,
    ts: i64,
}

impl TemplateData for Entry {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    }
    fn line(&self) -> &str {
        self.line
    }
    fn timestamp_ns(&self) -> i64 {
        self.ts
    }
    fn for_each_label(&self, f: &mut dyn FnMut(&str, &str)) {
        for (k, v) in &self.labels {
            f(k, v);
        }
    }
}

fn entry(labels: &[(&'static str, &'static str)]) -> Entry {
    // 2021-11-02T13:04:05.123Z
    Entry {
        labels: labels.to_vec(),
        line: "the Line",
        ts: 1_635_858_245_123_000_000,
    }
}

fn run(tmpl: &str, labels: &[(&'static str, &'static str)]) -> String {
    let t = Template::parse(tmpl).unwrap_or_else(|e| panic!("parse {tmpl:?}: {e}"));
    let mut out = String::new();
    t.execute(&entry(labels), &mut out)
        .unwrap_or_else(|e| panic!("execute {tmpl:?}: {e}"));
    out
}

fn exec_err(tmpl: &str, labels: &[(&'static str, &'static str)]) -> String {
    let t = Template::parse(tmpl).unwrap_or_else(|e| panic!("parse {tmpl:?}: {e}"));
    let mut out = String::from("kept");
    let e = t.execute(&entry(labels), &mut out).expect_err(tmpl);
    assert_eq!(out, "kept", "output is rolled back on error");
    e.0
}

fn parse_err(tmpl: &str) -> String {
    Template::parse(tmpl).expect_err(tmpl).0
}

fn r(tmpl: &str) -> String {
    run(tmpl, &[])
}

#[test]
fn log_queries_doc_examples() {
    let l = [
        ("query", "up"),
        ("duration", "10ms"),
        ("status", "500"),
        ("path", "/api/v1/push"),
    ];
    assert_eq!(run("{{.query}} {{.duration}}", &l), "up 10ms");
    assert_eq!(
        run(r#"{{ if eq .status "500" }}ERROR{{ end }}"#, &l),
        "ERROR"
    );
    assert_eq!(
        run(
            r#"{{ if eq .status "200" }}ok{{ else }}not ok{{ end }}"#,
            &l
        ),
        "not ok"
    );
    assert_eq!(run(r#"{{ .path | replace "/" "_" }}"#, &l), "_api_v1_push");
    assert_eq!(run("{{ __line__ | ToUpper }}", &l), "THE LINE");
    assert_eq!(
        run("{{ div .duration_ms 1000 }}", &[("duration_ms", "2500")]),
        "2"
    );
    assert_eq!(
        run(r#"{{ printf "%.2f" (float64 .x) }}"#, &[("x", "3.14159")]),
        "3.14"
    );
    assert_eq!(
        run(
            r#"{{ .path | replace " " "_" | trunc 5 | upper }}"#,
            &[("path", "a b c d e f")]
        ),
        "A_B_C"
    );
}

#[test]
fn missing_keys_print_empty_for_labels_and_no_value_for_json() {
    // Loki's data is a map[string]string: missingkey=zero gives "".
    assert_eq!(run("[{{.nope}}]", &[("a", "1")]), "[]");
    // fromJson yields map[string]interface{}: a missing key is <no value>.
    assert_eq!(r(r#"{{ (fromJson "{\"a\":1}").b }}"#), "<no value>");
    // Invalid JSON: sprig's fromJson returns nil.
    assert_eq!(r(r#"{{ fromJson "{" }}"#), "<no value>");
}

#[test]
fn template_functions_doc_pipeline_and_logic() {
    assert_eq!(
        r(r#"{{ if and (contains "he" "hello") (contains "llo" "hello") }} yes {{end}}"#),
        " yes "
    );
    assert_eq!(
        r(r#"{{ if or (contains "he" "hello") (contains "x" "hello") }} yes {{end}}"#),
        " yes "
    );
    let t = r#"{{ if contains "ErrTimeout" .err }} timeout {{else if contains "he" "hello"}} yes {{else}} no {{end}}"#;
    assert_eq!(run(t, &[("err", "ErrTimeout!")]), " timeout ");
    assert_eq!(run(t, &[("err", "x")]), " yes ");
    assert_eq!(
        run(
            r#"{{ if eq "ErrTimeout" .err }} timeout {{end}}"#,
            &[("err", "ErrTimeout")]
        ),
        " timeout "
    );
    assert_eq!(r(r#"{{ if eq "hello" "hello" }} yes {{end}}"#), " yes ");
    assert_eq!(
        run(
            r#"{{ if hasSuffix "Timeout" .err }} timeout {{end}}"#,
            &[("err", "ErrTimeout")]
        ),
        " timeout "
    );
    assert_eq!(r(r#"{{ if hasPrefix "he" "hello" }} yes {{end}}"#), " yes ");
    assert_eq!(
        r(r#"{{ eq 1 2 3 1 }} {{ ne "a" "b" }} {{ lt 1 2 }} {{ ge "b" "a" }} {{ not "" }}"#),
        "true true true true true"
    );
    assert_eq!(
        r(r#"{{ and 1 0 2 }} {{ or 0 "" "x" }} {{ and 1 2 }}"#),
        "0 x 2"
    );
}

#[test]
fn string_functions_doc_examples() {
    assert_eq!(
        r(r#"{{ alignLeft 5 "hello world"}}|{{ alignLeft 5 "hi"}}|"#),
        "hello|hi   |"
    );
    assert_eq!(
        r(r#"{{ alignRight 5 "hello world"}}|{{ alignRight 5 "hi"}}|"#),
        "world|   hi|"
    );
    assert_eq!(run("{{ .foo | b64enc }}", &[("foo", "hello")]), "aGVsbG8=");
    assert_eq!(run("{{ b64dec .foo }}", &[("foo", "aGVsbG8")]), "hello");
    assert_eq!(
        r(r#"{{ b64dec "a!b=" }}"#),
        "illegal base64 data at input byte 1"
    );
    assert_eq!(
        r(r#"{{ default "-" "" }} {{ default "-" "foo" }}"#),
        "- foo"
    );
    assert_eq!(run(r#"{{.xff | default "-"}}"#, &[]), "-");
    assert_eq!(r(r#"{{fromJson "{\"foo\": 55}"}}"#), "map[foo:55]");
    assert_eq!(
        run("{{ .m | lower }} {{ lower \"HELLO\"}}", &[("m", "GET")]),
        "get hello"
    );
    assert_eq!(
        run("{{ indent 4 .query }}", &[("query", "a\nb")]),
        "    a\n    b"
    );
    assert_eq!(
        run("{{ nindent 2 .query }}", &[("query", "a\nb")]),
        "\n  a\n  b"
    );
    assert_eq!(r(r#"{{ repeat 3 "hello" }}"#), "hellohellohello");
    assert_eq!(
        run(
            r#"{{ printf "The IP address was %s" .remote_addr }}"#,
            &[("remote_addr", "129.168.1.1")]
        ),
        "The IP address was 129.168.1.1"
    );
    assert_eq!(
        run(
            r#"{{ printf "%-10.10s" .request_uri}}|{{printf "%-5.5s" .request_method}}|"#,
            &[
                ("request_uri", "/api/v1/query_range"),
                ("request_method", "GET")
            ]
        ),
        "/api/v1/qu|GET  |"
    );
    assert_eq!(
        run(
            r#""|" {{printf "%15.15s" .ClientHost}} "|""#,
            &[("ClientHost", "10.0.0.1")]
        ),
        r#""|"        10.0.0.1 "|""#
    );
    assert_eq!(
        run(
            r#"{{ .cluster | replace "-cluster" "" }}"#,
            &[("cluster", "prod-cluster")]
        ),
        "prod"
    );
    assert_eq!(
        r(r#"{{ replace "hello" "world" "hello world" }}"#),
        "world world"
    );
    assert_eq!(
        run("{{ .path | substr 2 5 }}", &[("path", "/api/v1")]),
        "pi/"
    );
    assert_eq!(
        r(r#"{{ substr 0 5 "hello world"}}|{{ substr 6 11 "hello world"}}"#),
        "hello|world"
    );
    assert_eq!(r(r#"{{ title "hello world"}}"#), "Hello World");
    assert_eq!(r(r#"{{ trim "   hello    " }}"#), "hello");
    assert_eq!(
        run(r#"{{ .path | trimAll "/" }}"#, &[("path", "/a/b/")]),
        "a/b"
    );
    assert_eq!(r(r#"{{ trimAll "$" "$5.00" }}"#), "5.00");
    assert_eq!(
        r(r#"{{ trimPrefix "-" "-hello" }} {{ trimSuffix "-" "hello-" }}"#),
        "hello hello"
    );
    assert_eq!(
        r(r#"{{ trunc 5 "hello world"}}|{{ trunc -5 "hello world"}}"#),
        "hello|world"
    );
    assert_eq!(r(r#"{{ upper "hello"}}"#), "HELLO");
    assert_eq!(
        run("{{ .u | urlencode }}", &[("u", "/a b?c=d&e")]),
        "%2Fa+b%3Fc%3Dd%26e"
    );
    assert_eq!(
        run("{{ urldecode .u }}", &[("u", "%2Fa+b%3Fc%3Dd")]),
        "/a b?c=d"
    );
    // Loki's (Go strings) functions take the string first.
    assert_eq!(
        r(r#"{{ ToLower "AbC" }} {{ Replace "aaa" "a" "b" 2 }} {{ Trim "xxhixx" "x" }}"#),
        "abc bba hi"
    );
    assert_eq!(
        r(
            r#"{{ TrimLeft "xxhix" "x" }} {{ TrimRight "xhixx" "x" }} {{ TrimPrefix "foobar" "foo" }} {{ TrimSuffix "foobar" "bar" }} [{{ TrimSpace "  a  " }}]"#
        ),
        "hix xhi bar foo [a]"
    );
    assert_eq!(
        r(r#"{{ len "héllo" }} {{ index "abc" 1 }} {{ slice "abcdef" 1 3 }}"#),
        "6 98 bc"
    );
    assert_eq!(
        r(r#"{{ html "<a href='x'>&</a>" }} {{ js "it's <b>" }} {{ urlquery "a b&c" }}"#),
        "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt; it\\'s \\u003Cb\\u003E a+b%26c"
    );
    assert_eq!(
        r(r#"{{ print "a" 1 2 "b" }}|{{ println 1 "x" }}|"#),
        "a1 2b|1 x\n|"
    );
}

#[test]
fn regex_functions_doc_examples() {
    assert_eq!(
        r(r#"{{ count "a|b" "abab" }} {{ count "o" "foo" }}"#),
        "4 2"
    );
    assert_eq!(run(r#"{{ __line__ | count "XYZ"}}"#, &[]), "0");
    assert_eq!(
        run(
            r#"{{ regexReplaceAll "(a*)bc" .some_label "${1}a" }}"#,
            &[("some_label", "aabcxbc")]
        ),
        "aaaxa"
    );
    assert_eq!(
        run(
            r#"{{ regexReplaceAllLiteral "(ts=)" .timestamp "timestamp=" }}"#,
            &[("timestamp", "ts=1")]
        ),
        "timestamp=1"
    );
    assert_eq!(
        r(r#"{{ regexReplaceAllLiteral "a" "banana" "$1" }}"#),
        "b$1n$1n$1"
    );
    // A regex that is not constant is compiled at execution time.
    assert_eq!(
        run(r#"{{ regexReplaceAll .re "abc" "x" }}"#, &[("re", "b+")]),
        "axc"
    );
    let e = exec_err(r#"{{ count .re "abc" }}"#, &[("re", "(")]);
    assert!(
        e.contains("error calling count: error parsing regexp"),
        "{e}"
    );
}

#[test]
fn math_functions_doc_examples() {
    assert_eq!(r("{{ add 3 2 5 }}"), "10");
    assert_eq!(r("{{ addf 3.5 2 5 }}"), "10.5");
    assert_eq!(r("{{ addf 0.1 0.2 }}"), "0.3");
    assert_eq!(r("{{ ceil 123.001 }}"), "124");
    assert_eq!(r("{{ div 10 2}}"), "5");
    assert_eq!(r("{{ divf 10 2 4}}"), "1.25");
    assert_eq!(r(r#"{{ "3.5" | float64 }}"#), "3.5");
    assert_eq!(r("{{ floor 123.9999 }}"), "123");
    assert_eq!(r(r#"{{ "3" | int }}"#), "3");
    assert_eq!(r("{{ max 1 2 3 }} {{ min 1 2 3 }}"), "3 1");
    assert_eq!(r("{{ maxf 1 2.5 3 }} {{ minf 1.5 2.5 3 }}"), "3 1.5");
    assert_eq!(r("{{ mul 5 2 3}} {{ mulf 5.5 2 2.5 }}"), "30 27.5");
    assert_eq!(r("{{ mod 10 3}}"), "1");
    assert_eq!(
        r("{{ -9223372036854775808 }} {{ 0b101 }} {{ 0o17 }} {{ 017 }} {{ 1_000 }}"),
        "-9223372036854775808 5 15 15 1000"
    );
    assert_eq!(r("{{ round 123.555555 3 }}"), "123.556");
    assert_eq!(r("{{ round 123.88571428571 5 .2 }}"), "123.88572");
    assert_eq!(r("{{ sub 5 2 }} {{ subf 5.5 2 1.5 }}"), "3 2");
    // sprig's cast: label strings are numbers, junk is 0.
    assert_eq!(
        run(
            "{{ add .a .b }} {{ int .c }} {{ add .a 0.9 }}",
            &[("a", "40"), ("b", "2"), ("c", "junk")]
        ),
        "42 0 40"
    );
    assert_eq!(run("{{ mulf .a 1000 }}", &[("a", "1234.5")]), "1.2345e+06");
    let e = exec_err("{{ div 1 0 }}", &[]);
    assert!(
        e.ends_with("error calling div: runtime error: integer divide by zero"),
        "{e}"
    );
}

#[test]
fn date_and_time_functions() {
    assert_eq!(
        r("{{ __timestamp__ }}"),
        "2021-11-02 13:04:05.123 +0000 UTC"
    );
    assert_eq!(
        r(r#"{{ __timestamp__ | date "2006-01-02T15:04:05.00Z07:00" }}"#),
        "2021-11-02T13:04:05.12Z"
    );
    assert_eq!(r("{{ __timestamp__ | unixEpoch }}"), "1635858245");
    assert_eq!(
        r("{{ __timestamp__ | unixEpochMillis }} {{ unixEpochNanos __timestamp__ }}"),
        "1635858245123 1635858245123000000"
    );
    assert_eq!(
        r(r#"{{ toDate "2006-01-02" "2021-11-02" }}"#),
        "2021-11-02 00:00:00 +0000 UTC"
    );
    assert_eq!(
        run(
            r#"{{ .foo | toDate "2006-01-02T15:04:05.999999999Z" | unixEpoch }}"#,
            &[("foo", "2021-11-02T00:00:01.5Z")]
        ),
        "1635811201"
    );
    assert_eq!(
        r(r#"{{ toDateInZone "2006-01-02" "UTC" "2021-11-02" | unixEpoch }}"#),
        "1635811200"
    );
    // Unparseable input gives Go's zero time.
    assert_eq!(
        r(r#"{{ toDate "2006-01-02" "nope" | unixEpoch }}"#),
        "-62135596800"
    );
    assert_eq!(
        r(r#"{{ date "2006-01-02" (unixToTime "1635811200") }}"#),
        "2021-11-02"
    );
    assert_eq!(
        r(r#"{{ unixToTime "18933" | unixEpoch }} {{ unixToTime "1635811200000" | unixEpoch }}"#),
        "1635811200 1635811200"
    );
    assert_eq!(
        run(
            r#"from="{{date "2006-01-02" (unixToTime .from)}}""#,
            &[("from", "1635811200123456789")]
        ),
        r#"from="2021-11-02""#
    );
    let e = exec_err(r#"{{ unixToTime "123" }}"#, &[]);
    assert!(
        e.ends_with("error calling unixToTime: unable to parse time '123': %!w(<nil>)"),
        "{e}"
    );
    // now: only check the shape (it is the current time).
    let now = r(r#"{{ date "2006" now }}"#);
    assert!(now.len() == 4 && now.as_str() >= "2024", "{now}");
    assert_eq!(
        r("{{ (__timestamp__).Year }} {{ __timestamp__.Unix }}"),
        "2021 1635858245"
    );
    assert_eq!(
        r(r#"{{ (__timestamp__).Format "Jan 2 15:04" }}"#),
        "Nov 2 13:04"
    );
}

#[test]
fn duration_and_bytes_functions() {
    assert_eq!(
        run(
            "{{ .foo | duration }} {{ duration_seconds .foo }}",
            &[("foo", "1m30s")]
        ),
        "90 90"
    );
    assert_eq!(run("{{ .foo | duration }}", &[("foo", "250ms")]), "0.25");
    assert_eq!(
        run(
            "{{ .foo | bytes }} {{ bytes .bar }}",
            &[("foo", "1.5KB"), ("bar", "2MiB")]
        ),
        "1500 2.097152e+06"
    );
    let e = exec_err("{{ duration .foo }}", &[("foo", "abc")]);
    assert!(
        e.ends_with(r#"error calling duration: time: invalid duration "abc""#),
        "{e}"
    );
}

#[test]
fn range_over_json_and_labels() {
    let q = r#"[{"query":"up"},{"query":"rate(x[1m])"}]"#;
    assert_eq!(
        run(
            "{{ range $q := fromJson .queries }} {{ $q.query }} {{ end }}",
            &[("queries", q)]
        ),
        " up  rate(x[1m]) "
    );
    assert_eq!(
        run(
            "{{ range $i, $q := fromJson .queries }}{{$i}}={{ .query }};{{ end }}",
            &[("queries", q)]
        ),
        "0=up;1=rate(x[1m]);"
    );
    assert_eq!(
        run(
            "{{ range $k, $v := . }}{{$k}}={{$v}},{{ end }}",
            &[("b", "2"), ("a", "1")]
        ),
        "a=1,b=2,"
    );
    assert_eq!(run("{{.}}", &[("b", "2"), ("a", "1")]), "map[a:1 b:2]");
    let dashed = [("foo-bar", "x"), ("a", "1")];
    assert_eq!(
        run(
            r#"{{ index . "foo-bar" }}{{ index $ "nope" }} {{ len . }}"#,
            &dashed
        ),
        "x 2"
    );
    assert_eq!(
        r(r#"{{ range fromJson "[]" }}x{{ else }}empty{{ end }}"#),
        "empty"
    );
    assert_eq!(r("{{ range 3 }}{{.}}{{ end }}"), "012");
    assert_eq!(
        r(
            r#"{{ range $i, $v := fromJson "[1,2,3,4]" }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ if eq $i 3 }}{{ break }}{{ end }}{{$v}}{{ end }}"#
        ),
        "13"
    );
    let m = r#"{"b":{"c":[1.5,"x",true,null]},"a":1e6}"#;
    assert_eq!(
        run(
            "{{ with fromJson .m }}{{ .a }} {{ .b.c }} {{ index .b.c 1 }} {{ len .b.c }}{{ end }}",
            &[("m", m)]
        ),
        "1e+06 [1.5 x true <nil>] x 4"
    );
}

#[test]
fn trim_markers_comments_and_variables() {
    assert_eq!(run("a  {{- .x -}}  b", &[("x", "X")]), "aXb");
    assert_eq!(run("a\n\t{{- .x }}\n b", &[("x", "X")]), "aX\n b");
    assert_eq!(run("{{- /* a comment */ -}} \n x", &[]), "x");
    assert_eq!(r("a{{/* c */}}b"), "ab");
    assert_eq!(
        run(
            "{{ $x := .a }}{{ $x }}{{ $x = \"y\" }}{{ $x }}",
            &[("a", "1")]
        ),
        "1y"
    );
    assert_eq!(
        run(
            "{{ with $v := .a }}{{ $v }}{{ . }}{{ else }}none{{ end }}",
            &[("a", "1")]
        ),
        "11"
    );
    assert_eq!(
        run("{{ with .a }}{{ . }}{{ else }}none{{ end }}", &[]),
        "none"
    );
    assert_eq!(
        run("{{ with .a }}{{ $.b }}{{ end }}", &[("a", "1"), ("b", "B")]),
        "B"
    );
    // Variables declared inside a block end with it.
    assert!(parse_err("{{ if true }}{{ $x := 1 }}{{ end }}{{ $x }}")
        .ends_with("undefined variable \"$x\""));
    assert_eq!(
        r(
            r#"{{ "a\tb\u00e9\x41" }} {{ `raw\n` }} {{ 'a' }} {{ 0x1F }} {{ 1e3 }} {{ -2.50 }} {{ print nil }}"#
        ),
        "a\tbéA raw\\n 97 31 1000 -2.5 <nil>"
    );
    assert_eq!(
        r(
            r#"{{ define "T" }}[{{ . }}]{{ end }}{{ template "T" "x" }}{{ block "B" 1 }}<{{.}}>{{ end }}"#
        ),
        "[x]<1>"
    );
}

#[test]
fn parse_errors_read_like_go() {
    assert_eq!(
        parse_err("{{.a}"),
        r#"template: line:1: unexpected "}" in operand"#
    );
    assert_eq!(
        parse_err("{{ foo }}"),
        r#"template: line:1: function "foo" not defined"#
    );
    assert_eq!(
        parse_err("{{ if .a }}x"),
        "template: line:1: unexpected EOF"
    );
    assert_eq!(
        parse_err("x{{ end }}"),
        "template: line:1: unexpected {{end}}"
    );
    assert_eq!(parse_err("{{ .a"), "template: line:1: unclosed action");
    assert_eq!(
        parse_err("a\n{{ $x }}"),
        r#"template: line:2: undefined variable "$x""#
    );
    assert_eq!(
        parse_err(r#"{{ "abc }}"#),
        "template: line:1: unterminated quoted string"
    );
    assert_eq!(
        parse_err("{{ }}"),
        "template: line:1: missing value for command"
    );
    assert_eq!(
        parse_err("{{ break }}"),
        "template: line:1: {{break}} outside {{range}}"
    );
    assert_eq!(
        parse_err("{{ 1x }}"),
        r#"template: line:1: bad number syntax: "1x""#
    );
    assert_eq!(parse_err("{{/* x }}"), "template: line:1: unclosed comment");
    assert_eq!(
        parse_err("{{ .a | \"x\" }}"),
        "template: line:1: non executable command in pipeline stage 2"
    );
    let deep = format!("{{{{ {}1{} }}}}", "(".repeat(500), ")".repeat(500));
    assert!(parse_err(&deep).contains("nested too deeply"));
    assert_eq!(
        Template::parse_named("label", "{{.a}").unwrap_err().0,
        r#"template: label:1: unexpected "}" in operand"#
    );
}

#[test]
fn execution_errors() {
    let e = exec_err("{{ .a.b }}", &[("a", "x")]);
    assert_eq!(
        e,
        r#"template: line:1:3: executing "line" at <.a.b>: can't evaluate field b in type string"#
    );
    let e = exec_err("{{ ToUpper 5 }}", &[]);
    assert!(
        e.ends_with("wrong type for value; expected string; got int"),
        "{e}"
    );
    let e = exec_err("{{ trunc .n .s }}", &[("n", "2"), ("s", "abc")]);
    assert!(
        e.ends_with("wrong type for value; expected int; got string"),
        "{e}"
    );
    let e = exec_err("{{ trunc 1 }}", &[]);
    assert!(
        e.ends_with("wrong number of args for trunc: want 2 got 1"),
        "{e}"
    );
    let e = exec_err(r#"{{ eq .status 500 }}"#, &[("status", "500")]);
    assert!(
        e.ends_with("error calling eq: incompatible types for comparison"),
        "{e}"
    );
    let e = exec_err(r#"{{ template "nope" }}"#, &[]);
    assert!(e.ends_with(r#"no such template "nope""#), "{e}");
}

#[test]
fn limits_stop_runaway_templates() {
    let e = exec_err(r#"{{ repeat 2000000 "x" }}"#, &[]);
    assert!(e.contains("limit"), "{e}");
    let e = exec_err(r#"{{ range 1000000000 }}x{{ end }}"#, &[]);
    assert!(e.contains("steps"), "{e}");
    let e = exec_err(
        r#"{{ range 90000 }}{{ range 90000 }}{{ end }}{{ end }}"#,
        &[],
    );
    assert!(e.contains("steps"), "{e}");
    let e = exec_err(
        r#"{{ range 1000 }}{{ printf "%1000s" "" }}{{ end }}{{ printf "%100000s" "" }}"#,
        &[],
    );
    assert!(e.contains("output exceeds"), "{e}");
    let e = exec_err(
        r#"{{ define "r" }}{{ template "r" . }}{{ end }}{{ template "r" . }}"#,
        &[],
    );
    assert!(e.contains("maximum template depth"), "{e}");
    let e = exec_err(r#"{{ printf "%999999999d" 1 }}"#, &[]);
    assert!(e.contains("too large"), "{e}");
    let e = exec_err(
        r#"{{ $s := "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" }}{{ range 30 }}{{ $s = print $s $s }}{{ end }}"#,
        &[],
    );
    assert!(e.contains("limit"), "{e}");
    let e = exec_err(r#"{{ alignLeft 100000000 "x" }}"#, &[]);
    assert!(e.contains("limit"), "{e}");
}

#[test]
fn field_names_and_reuse() {
    let t = Template::parse(
        r#"{{ .a }}{{ if eq .b "x" }}{{ .c | upper }}{{ end }}{{ range $v := .d }}{{ end }}"#,
    )
    .unwrap();
    assert_eq!(t.field_names(), vec!["a", "b", "c", "d"]);
    // One parsed template, many entries, appending to a shared buffer.
    let t = Template::parse("{{.a}}-").unwrap();
    let mut out = String::new();
    for v in ["1", "2", "3"] {
        t.execute(
            &Entry {
                labels: vec![("a", v)],
                line: "",
                ts: 0,
            },
            &mut out,
        )
        .unwrap();
    }
    assert_eq!(out, "1-2-3-");
    assert_eq!(t.source(), "{{.a}}-");
}

/// Cases whose expected outputs Loki's own formatter tests pin down
/// (`pkg/logql/log/fmt_test.go`).
#[test]
fn loki_formatter_cases() {
    let l = [("foo", "blip"), ("bar", "blop")];
    assert_eq!(run("foo{{.foo}}buzz{{  .bar  }}", &l), "fooblipbuzzblop");
    assert_eq!(
        run(r#"foo{{.foo}}buzz{{ Replace .bar "blop" "bar" -1 }}"#, &l),
        "fooblipbuzzbar"
    );
    assert_eq!(
        run(
            r#"{{.foo | substr 1 3 }} {{ .bar  | trunc 1 }} {{ .bar  | trunc 3 }}"#,
            &l
        ),
        "li b blo"
    );
    let l2 = [("foo", "  blip "), ("bar", "blop")];
    let t = r#"{{.foo | trim }} {{ .bar  | trimAll "op" }} {{ .bar  | trimPrefix "b" }} {{ .bar  | trimSuffix "p" }}"#;
    assert_eq!(run(t, &l2), "blip bl lop blo");
    assert_eq!(
        run(r#"{{ "foo\n bar" | indent 4 }}"#, &l),
        "    foo\n     bar"
    );
    let l3 = [("foo", "BLIp")];
    assert_eq!(
        run(
            r#"{{ if  .foo | contains "p"}}yes{{end}}-{{ if  .foo | contains "z"}}no{{end}}"#,
            &l3
        ),
        "yes-"
    );
    assert_eq!(run(r#"{{ regexReplaceAll "(p)" .foo "t" }}"#, &l3), "BLIt");
    assert_eq!(
        run(r#"{{ regexReplaceAllLiteral "(p)" .foo "${1}" }}"#, &l3),
        "BLI${1}"
    );
    assert_eq!(
        run("foo {{.foo}}buzz{{  .bar  }}", &[("bar", "blop")]),
        "foo buzzblop"
    );
    let n = [("foo", "1"), ("bar", "3"), ("baz", "10"), ("bazz", "20")];
    assert_eq!(
        run("{{ add .foo 1 | sub .bar | mul .baz | div .bazz}}", &n),
        "2"
    );
    let f = [
        ("foo", "1.5"),
        ("bar", "5"),
        ("baz", "10.5"),
        ("bazz", "20.2"),
    ];
    assert_eq!(
        run(
            "{{ addf .foo 1.5 | subf .bar 1.5 | mulf .baz | divf .bazz }}",
            &f
        ),
        "3.8476190476190477"
    );
    let f2 = [
        ("foo", "1.5"),
        ("bar", "3.5"),
        ("baz", "10.5"),
        ("bazz", "20.4"),
    ];
    assert_eq!(
        run(
            "{{ round (addf .foo 1.5 | subf .bar | mulf .baz | divf .bazz) 5 .2}}",
            &f2
        ),
        "3.88572"
    );
    let m = [("foo", "5.3"), ("bar", "10.5"), ("baz", "15.2")];
    assert_eq!(
        run(
            "minf is {{ minf .foo .bar .baz }} and maxf is {{maxf .foo .bar .baz}}",
            &m
        ),
        "minf is 5.3 and maxf is 15.2"
    );
    assert_eq!(
        run("ceil is {{ ceil .foo }} and floor is {{floor .foo }}", &m),
        "ceil is 6 and floor is 5"
    );
    assert_eq!(r(r#"{{ "2.5" | float64 | int | add 10}}"#), "12");
    assert_eq!(
        r(
            r#"{{ sub (unixEpoch (toDate "2006-01-02" "2021-11-02")) (unixEpoch (toDate "2006-01-02" "2021-11-01")) }}"#
        ),
        "86400"
    );
    assert_eq!(
        r(r#"{{ date "2006-01-02" (toDate "2006-01-02" "2021-11-02") }}"#),
        "2021-11-02"
    );
    assert_eq!(r("{{ div (unixEpoch now) (unixEpoch now) }}"), "1");
    assert_eq!(
        run(
            r#"{{.foo | default "-" }}{{.bar | default "-"}}{{.unknown | default "-"}}"#,
            &[("foo", "blip"), ("bar", "")]
        ),
        "blip--"
    );
    assert_eq!(run("{{ .foo | bytes }}", &[("foo", "3 kB")]), "3000");
    assert_eq!(run("{{ .foo | bytes }}", &[("foo", "3MB")]), "3e+06");
    assert_eq!(run("{{ .foo | duration }}", &[("foo", "3ms")]), "0.003");
    assert_eq!(
        run("{{ .foo | duration_seconds }}", &[("foo", "3m10s")]),
        "190"
    );
    let d = [("foo", "2023-03-10T01:32:40.340485723Z")];
    assert_eq!(
        run(
            r#"{{ .foo | toDateInZone "2006-01-02T15:04:05.999999999Z" "UTC" | unixEpochMillis }}"#,
            &d
        ),
        "1678411960340"
    );
    assert_eq!(
        run(
            r#"{{ .foo | toDateInZone "2006-01-02T15:04:05.999999999Z" "UTC" | unixEpochNanos }}"#,
            &d
        ),
        "1678411960340485723"
    );
    assert_eq!(
        run(
            "{{ .foo | b64enc }}",
            &[("foo", "i'm a string, encode me!")]
        ),
        "aSdtIGEgc3RyaW5nLCBlbmNvZGUgbWUh"
    );
    assert_eq!(
        run(
            "{{ .foo | b64dec }} {{ .bar | b64dec }}",
            &[("foo", "Zm9vYmE"), ("bar", "Zm9vYg")]
        ),
        "fooba foob"
    );
    assert_eq!(
        run(
            "{{ alignLeft 4 .foo }}|{{ alignRight 4 .foo }}",
            &[("foo", "hello")]
        ),
        "hell|ello"
    );
    assert_eq!(run("{{.foo}}  ", &[("foo", "bar")]), "bar  ");
    assert_eq!(run("{{.missing}}", &[("foo", "bar")]), "");
    assert_eq!(
        exec_err(r#"{{.foo Replace "foo"}}"#, &l),
        r#"template: line:1:2: executing "line" at <.foo>: foo is not a method but has arguments"#
    );
    assert_eq!(
        exec_err("{{.foo | now}}", &l),
        r#"template: line:1:9: executing "line" at <now>: wrong number of args for now: want 0 got 1"#
    );
}

#[test]
fn hostile_inputs_do_not_panic_or_blow_up() {
    // Non-ASCII layouts, huge counts, many wide verbs, regex expansions.
    assert_eq!(
        r(r#"{{ toDate "2006年01月02日" "2021年11月02日" | date "02/01 é 2006" }}"#),
        "02/11 é 2021"
    );
    assert_eq!(
        r(r#"{{ alignRight -3 "abc" }}{{ range -5 }}x{{ end }}"#),
        "abc"
    );
    assert!(exec_err(r#"{{ alignLeft 9223372036854775807 "x" }}"#, &[]).contains("limit"));
    assert!(exec_err(
        r#"{{ printf "%.900000d" 1 }}{{ printf "%900000s%900000s" "a" "b" }}"#,
        &[]
    )
    .contains("exceeds"));
    let big = "a".repeat(600_000);
    let big: &'static str = Box::leak(big.into_boxed_str());
    let e = exec_err(r#"{{ regexReplaceAll "(a+)" .x "$1$1" }}"#, &[("x", big)]);
    assert!(e.contains("limit"), "{e}");
    let e = exec_err(r#"{{ print .x .x }}"#, &[("x", big)]);
    assert!(e.contains("limit"), "{e}");
    for t in [
        "{{",
        "{{{{",
        "{{ \"\\",
        "{{'",
        "{{'\\",
        "{{ 0x }}",
        "{{ (",
        "{{ ) }}",
        "{{-",
        "{{- -}}",
        "{{/*",
        "{{ | }}",
        "{{ range $a, }}",
        "{{ define }}",
        "{{ template }}",
        "{{ if }}{{ end }}",
        "{{ else }}",
        "{{ $x = 1 }}",
        "{{ 'ab' }}",
        "{{ \"\\q\" }}",
        "{{ \"\\x4\" }}",
        "{{ 1e }}",
        "{{ 9999999999999999999999 }}",
    ] {
        assert!(Template::parse(t).is_err(), "{t:?} should not parse");
    }
}

#[test]
fn templates_are_shareable_and_cache_dynamic_regexes() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Template>();
    let t = Template::parse(r#"{{ regexReplaceAll .re .s "-" }}"#).unwrap();
    let mut out = String::new();
    for (re, s) in [("a+", "baab"), ("b", "abc"), ("a+", "xa")] {
        t.execute(
            &Entry {
                labels: vec![("re", re), ("s", s)],
                line: "",
                ts: 0,
            },
            &mut out,
        )
        .unwrap();
        out.push('|');
    }
    assert_eq!(out, "b-b|a-c|x-|");
    assert_eq!(t.regexes.len(), 2);
}

#[test]
fn to_date_in_zone_uses_the_zone_database() {
    // Unknown zones fall back to UTC, as in Loki.
    assert_eq!(
        r(r#"{{ toDateInZone "2006-01-02 15:04" "Nowhere/Zone" "2021-07-15 14:00" | unixEpoch }}"#),
        "1626357600"
    );
    // An explicit offset in the input wins over the zone.
    assert_eq!(
        r(
            r#"{{ toDateInZone "2006-01-02 15:04 -0700" "UTC" "2021-07-15 14:00 +0200" | unixEpoch }}"#
        ),
        "1626350400"
    );
    if zone::lookup("Europe/Paris").is_some() {
        // 14:00 CEST (+02:00) is 12:00 UTC; 14:00 CET (+01:00) is 13:00 UTC.
        assert_eq!(
            r(
                r#"{{ toDateInZone "2006-01-02 15:04" "Europe/Paris" "2021-07-15 14:00" | unixEpoch }}"#
            ),
            "1626350400"
        );
        assert_eq!(
            r(
                r#"{{ toDateInZone "2006-01-02 15:04" "Europe/Paris" "2021-01-15 14:00" | unixEpoch }}"#
            ),
            "1610715600"
        );
    }
}

#[test]
fn deepest_allowed_nesting_fits_a_small_stack() {
    // 25 nested ifs around 24 nested parentheses (the parse limit), called recursively until
    // the depth limit: must fail cleanly on a 2 MiB stack, even unoptimised.
    let ifs = 25;
    let body = format!(
        "{}{{{{ {}1{} }}}}{}{{{{ template \"r\" . }}}}",
        "{{ if true }}".repeat(ifs),
        "(print ".repeat(24),
        ")".repeat(24),
        "{{ end }}".repeat(ifs)
    );
    let src = format!("{{{{ define \"r\" }}}}{body}{{{{ end }}}}{{{{ template \"r\" . }}}}");
    let t = Template::parse(&src).unwrap();
    let h = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let mut out = String::new();
            t.execute(&entry(&[]), &mut out).map_err(|e| e.0)
        })
        .unwrap();
    let e = h.join().unwrap().unwrap_err();
    assert!(e.contains("maximum template depth"), "{e}");
}
