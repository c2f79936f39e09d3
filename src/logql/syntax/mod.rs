//! LogQL syntax: the AST, the parser and the canonical printer.
//!
//! [`parse_expr`] turns query text into an [`ast::Expr`] or a [`ParseError`]
//! whose `Display` reads like Loki's (`parse error at line 1, col 17: syntax
//! error: unexpected IDENTIFIER`). `Display` on the AST prints the canonical
//! form served by `/loki/api/v1/format_query`, such that
//! `parse_expr(&e.to_string()) == Ok(e)`.
//!
//! * [`lexer`] — tokens (nom recognisers, Loki's `lex.go` rules);
//! * [`parser`] — recursive descent over the tokens, Loki's `syntax.y`;
//! * [`print`] — `Display` for every AST type.

pub mod ast;
mod lexer;
mod parser;
pub mod print;

use std::fmt;

pub use lexer::{parse_bytes, parse_duration, parse_go_duration, parse_prometheus_duration};
pub use print::{format_duration, write_bytes, write_duration, write_float};

/// A LogQL parse error, with a 1-based position when known. As in Loki,
/// errors about a `[range]` token carry line 0 and the bracket's column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 && self.col == 0 {
            write!(f, "parse error : {}", self.msg)
        } else {
            write!(
                f,
                "parse error at line {}, col {}: {}",
                self.line, self.col, self.msg
            )
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole LogQL query (log or metric) and validates it as Loki's
/// `ParseExpr` does, including the rule that every stream selector has a
/// matcher that does not match the empty string.
pub fn parse_expr(input: &str) -> Result<ast::Expr, ParseError> {
    let expr = parse_expr_unvalidated(input)?;
    parser::validate_selectors(&expr)?;
    Ok(expr)
}

/// [`parse_expr`] without the empty-compatible selector rule (Loki's
/// `ParseExprWithoutValidation`).
pub fn parse_expr_unvalidated(input: &str) -> Result<ast::Expr, ParseError> {
    check_size(input)?;
    parser::Parser::new(input).parse_root()
}

/// Parses a bare stream selector `{a="b", c=~"d"}`, as the `match[]` and
/// `query` parameters of the metadata endpoints carry, and validates it.
/// Anything else (a pipeline, a metric query) is
/// `parse error : only label matchers are supported`.
pub fn parse_log_selector(input: &str) -> Result<Vec<ast::Matcher>, ParseError> {
    parse_matchers(input, true)
}

/// [`parse_log_selector`] with the empty-compatible rule optional (Loki's
/// `ParseMatchers(input, validate)`).
pub fn parse_matchers(input: &str, validate: bool) -> Result<Vec<ast::Matcher>, ParseError> {
    check_size(input)?;
    let ms = parser::Parser::new(input).parse_selector_only()?;
    if validate {
        parser::validate_matchers(&ms)?;
    }
    Ok(ms)
}

fn check_size(input: &str) -> Result<(), ParseError> {
    if input.len() >= parser::MAX_INPUT_SIZE {
        return Err(ParseError {
            line: 0,
            col: 0,
            msg: format!(
                "input size too long ({} > {})",
                input.len(),
                parser::MAX_INPUT_SIZE
            ),
        });
    }
    Ok(())
}

impl ast::Matcher {
    /// The storage layer's compiled matcher for this selector matcher (the
    /// regex is anchored there). The parser has already checked that the
    /// regex compiles, so this fails only for hand-built matchers.
    pub fn to_storage(&self) -> Result<crate::storage::Matcher, regex::Error> {
        let op = match self.op {
            ast::MatchOp::Eq => crate::storage::MatchOp::Eq,
            ast::MatchOp::Neq => crate::storage::MatchOp::Neq,
            ast::MatchOp::Re => crate::storage::MatchOp::Re,
            ast::MatchOp::Nre => crate::storage::MatchOp::Nre,
        };
        crate::storage::Matcher::new(self.name.clone(), op, self.value.clone())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn long_operator_chain_is_refused_not_a_stack_overflow() {
        // Found with `miniloki fuzz --target logql` from a hand-built seed:
        // `1+1+...` 20,000 times
        // parsed into a tree 20,000 levels deep that overflowed the stack.
        let q = format!("1{}", "+1".repeat(20_000));
        let e = parse_expr(&q).unwrap_err();
        assert!(e.to_string().contains("nested too deeply"), "{e}");
        assert!(parse_expr(&format!("1{}", " + 1".repeat(100))).is_ok());
    }

    #[test]
    fn long_label_filter_chain_is_refused_not_a_stack_overflow() {
        // Found by `miniloki fuzz --target logql --seed 21` (random run):
        // `| size > 1K ize > 1K ...` chained thousands of label filters into
        // a tree that deep, which overflowed the stack.
        for sep in [" ", " and ", " or ", ", "] {
            let chain = vec![r#"a="1""#; 5_000].join(sep);
            let e = parse_expr(&format!("{{j=\"a\"}} | {chain}")).unwrap_err();
            assert!(e.to_string().contains("nested too deeply"), "{e}");
            let chain = vec![r#"a="1""#; 100].join(sep);
            assert!(parse_expr(&format!("{{j=\"a\"}} | {chain}")).is_ok());
        }
    }

    #[test]
    fn long_dash_run_lexes_in_linear_time() {
        // Found the same way: 30,000 dashes took minutes (each `-` token
        // scanned the whole run looking for a `--flag`).
        let q = format!("{}1", "-".repeat(30_000));
        let t = std::time::Instant::now();
        assert!(parse_expr(&q).is_err());
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        assert!(parse_expr(r#"{a="b"} | logfmt --strict --keep-empty"#).is_ok());
        assert!(parse_expr(r#"{a="b"} | logfmt --strictly"#).is_err());
        assert!(parse_expr(r#"{a="b"} | logfmt --keep-empty-"#).is_err());
    }
    use super::*;

    #[test]
    fn matcher_converts_to_storage() {
        let ms = parse_log_selector(r#"{app="foo", env=~"pro.", x!~"a|b"}"#).unwrap();
        let st: Vec<_> = ms.iter().map(|m| m.to_storage().unwrap()).collect();
        assert!(st[0].matches("foo") && !st[0].matches("food"));
        // anchored: "prod" matches, "preprod" does not
        assert!(st[1].matches("prod") && !st[1].matches("preprod"));
        assert!(st[2].matches("c") && !st[2].matches("a"));
    }

    #[test]
    fn error_display_with_and_without_position() {
        let e = parse_expr(r#"{app="foo"} foo"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "parse error at line 1, col 13: syntax error: unexpected IDENTIFIER"
        );
        let e = parse_expr(r#"{app=~".*"}"#).unwrap_err();
        assert_eq!((e.line, e.col), (0, 0));
        assert!(e.to_string().starts_with("parse error : queries require"));
    }
}
