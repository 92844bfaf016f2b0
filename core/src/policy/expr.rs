//! Compiling CEL conditions with load-time checks the `cel` crate does not do itself:
//! size and nesting bounds *before* parsing (its parser recurses deeply and can overflow the
//! stack), a tree-depth bound after parsing, and a closed world of variables and functions
//! (`Program::references()` minus comprehension variables), so a typo fails at load, not at
//! request time.

use super::document::LimitsDoc;
use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::Program;

/// Variables a condition may use.
pub const VARIABLES: &[&str] = &["key", "user", "request", "now"];

/// keycel's functions (see `functions.rs`).
pub const KEYCEL_FUNCTIONS: &[&str] = &["has_scope", "in_account_scope", "ip_in", "hour_utc", "weekday_utc"];

/// CEL standard functions available in this build (no `regex`/`chrono` features: `matches`,
/// `timestamp` and `duration` are not here, so they are refused at load instead of failing
/// at request time). Operators are the `_x_`/`@x`/`!_` names.
pub const STD_FUNCTIONS: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "string",
    "int",
    "uint",
    "double",
    "bytes",
    "bool",
    "type",
    "dyn",
    "max",
    "min",
];

fn is_operator(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('@') || name == "!_" || name == "-_"
}

/// A compile failure, positioned inside the expression (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// What is wrong.
    pub message: String,
    /// Line within the expression.
    pub line: u32,
    /// Column within the expression.
    pub column: u32,
}

fn err(message: impl Into<String>, line: u32, column: u32) -> ExprError {
    ExprError { message: message.into(), line, column }
}

fn line_col(src: &str, offset: usize) -> (u32, u32) {
    let before = src.get(..offset.min(src.len())).unwrap_or("");
    let line = before.matches('\n').count() as u32 + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
    (line, col)
}

/// Bracket nesting of the source, skipping string literals. Runs before the parser.
fn nesting_depth(src: &str) -> (usize, usize) {
    let (mut depth, mut max, mut at) = (0usize, 0usize, 0usize);
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    for (i, b) in src.bytes().enumerate() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == q {
                quote = None;
            }
            continue;
        }
        match b {
            b'\'' | b'"' => quote = Some(b),
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    max = depth;
                    at = i;
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    (max, at)
}

/// Parses on a thread with a large stack where threads exist (the `cel` parser's frames are
/// large, especially in debug builds), else inline (WASM, whose stack the binding sizes).
fn parse(src: &str) -> Result<Program, ExprError> {
    let syntax = |e: cel::ParseErrors| {
        let first = e.errors.first();
        let (l, c) = first.map_or((1, 1), |p| (p.pos.0.max(1) as u32, (p.pos.1 + 1).max(1) as u32));
        err(first.map_or_else(|| "syntax error".to_string(), |p| p.msg.clone()), l, c)
    };
    let owned = src.to_string();
    let spawned = std::thread::Builder::new()
        .name("keycel-cel-parse".into())
        .stack_size(64 << 20)
        .spawn(move || Program::compile(&owned));
    match spawned {
        Ok(handle) => match handle.join() {
            Ok(result) => result.map_err(syntax),
            Err(_) => Err(err("the CEL parser failed on this expression", 1, 1)),
        },
        Err(_) => Program::compile(src).map_err(syntax),
    }
}

struct Walk<'a> {
    depth: usize,
    comprehension: usize,
    node: &'a IdedExpr,
}

/// Compiles `src` and checks it against `limits` and the closed world of names.
pub fn compile(src: &str, limits: &LimitsDoc) -> Result<Program, ExprError> {
    if src.len() > limits.max_expression_bytes {
        return Err(err(
            format!("expression is {} bytes; the limit is {}", src.len(), limits.max_expression_bytes),
            1,
            1,
        ));
    }
    let (nesting, at) = nesting_depth(src);
    if nesting > limits.max_nesting {
        let (l, c) = line_col(src, at);
        return Err(err(format!("brackets nest {nesting} deep; the limit is {}", limits.max_nesting), l, c));
    }
    let program = parse(src)?;
    let position =
        |id: u64| program.source_info().offset_for(id).map_or((1, 1), |(start, _)| line_col(src, start as usize));

    // Iterative walk: depth, comprehension nesting, bound variables, unsupported nodes.
    let mut bound: Vec<String> = Vec::new();
    let mut stack = vec![Walk { depth: 1, comprehension: 0, node: program.expression() }];
    while let Some(Walk { depth, comprehension, node }) = stack.pop() {
        if depth > limits.max_depth {
            let (l, c) = position(node.id);
            return Err(err(format!("expression is nested deeper than {}", limits.max_depth), l, c));
        }
        macro_rules! push {
            ($n:expr, $comp:expr) => {
                stack.push(Walk { depth: depth + 1, comprehension: $comp, node: $n })
            };
        }
        match &node.expr {
            Expr::Call(call) => {
                if let Some(t) = &call.target {
                    push!(t, comprehension);
                }
                call.args.iter().for_each(|a| push!(a, comprehension));
            }
            Expr::Comprehension(c) => {
                let nested = comprehension + 1;
                if nested > limits.max_comprehension_nesting {
                    let (l, col) = position(node.id);
                    return Err(err(
                        format!(
                            "comprehensions (map/filter/all/exists) nest deeper than {}",
                            limits.max_comprehension_nesting
                        ),
                        l,
                        col,
                    ));
                }
                bound.push(c.iter_var.clone());
                bound.extend(c.iter_var2.clone());
                bound.push(c.accu_var.clone());
                push!(&c.iter_range, comprehension);
                for n in [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                    push!(n, nested);
                }
            }
            Expr::List(l) => l.elements.iter().for_each(|e| push!(e, comprehension)),
            Expr::Map(m) => {
                for e in &m.entries {
                    match &e.expr {
                        EntryExpr::MapEntry(me) => {
                            push!(&me.key, comprehension);
                            push!(&me.value, comprehension);
                        }
                        EntryExpr::StructField(_) => {
                            let (l, c) = position(node.id);
                            return Err(err("struct fields are not supported", l, c));
                        }
                    }
                }
            }
            Expr::Select(s) => {
                // `request.methd` is as much a typo as `reqest`: fields of the declared
                // variables are a closed world too (maps below them, such as
                // `key.metadata` and `request.attributes`, are open).
                if let Expr::Ident(var) = &s.operand.expr {
                    if VARIABLES.contains(&var.as_str()) && !bound.iter().any(|b| b == var) {
                        let fields = super::facts::fields_of(var).unwrap_or(&[]);
                        if !fields.contains(&s.field.as_str()) {
                            let (l, c) = position(node.id);
                            let known = if fields.is_empty() { "none".to_string() } else { fields.join(", ") };
                            return Err(err(format!("unknown field `{}` of `{var}` (fields: {known})", s.field), l, c));
                        }
                    }
                }
                push!(&s.operand, comprehension)
            }
            Expr::Struct(_) => {
                let (l, c) = position(node.id);
                return Err(err("message construction is not supported", l, c));
            }
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
        }
    }

    let refs = program.references();
    let mut vars = refs.variables();
    vars.sort_unstable();
    for v in vars {
        if !VARIABLES.contains(&v) && !bound.iter().any(|b| b == v) {
            let (l, c) = find_node(&program, |e| matches!(e, Expr::Ident(n) if n == v)).map_or((1, 1), position);
            return Err(err(format!("unknown variable `{v}` (declared: key, user, request, now)"), l, c));
        }
    }
    let mut funcs = refs.functions();
    funcs.sort_unstable();
    for f in funcs {
        if !is_operator(f) && !KEYCEL_FUNCTIONS.contains(&f) && !STD_FUNCTIONS.contains(&f) {
            // The parser places a call at its `(`; point at the function's name instead.
            let offset = find_node(&program, |e| matches!(e, Expr::Call(call) if call.func_name == f))
                .and_then(|id| program.source_info().offset_for(id))
                .map(|(start, _)| start as usize);
            let (l, c) = offset.map_or((1, 1), |o| {
                let name_at = src.get(..o).filter(|b| b.ends_with(f)).map_or(o, |b| b.len() - f.len());
                line_col(src, name_at)
            });
            return Err(err(format!("unknown function `{f}`"), l, c));
        }
    }
    drop(refs);
    Ok(program)
}

fn find_node(program: &Program, pred: impl Fn(&Expr) -> bool) -> Option<u64> {
    let mut stack = vec![program.expression()];
    while let Some(n) = stack.pop() {
        if pred(&n.expr) {
            return Some(n.id);
        }
        match &n.expr {
            Expr::Call(c) => {
                stack.extend(c.target.as_deref());
                stack.extend(c.args.iter());
            }
            Expr::Comprehension(c) => {
                stack.extend([&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result])
            }
            Expr::List(l) => stack.extend(l.elements.iter()),
            Expr::Map(m) => {
                for e in &m.entries {
                    if let EntryExpr::MapEntry(me) = &e.expr {
                        stack.extend([&me.key, &me.value]);
                    }
                }
            }
            Expr::Select(s) => stack.push(&s.operand),
            _ => {}
        }
    }
    None
}
