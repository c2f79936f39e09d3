//! The dynamic values a template computes with, and Go's rules for them:
//! truthiness (`if`), printing (`fmt.Sprint`), and float formatting (`%v`).
//!
//! Strings borrow from the template or the entry's labels where they can,
//! so `{{.a}}` never allocates.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;

use super::timefmt::Time;
use super::TemplateData;

/// A value during execution. `'a` is the lifetime of the template and the
/// entry's data.
#[derive(Clone)]
pub enum Value<'a> {
    /// Go's untyped `nil` (also a missing key of a JSON object).
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    List(Rc<Vec<Value<'a>>>),
    Map(Rc<BTreeMap<String, Value<'a>>>),
    Time(Time),
    /// The entry's label map (`.`), a Go `map[string]string`, read lazily.
    Labels(&'a dyn TemplateData),
}

impl<'a> Value<'a> {
    pub fn str(s: &'a str) -> Value<'a> {
        Value::Str(Cow::Borrowed(s))
    }

    pub fn string(s: String) -> Value<'a> {
        Value::Str(Cow::Owned(s))
    }

    /// Go's type name, as used in error messages and `%!v(type=...)`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
            Value::Time(_) => "time.Time",
            Value::Labels(_) => "map[string]string",
        }
    }

    /// Go's `if` truthiness: zero values and empty collections are false.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Time(_) => true,
            Value::Labels(d) => {
                let mut any = false;
                d.for_each_label(&mut |_, _| any = true);
                any
            }
        }
    }

    /// Appends the value as `fmt.Sprint` would print it.
    pub fn write_to(&self, out: &mut String) {
        match self {
            Value::Nil => out.push_str("<nil>"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => write_float_v(*f, out),
            Value::Str(s) => out.push_str(s),
            Value::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write_to(out);
                }
                out.push(']');
            }
            Value::Map(m) => {
                out.push_str("map[");
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write_to(out);
                }
                out.push(']');
            }
            Value::Time(t) => t.write_string(out),
            Value::Labels(d) => {
                out.push_str("map[");
                let mut first = true;
                for (k, v) in sorted_labels(*d) {
                    if !first {
                        out.push(' ');
                    }
                    first = false;
                    out.push_str(&k);
                    out.push(':');
                    out.push_str(&v);
                }
                out.push(']');
            }
        }
    }

    /// The value printed, as a string (borrowing when it already is one).
    pub fn to_cow(&self) -> Cow<'a, str> {
        match self {
            Value::Str(s) => s.clone(),
            v => {
                let mut s = String::new();
                v.write_to(&mut s);
                Cow::Owned(s)
            }
        }
    }

    /// Number of elements for `len`, if the value has a length.
    pub fn len(&self) -> Option<usize> {
        match self {
            Value::Str(s) => Some(s.len()),
            Value::List(l) => Some(l.len()),
            Value::Map(m) => Some(m.len()),
            Value::Labels(d) => {
                let mut n = 0;
                d.for_each_label(&mut |_, _| n += 1);
                Some(n)
            }
            _ => None,
        }
    }
}

/// All labels of an entry, sorted by name (Go prints and ranges over maps in
/// key order).
pub fn sorted_labels(d: &dyn TemplateData) -> Vec<(String, String)> {
    let mut v = Vec::new();
    d.for_each_label(&mut |k, val| v.push((k.to_string(), val.to_string())));
    v.sort();
    v.dedup_by(|a, b| a.0 == b.0);
    v
}

/// Converts a parsed JSON value (for `fromJson`): numbers become float64 as
/// in Go's `encoding/json`.
pub fn from_json<'a>(j: serde_json::Value) -> Value<'a> {
    match j {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::string(s),
        serde_json::Value::Array(a) => Value::List(Rc::new(a.into_iter().map(from_json).collect())),
        serde_json::Value::Object(o) => Value::Map(Rc::new(
            o.into_iter().map(|(k, v)| (k, from_json(v))).collect(),
        )),
    }
}

/// Shortest decimal digits and decimal exponent of a finite, non-zero float:
/// `f = 0.d1d2d3... × 10^exp`.
fn shortest_digits(f: f64) -> (String, i32) {
    // Rust's `{:e}` gives the shortest round-tripping digits: "1.2345e-7".
    let s = format!("{:e}", f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    (digits, exp + 1)
}

/// Writes a float like Go's `%v` (`strconv.FormatFloat(f, 'g', -1, 64)`):
/// `3`, `1.5`, `1e+06`, `1.234567e+06`, `1e-05`.
pub fn write_float_v(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str("NaN");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if f == 0.0 {
        out.push_str(if f.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    if f < 0.0 {
        out.push('-');
    }
    let (digits, dp) = shortest_digits(f);
    // strconv's shortest %g: exponent form when exp < -4 || exp >= 6.
    let exp = dp - 1;
    if !(-4..6).contains(&exp) {
        write_exp(&digits, exp, out);
    } else {
        write_fixed(&digits, dp, out);
    }
}

fn write_exp(digits: &str, exp: i32, out: &mut String) {
    let mut chars = digits.chars();
    if let Some(c) = chars.next() {
        out.push(c);
    }
    let rest = chars.as_str();
    if !rest.is_empty() {
        out.push('.');
        out.push_str(rest);
    }
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(out, "{:02}", exp.abs());
}

fn write_fixed(digits: &str, dp: i32, out: &mut String) {
    let nd = digits.len() as i32;
    if dp <= 0 {
        out.push_str("0.");
        for _ in 0..(-dp) {
            out.push('0');
        }
        out.push_str(digits);
    } else if dp >= nd {
        out.push_str(digits);
        for _ in 0..(dp - nd) {
            out.push('0');
        }
    } else {
        let (a, b) = digits.split_at(dp as usize);
        out.push_str(a);
        out.push('.');
        out.push_str(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(f: f64) -> String {
        let mut s = String::new();
        write_float_v(f, &mut s);
        s
    }

    #[test]
    fn floats_print_like_go_v() {
        assert_eq!(v(3.0), "3");
        assert_eq!(v(1.5), "1.5");
        assert_eq!(v(1e6), "1e+06");
        assert_eq!(v(123456.0), "123456");
        assert_eq!(v(1234567.0), "1.234567e+06");
        assert_eq!(v(0.0001), "0.0001");
        assert_eq!(v(0.00001), "1e-05");
        assert_eq!(v(-2.5), "-2.5");
        assert_eq!(v(10.5), "10.5");
        assert_eq!(v(123.556), "123.556");
        assert_eq!(v(1e21), "1e+21");
        assert_eq!(v(0.1 + 0.2), "0.30000000000000004");
    }
}
