//! `| decolorize`: strips ANSI escape sequences from the line, with the
//! widely used ansi-regex pattern that Loki also uses (CSI/SGR sequences
//! introduced by ESC or U+009B, and BEL-terminated OSC sequences).

use std::sync::LazyLock;

static ANSI: LazyLock<Option<regex::bytes::Regex>> = LazyLock::new(|| {
    regex::bytes::Regex::new(
        r"[\x{1B}\x{9B}][\[\]()#;?]*(?:(?:(?:[a-zA-Z0-9]*(?:;[a-zA-Z0-9]*)*)?\x{07})|(?:(?:[0-9]{1,4}(?:;[0-9]{0,4})*)?[0-9A-PRZcf-ntqry=><~]))",
    )
    .ok()
});

/// True when the line may contain an escape sequence (ESC, or U+009B).
#[inline]
pub fn has_escape(line: &[u8]) -> bool {
    memchr::memchr(0x1b, line).is_some()
        || memchr::memmem::find(line, "\u{9b}".as_bytes()).is_some()
}

/// Appends `line` without its ANSI escape sequences to `out`.
pub fn decolorize(line: &[u8], out: &mut Vec<u8>) {
    let Some(re) = ANSI.as_ref() else {
        out.extend_from_slice(line);
        return;
    };
    let mut last = 0;
    for m in re.find_iter(line) {
        out.extend_from_slice(&line[last..m.start()]);
        last = m.end();
    }
    out.extend_from_slice(&line[last..]);
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
        assert_eq!(strip("\u{9b}31mred"), "red");
        // Incomplete sequences are kept, as with Loki's regex.
        assert_eq!(strip("trailing \x1b"), "trailing \x1b");
    }

    #[test]
    fn stage_rewrites_only_colored_lines() {
        let p = pipeline(vec![Stage::Decolorize]);
        assert_eq!(run(&p, "\x1b[33mWARN\x1b[0m x").unwrap().0, "WARN x");
        assert_eq!(run(&p, "no color").unwrap().0, "no color");
    }
}
