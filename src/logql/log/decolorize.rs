//! `| decolorize`: strips ANSI escape sequences from the line with the
//! same pattern as Loki (the `stripansi` expression in `pkg/logql/log/fmt.go`),
//! so that odd sequences are cut exactly where Loki cuts them.

use std::sync::OnceLock;

use regex::bytes::Regex;

/// Loki's `ansiPattern`, in Rust regex syntax: `[` escaped inside the
/// class, and ASCII digits where Go's `\d` is ASCII-only.
const ANSI_PATTERN: &str = r"[\x{1B}\x{9B}][\[\]()#;?]*(?:(?:(?:[a-zA-Z0-9]*(?:;[a-zA-Z0-9]*)*)?\x{07})|(?:(?:[0-9]{1,4}(?:;[0-9]{0,4})*)?[0-9A-PRZcf-ntqry=><~]))";

fn ansi() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(ANSI_PATTERN).expect("the ANSI pattern is valid"))
}

/// True when the line may contain an escape: an ESC byte, or the second
/// byte of U+009B (CSI) in UTF-8.
#[inline]
pub fn has_escape(line: &[u8]) -> bool {
    memchr::memchr2(0x1b, 0x9b, line).is_some()
}

/// Appends `line` without its ANSI escape sequences to `out`.
pub fn decolorize(line: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&ansi().replace_all(line, &b""[..]));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::log::testutil::{pipeline, run};
    use crate::logql::syntax::ast::Stage;

    fn strip(s: &str) -> String {
        let mut out = Vec::new();
        decolorize(s.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strips_sgr_and_osc() {
        assert_eq!(
            strip("\x1b[31mERROR\x1b[0m order failed"),
            "ERROR order failed"
        );
        assert_eq!(strip("\x1b[1;32;40mok\x1b[K done"), "ok done");
        assert_eq!(strip("\x1b]0;title\x07text"), "text");
        assert_eq!(strip("plain"), "plain");
        // A lone ESC is no sequence; a cut CSI ends on its last digit.
        assert_eq!(strip("trailing \x1b"), "trailing \x1b");
        assert_eq!(strip("cut \x1b[31"), "cut ");
    }

    #[test]
    fn cuts_where_lokis_pattern_cuts() {
        // An OSC title with a space: Loki's pattern takes `ESC ] 0 ; m`
        // (an `m` final byte) and leaves the rest.
        assert_eq!(strip("\x1b]0;my title\x07x"), "y title\x07x");
        // Two-byte ESC M (reverse index), private CSI, 8-bit CSI.
        assert_eq!(strip("a\x1bMb"), "ab");
        assert_eq!(strip("\x1b[?25lhidden\x1b[?25h"), "hidden");
        assert_eq!(strip("\u{9b}31mred"), "red");
        // ESC followed by a byte outside the final set stays.
        assert_eq!(strip("\x1bx"), "\x1bx");
        // Non-ASCII text with a 0x9b continuation byte is left alone.
        assert_eq!(strip("Û ok"), "Û ok");
    }

    #[test]
    fn stage_rewrites_only_colored_lines() {
        let p = pipeline(vec![Stage::Decolorize]);
        assert_eq!(run(&p, "\x1b[33mWARN\x1b[0m x").unwrap().0, "WARN x");
        assert_eq!(run(&p, "no color").unwrap().0, "no color");
    }
}
