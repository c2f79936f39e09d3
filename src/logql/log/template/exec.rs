//! Executes a parsed template for one entry: walks the tree, evaluates
//! pipelines, keeps variables, and enforces the output, step and depth
//! limits. Output is appended straight into the caller's buffer.

use super::funcs::{call, Ctx, Func, RegexCache};
use super::parse::{line_of, Arg, Branch, Cmd, Node, Pipe, Tree};
use super::timefmt::{format_layout, Time};
use super::value::{sorted_labels, Value};
use super::{TemplateData, MAX_DEPTH, MAX_OUTPUT, MAX_STEPS};

enum Flow {
    Normal,
    Break,
    Continue,
}

pub struct Exec<'a, 'o> {
    pub tree: &'a Tree,
    pub name: &'a str,
    pub src: &'a str,
    pub data: &'a dyn TemplateData,
    pub out: &'o mut String,
    pub start: usize,
    steps: usize,
    depth: usize,
    /// Declared variables, innermost last. `$` is looked up separately so
    /// simple templates never allocate here.
    vars: Vec<(&'a str, Value<'a>)>,
    /// The value of `$` (the data, or the argument of `{{template}}`).
    root: Value<'a>,
    ctx: Ctx<'a>,
}

type Res<T> = Result<T, String>;

impl<'a, 'o> Exec<'a, 'o> {
    pub fn new(
        tree: &'a Tree,
        name: &'a str,
        src: &'a str,
        data: &'a dyn TemplateData,
        regexes: &'a RegexCache,
        out: &'o mut String,
    ) -> Self {
        let start = out.len();
        Exec {
            tree,
            name,
            src,
            data,
            out,
            start,
            steps: 0,
            depth: 0,
            vars: Vec::new(),
            root: Value::Labels(data),
            ctx: Ctx {
                regexes,
                line: data.line(),
                ts_ns: data.timestamp_ns(),
            },
        }
    }

    pub fn run(&mut self) -> Res<()> {
        let dot = Value::Labels(self.data);
        self.walk(&dot, &self.tree.root).map(|_| ())
    }

    /// Go's execution error: `template: line:1:5: executing "line" at <x>: msg`.
    fn err(&self, pos: usize, at: &str, msg: impl std::fmt::Display) -> String {
        let pos = pos.min(self.src.len());
        let before = &self.src.as_bytes()[..pos];
        let col = match before.iter().rposition(|&b| b == b'\n') {
            Some(nl) => pos - nl - 1,
            None => pos,
        };
        format!(
            "template: {}:{}:{}: executing \"{}\" at <{}>: {}",
            self.name,
            line_of(self.src, pos),
            col,
            self.name,
            at,
            msg
        )
    }

    fn step(&mut self, pos: usize) -> Res<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(self.err(pos, "range", format!("template exceeded {MAX_STEPS} steps")));
        }
        Ok(())
    }

    fn check_output(&self, pos: usize) -> Res<()> {
        if self.out.len() - self.start > MAX_OUTPUT {
            return Err(self.err(
                pos,
                "output",
                format!("template output exceeds {MAX_OUTPUT} bytes"),
            ));
        }
        Ok(())
    }

    /// Runs a list of nodes. Every nested list (block bodies and
    /// `{{template}}` calls) counts against [`MAX_DEPTH`], which bounds the
    /// native stack used by hostile templates.
    fn walk(&mut self, dot: &Value<'a>, nodes: &'a [Node]) -> Res<Flow> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(
                0,
                "template",
                format!("exceeded maximum template depth ({MAX_DEPTH})"),
            ));
        }
        let mark = self.vars.len();
        let r = self.walk_inner(dot, nodes);
        self.vars.truncate(mark);
        self.depth -= 1;
        r
    }

    fn walk_inner(&mut self, dot: &Value<'a>, nodes: &'a [Node]) -> Res<Flow> {
        for n in nodes {
            match n {
                Node::Text(t) => {
                    self.out.push_str(t);
                    self.check_output(0)?;
                }
                Node::Action(p) => {
                    self.step(p.pos)?;
                    let v = self.eval_pipe(dot, p)?;
                    if p.decl.is_empty() {
                        self.print(&v);
                        self.check_output(p.pos)?;
                    }
                }
                Node::If(b) => {
                    let mark = self.vars.len();
                    let v = self.eval_pipe(dot, &b.pipe)?;
                    let f = if v.truthy() {
                        self.walk(dot, &b.list)?
                    } else if let Some(e) = &b.else_list {
                        self.walk(dot, e)?
                    } else {
                        Flow::Normal
                    };
                    self.vars.truncate(mark);
                    if !matches!(f, Flow::Normal) {
                        return Ok(f);
                    }
                }
                Node::With(b) => {
                    let mark = self.vars.len();
                    let v = self.eval_pipe(dot, &b.pipe)?;
                    let f = if v.truthy() {
                        self.walk(&v, &b.list)?
                    } else if let Some(e) = &b.else_list {
                        self.walk(dot, e)?
                    } else {
                        Flow::Normal
                    };
                    self.vars.truncate(mark);
                    if !matches!(f, Flow::Normal) {
                        return Ok(f);
                    }
                }
                Node::Range(b) => self.range(dot, b)?,
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
                Node::Template { pos, name, pipe } => {
                    let Some(body) = self.tree.defines.get(name) else {
                        return Err(self.err(
                            *pos,
                            &format!("{{{{template \"{name}\"}}}}"),
                            format!("no such template \"{name}\""),
                        ));
                    };
                    let arg = match pipe {
                        Some(p) => self.eval_pipe(dot, p)?,
                        None => Value::Nil,
                    };
                    let saved_vars = std::mem::take(&mut self.vars);
                    let saved_root = std::mem::replace(&mut self.root, arg.clone());
                    let r = self.walk(&arg, body);
                    self.vars = saved_vars;
                    self.root = saved_root;
                    r?;
                }
            }
        }
        Ok(Flow::Normal)
    }

    fn range(&mut self, dot: &Value<'a>, b: &'a Branch) -> Res<()> {
        let mark = self.vars.len();
        let v = self.eval_pipe_value(dot, &b.pipe)?;
        let decl = &b.pipe.decl;
        for d in decl {
            self.vars.push((d.as_str(), Value::Nil));
        }
        let items: Vec<(Value<'a>, Value<'a>)> = match &v {
            Value::List(l) => l
                .iter()
                .enumerate()
                .map(|(i, e)| (Value::Int(i as i64), e.clone()))
                .collect(),
            Value::Map(m) => m
                .iter()
                .map(|(k, e)| (Value::string(k.clone()), e.clone()))
                .collect(),
            Value::Labels(d) => sorted_labels(*d)
                .into_iter()
                .map(|(k, e)| (Value::string(k), Value::string(e)))
                .collect(),
            Value::Int(n) => {
                if *n > MAX_STEPS as i64 {
                    return Err(self.err(
                        b.pipe.pos,
                        "range",
                        format!("template exceeded {MAX_STEPS} steps"),
                    ));
                }
                (0..(*n).max(0))
                    .map(|i| (Value::Int(i), Value::Int(i)))
                    .collect()
            }
            Value::Nil => Vec::new(),
            v => {
                return Err(self.err(
                    b.pipe.pos,
                    "range",
                    format!("range can't iterate over {}", v.to_cow()),
                ))
            }
        };
        let empty = items.is_empty();
        for (k, e) in items {
            self.step(b.pipe.pos)?;
            match decl.len() {
                1 => self.set_var_at(mark, e.clone()),
                2 => {
                    self.set_var_at(mark, k);
                    self.set_var_at(mark + 1, e.clone());
                }
                _ => {}
            }
            match self.walk(&e, &b.list)? {
                Flow::Break => break,
                Flow::Continue | Flow::Normal => {}
            }
        }
        self.vars.truncate(mark);
        if empty {
            if let Some(e) = &b.else_list {
                self.walk(dot, e)?;
            }
        }
        Ok(())
    }

    fn set_var_at(&mut self, i: usize, v: Value<'a>) {
        if let Some(slot) = self.vars.get_mut(i) {
            slot.1 = v;
        }
    }

    fn print(&mut self, v: &Value<'a>) {
        match v {
            Value::Nil => self.out.push_str("<no value>"),
            Value::Str(s) => self.out.push_str(s),
            v => v.write_to(self.out),
        }
    }

    /// Evaluates a pipeline and binds its declared variables.
    fn eval_pipe(&mut self, dot: &Value<'a>, p: &'a Pipe) -> Res<Value<'a>> {
        let v = self.eval_pipe_value(dot, p)?;
        if let Some(name) = p.decl.first() {
            if p.assign {
                match self
                    .vars
                    .iter_mut()
                    .rev()
                    .find(|(n, _)| *n == name.as_str())
                {
                    Some(slot) => slot.1 = v.clone(),
                    None => {
                        return Err(self.err(p.pos, name, format!("undefined variable: {name}")))
                    }
                }
            } else {
                self.vars.push((name.as_str(), v.clone()));
            }
        }
        Ok(v)
    }

    fn eval_pipe_value(&mut self, dot: &Value<'a>, p: &'a Pipe) -> Res<Value<'a>> {
        let mut val: Option<Value<'a>> = None;
        for c in &p.cmds {
            val = Some(self.eval_cmd(dot, c, val)?);
        }
        Ok(val.unwrap_or(Value::Nil))
    }

    fn var(&self, name: &str) -> Value<'a> {
        if name == "$" {
            return self.root.clone();
        }
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Nil)
    }

    fn eval_cmd(&mut self, dot: &Value<'a>, c: &'a Cmd, fin: Option<Value<'a>>) -> Res<Value<'a>> {
        let Some(first) = c.args.first() else {
            return Err(self.err(c.pos, "", "missing value for command"));
        };
        let has_args = c.args.len() > 1 || fin.is_some();
        match first {
            Arg::Func(f) => self.call_func(dot, *f, c, fin),
            Arg::Field(fields) => self.eval_fields(dot, dot.clone(), fields, c, fin, ""),
            Arg::Var(name, fields) => {
                let v = self.var(name);
                if fields.is_empty() {
                    if has_args {
                        return Err(self.err(
                            c.pos,
                            name,
                            format!("can't give argument to non-function {name}"),
                        ));
                    }
                    return Ok(v);
                }
                self.eval_fields(dot, v, fields, c, fin, name)
            }
            Arg::Pipe(p, fields) => {
                let v = self.eval_pipe_value(dot, p)?;
                if fields.is_empty() {
                    if has_args {
                        return Err(self.err(
                            c.pos,
                            "(...)",
                            "can't give argument to non-function",
                        ));
                    }
                    return Ok(v);
                }
                self.eval_fields(dot, v, fields, c, fin, "(...)")
            }
            Arg::Nil => Err(self.err(c.pos, "nil", "nil is not a command")),
            a => {
                if has_args {
                    return Err(self.err(c.pos, "", "can't give argument to non-function"));
                }
                self.eval_arg(dot, a, c.pos)
            }
        }
    }

    /// Field chain on `recv`; the last field may be a method taking the
    /// command's remaining arguments (only `time.Time` has methods).
    fn eval_fields(
        &mut self,
        dot: &Value<'a>,
        mut recv: Value<'a>,
        fields: &'a [String],
        c: &'a Cmd,
        fin: Option<Value<'a>>,
        prefix: &str,
    ) -> Res<Value<'a>> {
        // Only built on error: the hot path must not allocate.
        let at = || format!("{prefix}.{}", fields.join("."));
        let n = fields.len();
        for (i, f) in fields.iter().enumerate() {
            let last = i + 1 == n;
            recv = match recv {
                Value::Labels(d) => Value::str(d.label(f).unwrap_or("")),
                Value::Map(m) => m.get(f.as_str()).cloned().unwrap_or(Value::Nil),
                Value::Nil => Value::Nil,
                Value::Time(t) => {
                    let mut args = Vec::new();
                    if last {
                        for a in &c.args[1..] {
                            args.push(self.eval_arg(dot, a, c.pos)?);
                        }
                        if let Some(v) = &fin {
                            args.push(v.clone());
                        }
                    }
                    match time_method(&t, f, &args) {
                        Ok(v) => {
                            if last {
                                return Ok(v);
                            }
                            v
                        }
                        Err(e) => return Err(self.err(c.pos, &at(), e)),
                    }
                }
                v => {
                    return Err(self.err(
                        c.pos,
                        &at(),
                        format!("can't evaluate field {f} in type {}", v.type_name()),
                    ))
                }
            };
            if last && (c.args.len() > 1 || fin.is_some()) {
                return Err(self.err(
                    c.pos,
                    &at(),
                    format!("{f} is not a method but has arguments"),
                ));
            }
        }
        Ok(recv)
    }

    fn eval_arg(&mut self, dot: &Value<'a>, a: &'a Arg, pos: usize) -> Res<Value<'a>> {
        Ok(match a {
            Arg::Dot => dot.clone(),
            Arg::Nil => Value::Nil,
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Number(n) => match (n.is_float, n.int) {
                (false, Some(i)) => Value::Int(i),
                _ => Value::Float(n.float),
            },
            Arg::Str(s) => Value::str(s),
            Arg::Field(f) => {
                let v = dot.clone();
                self.fields_only(v, f, pos)?
            }
            Arg::Var(name, f) => {
                let v = self.var(name);
                self.fields_only(v, f, pos)?
            }
            Arg::Func(f) => {
                let cmd_args: &'a [Arg] = &[];
                self.call_with(dot, *f, cmd_args, None, None, pos)?
            }
            Arg::Pipe(p, f) => {
                let v = self.eval_pipe_value(dot, p)?;
                self.fields_only(v, f, pos)?
            }
        })
    }

    fn fields_only(
        &mut self,
        mut recv: Value<'a>,
        fields: &'a [String],
        pos: usize,
    ) -> Res<Value<'a>> {
        for f in fields {
            recv = match recv {
                Value::Labels(d) => Value::str(d.label(f).unwrap_or("")),
                Value::Map(m) => m.get(f.as_str()).cloned().unwrap_or(Value::Nil),
                Value::Nil => Value::Nil,
                Value::Time(t) => time_method(&t, f, &[]).map_err(|e| self.err(pos, f, e))?,
                v => {
                    return Err(self.err(
                        pos,
                        &format!(".{f}"),
                        format!("can't evaluate field {f} in type {}", v.type_name()),
                    ))
                }
            };
        }
        Ok(recv)
    }

    fn call_func(
        &mut self,
        dot: &Value<'a>,
        f: Func,
        c: &'a Cmd,
        fin: Option<Value<'a>>,
    ) -> Res<Value<'a>> {
        self.call_with(dot, f, &c.args[1..], fin, c.regex.as_deref(), c.pos)
    }

    fn call_with(
        &mut self,
        dot: &Value<'a>,
        f: Func,
        args: &'a [Arg],
        fin: Option<Value<'a>>,
        re: Option<&regex::Regex>,
        pos: usize,
    ) -> Res<Value<'a>> {
        self.step(pos)?;
        if matches!(f, Func::And | Func::Or) {
            let total = args.len() + fin.is_some() as usize;
            if total == 0 {
                return Err(self.err(
                    pos,
                    f.name(),
                    format!(
                        "wrong number of args for {}: want at least 1 got 0",
                        f.name()
                    ),
                ));
            }
            let mut last = Value::Nil;
            for a in args {
                let v = self.eval_arg(dot, a, pos)?;
                let t = v.truthy();
                if (f == Func::And && !t) || (f == Func::Or && t) {
                    return Ok(v);
                }
                last = v;
            }
            if let Some(v) = fin {
                last = v;
            }
            return Ok(last);
        }
        let mut vals = Vec::with_capacity(args.len() + 1);
        for a in args {
            vals.push(self.eval_arg(dot, a, pos)?);
        }
        if let Some(v) = fin {
            vals.push(v);
        }
        call(f, vals, &self.ctx, re).map_err(|e| self.err(pos, f.name(), e))
    }
}

/// The `time.Time` methods a template may call.
fn time_method<'a>(t: &Time, name: &str, args: &[Value<'a>]) -> Result<Value<'a>, String> {
    let civil = |layout: &str| {
        let mut s = String::new();
        format_layout(t, layout, &mut s);
        s.parse::<i64>().unwrap_or(0)
    };
    let want = if name == "Format" { 1 } else { 0 };
    if args.len() != want {
        return Err(format!(
            "wrong number of args for {name}: want {want} got {}",
            args.len()
        ));
    }
    Ok(match name {
        "Unix" => Value::Int(t.secs),
        "UnixMilli" => Value::Int(t.unix_millis()),
        "UnixNano" => Value::Int(t.unix_nanos()),
        "Year" => Value::Int(civil("2006")),
        "Day" => Value::Int(civil("2")),
        "Hour" => Value::Int(civil("15")),
        "Minute" => Value::Int(civil("4")),
        "Second" => Value::Int(civil("5")),
        "YearDay" => Value::Int(civil("002")),
        "Nanosecond" => Value::Int(t.nanos as i64),
        "UTC" | "Local" => Value::Time(Time {
            offset: 0,
            abbr: Default::default(),
            ..*t
        }),
        "String" => {
            let mut s = String::new();
            t.write_string(&mut s);
            Value::string(s)
        }
        "Format" => match &args[0] {
            Value::Str(l) => {
                let mut s = String::new();
                format_layout(t, l, &mut s);
                Value::string(s)
            }
            v => {
                return Err(format!(
                    "wrong type for value; expected string; got {}",
                    v.type_name()
                ))
            }
        },
        _ => return Err(format!("can't evaluate field {name} in type time.Time")),
    })
}
