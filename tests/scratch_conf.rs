use miniloki::logql::syntax::parse_expr;
#[test]
fn conf() {
    let rows: Vec<(String, String)> = serde_json::from_str(&std::fs::read_to_string("/tmp/docs/loki_rows.json").unwrap()).unwrap();
    for (kind, q) in rows {
        let r = parse_expr(&q);
        match (&*kind, &r) {
            ("exp", Err(e)) => println!("SHOULD-PARSE {q}\n   {e}"),
            ("err", Ok(e)) => println!("SHOULD-FAIL {q}\n   {e}"),
            ("err", Err(e)) => println!("FAIL-OK {q}\n   {e}"),
            _ => {
                let e = r.unwrap();
                if parse_expr(&e.to_string()).ok() != Some(e.clone()) { println!("RT-FAIL {q}\n  {e}"); }
            }
        }
    }
}
