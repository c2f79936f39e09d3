//! Go's `fmt.Sprintf` for the template `printf` function: verbs
//! `%v %s %d %f %e %g %q %x %X %o %b %c %t %U %%`, flags `+ - # 0 space`,
//! width and precision (also `*`), and Go's `%!verb(type=value)` markers
//! for mismatched arguments.

use std::fmt::Write as _;

use super::value::{write_float_v, Value};

/// Widths and precisions above this are refused (output is capped anyway).
const MAX_WIDTH: usize = 1 << 20;

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Appends `format` applied to `args` to `out`.
pub fn sprintf(format: &str, args: &[Value<'_>], out: &mut String) -> Result<(), String> {
    let mut argi = 0;
    let mut rest = format;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        let mut spec = Spec::default();
        // Flags.
        loop {
            match rest.as_bytes().first() {
                Some(b'-') => spec.minus = true,
                Some(b'+') => spec.plus = true,
                Some(b'#') => spec.sharp = true,
                Some(b'0') => spec.zero = true,
                Some(b' ') => spec.space = true,
                _ => break,
            }
            rest = &rest[1..];
        }
        // Width.
        if rest.starts_with('*') {
            rest = &rest[1..];
            match args.get(argi) {
                Some(Value::Int(n)) => {
                    let n = *n;
                    if n < 0 {
                        spec.minus = true;
                    }
                    spec.width = Some(n.unsigned_abs() as usize);
                }
                _ => out.push_str("%!(BADWIDTH)"),
            }
            argi += 1;
        } else {
            let (n, r) = digits(rest);
            spec.width = n;
            rest = r;
        }
        // Precision.
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
            if rest.starts_with('*') {
                rest = &rest[1..];
                match args.get(argi) {
                    Some(Value::Int(n)) if *n >= 0 => spec.prec = Some(*n as usize),
                    _ => out.push_str("%!(BADPREC)"),
                }
                argi += 1;
            } else {
                let (n, r) = digits(rest);
                spec.prec = Some(n.unwrap_or(0));
                rest = r;
            }
        }
        if spec.width.is_some_and(|w| w > MAX_WIDTH) || spec.prec.is_some_and(|p| p > MAX_WIDTH) {
            return Err("printf: width or precision too large".to_string());
        }
        if spec.minus {
            spec.zero = false;
        }
        let Some(verb) = rest.chars().next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        rest = &rest[verb.len_utf8()..];
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        argi += 1;
        format_one(arg, verb, spec, out);
        if out.len() > super::MAX_OUTPUT {
            return Err(format!("output exceeds {} bytes", super::MAX_OUTPUT));
        }
    }
    out.push_str(rest);
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[argi..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(a.type_name());
            out.push('=');
            a.write_to(out);
        }
        out.push(')');
    }
    Ok(())
}

fn digits(s: &str) -> (Option<usize>, &str) {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return (None, s);
    }
    (s[..n].parse::<usize>().ok().or(Some(usize::MAX)), &s[n..])
}

fn bad_verb(arg: &Value<'_>, verb: char, out: &mut String) {
    let _ = write!(out, "%!{verb}(");
    if let Value::Nil = arg {
        out.push_str("<nil>");
    } else {
        out.push_str(arg.type_name());
        out.push('=');
        arg.write_to(out);
    }
    out.push(')');
}

/// Pads `body` (already formatted, without padding) to the width.
/// `sign_len` is the length of a sign/prefix that zero padding goes after.
fn pad(body: &str, spec: Spec, zero_ok: bool, sign_len: usize, out: &mut String) {
    let len = body.chars().count();
    let w = spec.width.unwrap_or(0);
    if len >= w {
        out.push_str(body);
        return;
    }
    let n = w - len;
    if spec.minus {
        out.push_str(body);
        out.extend(std::iter::repeat_n(' ', n));
    } else if spec.zero && zero_ok {
        out.push_str(&body[..sign_len]);
        out.extend(std::iter::repeat_n('0', n));
        out.push_str(&body[sign_len..]);
    } else {
        out.extend(std::iter::repeat_n(' ', n));
        out.push_str(body);
    }
}

fn format_one(arg: &Value<'_>, verb: char, spec: Spec, out: &mut String) {
    match arg {
        Value::Int(i) => format_int(*i, verb, spec, out),
        Value::Float(f) => format_float(*f, verb, spec, out),
        Value::Bool(b) => match verb {
            't' | 'v' => pad(if *b { "true" } else { "false" }, spec, false, 0, out),
            _ => bad_verb(arg, verb, out),
        },
        Value::Str(s) => format_str(s, verb, spec, out),
        Value::Nil => match verb {
            'v' => pad("<nil>", spec, false, 0, out),
            _ => bad_verb(arg, verb, out),
        },
        Value::Time(_) => match verb {
            'v' | 's' => format_str(&arg.to_cow(), 's', spec, out),
            'q' => format_str(&arg.to_cow(), 'q', spec, out),
            _ => bad_verb(arg, verb, out),
        },
        Value::List(_) | Value::Map(_) | Value::Labels(_) => match verb {
            'v' | 's' => pad(&arg.to_cow(), spec, false, 0, out),
            _ => bad_verb(arg, verb, out),
        },
    }
}

fn format_str(s: &str, verb: char, spec: Spec, out: &mut String) {
    let truncated = |s: &str| -> String {
        match spec.prec {
            Some(p) => s.chars().take(p).collect(),
            None => s.to_string(),
        }
    };
    match verb {
        's' | 'v' => {
            if spec.prec.is_none() && spec.width.is_none() {
                out.push_str(s);
            } else {
                pad(&truncated(s), spec, true, 0, out);
            }
        }
        'q' => {
            let mut q = String::new();
            if spec.sharp && !s.contains('`') {
                q.push('`');
                q.push_str(&truncated(s));
                q.push('`');
            } else {
                write_quoted(&truncated(s), &mut q);
            }
            pad(&q, spec, false, 0, out);
        }
        'x' | 'X' => {
            let bytes = match spec.prec {
                Some(p) => &s.as_bytes()[..p.min(s.len())],
                None => s.as_bytes(),
            };
            let mut h = String::new();
            for (i, b) in bytes.iter().enumerate() {
                if spec.space && i > 0 {
                    h.push(' ');
                }
                if spec.sharp && (spec.space || i == 0) {
                    h.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                if verb == 'x' {
                    let _ = write!(h, "{b:02x}");
                } else {
                    let _ = write!(h, "{b:02X}");
                }
            }
            pad(&h, spec, false, 0, out);
        }
        _ => bad_verb(&Value::Str(s.to_string().into()), verb, out),
    }
}

fn format_int(i: i64, verb: char, spec: Spec, out: &mut String) {
    let neg = i < 0;
    let u = i.unsigned_abs();
    let mut digits = match verb {
        'd' | 'v' => u.to_string(),
        'x' => format!("{u:x}"),
        'X' => format!("{u:X}"),
        'o' | 'O' => format!("{u:o}"),
        'b' => format!("{u:b}"),
        'c' => {
            let c = char::from_u32(i as u32)
                .filter(|_| (0..=0x10FFFF).contains(&i))
                .unwrap_or('\u{FFFD}');
            return pad(&c.to_string(), spec, false, 0, out);
        }
        'q' => {
            let c = char::from_u32(i as u32)
                .filter(|_| (0..=0x10FFFF).contains(&i))
                .unwrap_or('\u{FFFD}');
            let mut q = String::from("'");
            if c == '\'' {
                q.push_str("\\'");
            } else if c == '"' {
                q.push('"');
            } else {
                let mut tmp = String::new();
                write_quoted(&c.to_string(), &mut tmp);
                q.push_str(&tmp[1..tmp.len() - 1]);
            }
            q.push('\'');
            return pad(&q, spec, false, 0, out);
        }
        'U' => {
            let s = format!("U+{u:04X}");
            return pad(&s, spec, false, 0, out);
        }
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' | 's' | 't' => {
            return bad_verb(&Value::Int(i), verb, out);
        }
        _ => return bad_verb(&Value::Int(i), verb, out),
    };
    if let Some(p) = spec.prec {
        if p == 0 && u == 0 {
            digits.clear();
        }
        if digits.len() < p {
            digits = format!("{}{digits}", "0".repeat(p - digits.len()));
        }
    }
    let mut prefix = String::new();
    if neg {
        prefix.push('-');
    } else if spec.plus {
        prefix.push('+');
    } else if spec.space {
        prefix.push(' ');
    }
    if spec.sharp {
        match verb {
            'x' => prefix.push_str("0x"),
            'X' => prefix.push_str("0X"),
            'o' if !digits.starts_with('0') => prefix.push('0'),
            'b' => prefix.push_str("0b"),
            _ => {}
        }
    }
    if verb == 'O' {
        prefix.push_str("0o");
    }
    let sign_len = prefix.len();
    prefix.push_str(&digits);
    pad(&prefix, spec, spec.prec.is_none(), sign_len, out);
}

/// Rust's `{:e}` output ("1.5e6") in Go's form ("1.5e+06").
fn go_exp(s: &str, upper: bool) -> String {
    let (m, e) = s.split_once('e').unwrap_or((s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    format!(
        "{m}{}{}{:02}",
        if upper { 'E' } else { 'e' },
        if e < 0 { '-' } else { '+' },
        e.abs()
    )
}

fn format_float(f: f64, verb: char, spec: Spec, out: &mut String) {
    let body = if f.is_nan() {
        "NaN".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        let a = f.abs();
        match verb {
            'v' | 'g' | 'G' if spec.prec.is_none() => {
                let mut s = String::new();
                write_float_v(a, &mut s);
                if verb == 'G' {
                    s = s.to_uppercase();
                }
                s
            }
            'g' | 'G' => {
                let p = spec.prec.unwrap_or(6).max(1);
                let e = format!("{:.*e}", p - 1, a);
                let exp: i32 = e
                    .split_once('e')
                    .and_then(|(_, x)| x.parse().ok())
                    .unwrap_or(0);
                let s = if exp < -4 || exp >= p as i32 {
                    let (m, x) = e.split_once('e').unwrap_or((&e, "0"));
                    let m = if spec.sharp || !m.contains('.') {
                        m.to_string()
                    } else {
                        m.trim_end_matches('0').trim_end_matches('.').to_string()
                    };
                    go_exp(&format!("{m}e{x}"), verb == 'G')
                } else {
                    let decimals = (p as i32 - 1 - exp).max(0) as usize;
                    let s = format!("{:.*}", decimals, a);
                    if spec.sharp || !s.contains('.') {
                        s
                    } else {
                        s.trim_end_matches('0').trim_end_matches('.').to_string()
                    }
                };
                s
            }
            'f' | 'F' => format!("{:.*}", spec.prec.unwrap_or(6), a),
            'e' | 'E' => go_exp(&format!("{:.*e}", spec.prec.unwrap_or(6), a), verb == 'E'),
            _ => return bad_verb(&Value::Float(f), verb, out),
        }
    };
    let mut s = String::new();
    if f.is_sign_negative() && !f.is_nan() {
        s.push('-');
    } else if spec.plus {
        s.push('+');
    } else if spec.space {
        s.push(' ');
    }
    let sign_len = s.len();
    s.push_str(body.strip_prefix('+').unwrap_or(&body));
    pad(&s, spec, f.is_finite(), sign_len, out);
}

/// Go's `strconv.Quote`.
pub fn write_quoted(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(f: &str, args: &[Value<'_>]) -> String {
        let mut s = String::new();
        sprintf(f, args, &mut s).unwrap();
        s
    }

    #[test]
    fn go_verbs() {
        assert_eq!(p("%.2f", &[Value::Float(1.23456)]), "1.23");
        assert_eq!(p("%d items", &[Value::Int(42)]), "42 items");
        assert_eq!(p("%05d", &[Value::Int(-42)]), "-0042");
        assert_eq!(
            p("%5s|%-5s|", &[Value::str("ab"), Value::str("cd")]),
            "   ab|cd   |"
        );
        assert_eq!(p("%-5.5s|", &[Value::str("GETTING")]), "GETTI|");
        assert_eq!(p("%15.15s", &[Value::str("host")]), "           host");
        assert_eq!(p("%q", &[Value::str("a\"b\n")]), "\"a\\\"b\\n\"");
        assert_eq!(p("%x %X", &[Value::Int(255), Value::str("hi")]), "ff 6869");
        assert_eq!(
            p(
                "%v %v %v",
                &[Value::Float(1e6), Value::Bool(true), Value::Nil]
            ),
            "1e+06 true <nil>"
        );
        assert_eq!(p("%e", &[Value::Float(1234.5678)]), "1.234568e+03");
        assert_eq!(p("%g", &[Value::Float(0.000012)]), "1.2e-05");
        assert_eq!(p("%.3g", &[Value::Float(1234.5678)]), "1.23e+03");
        assert_eq!(p("%+d %%", &[Value::Int(5)]), "+5 %");
        assert_eq!(p("%8.3f|", &[Value::Float(-1.23456)]), "  -1.235|");
    }

    #[test]
    fn go_error_markers() {
        assert_eq!(p("%d", &[Value::str("abc")]), "%!d(string=abc)");
        assert_eq!(p("%f", &[Value::Int(3)]), "%!f(int=3)");
        assert_eq!(p("%s %s", &[Value::str("a")]), "a %!s(MISSING)");
        assert_eq!(
            p("%s", &[Value::str("a"), Value::Int(1)]),
            "a%!(EXTRA int=1)"
        );
        let mut s = String::new();
        assert!(sprintf("%999999999s", &[Value::str("a")], &mut s).is_err());
    }
}
