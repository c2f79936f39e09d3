//! `| decolorize`: strips ANSI escape sequences (CSI `ESC [ ... final`,
//! OSC `ESC ] ... BEL|ESC \`, and two-byte `ESC x`) from the line.

/// True when the line contains an escape byte.
#[inline]
pub fn has_escape(line: &[u8]) -> bool {
    memchr::memchr(0x1b, line).is_some()
}

/// Appends `line` without its ANSI escape sequences to `out`.
pub fn decolorize(line: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        if c != 0x1b {
            out.push(c);
            i += 1;
            continue;
        }
        match line.get(i + 1) {
            Some(b'[') => {
                // CSI: parameters and intermediates, then a final byte 0x40..=0x7e.
                let mut j = i + 2;
                while j < line.len() && !(0x40..=0x7e).contains(&line[j]) {
                    j += 1;
                }
                i = (j + 1).min(line.len());
            }
            Some(b']') => {
                let mut j = i + 2;
                while j < line.len() {
                    if line[j] == 0x07 {
                        j += 1;
                        break;
                    }
                    if line[j] == 0x1b && line.get(j + 1) == Some(&b'\\') {
                        j += 2;
                        break;
                    }
                    j += 1;
                }
                i = j;
            }
            Some(_) => i += 2,
            None => i += 1,
        }
    }
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
        assert_eq!(strip("trailing \x1b"), "trailing ");
        assert_eq!(strip("cut \x1b[31"), "cut ");
    }

    #[test]
    fn stage_rewrites_only_colored_lines() {
        let p = pipeline(vec![Stage::Decolorize]);
        assert_eq!(run(&p, "\x1b[33mWARN\x1b[0m x").unwrap().0, "WARN x");
        assert_eq!(run(&p, "no color").unwrap().0, "no color");
    }
}
