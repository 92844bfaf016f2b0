//! Policies: a scope catalogue, roles, and allow/forbid rules with CEL conditions.
//!
//! A [`PolicySet`] is loaded from TOML (or the same structure as JSON, so bindings can pass
//! dicts and objects) and fully validated at load: every expression compiles within the run
//! limits, uses only declared variables and functions, roles and rules name only catalogued
//! scopes, unknown fields are rejected. Errors name the file, the rule and the position.

pub mod document;
pub mod expr;
pub(crate) mod facts;
pub mod functions;
pub mod scopes;
pub mod testing;

use crate::record::valid_scope;
use document::{LimitsDoc, PolicyDoc, RuleDoc};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// Largest policy document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// Deepest `[`/`{` nesting accepted in a TOML document (a policy needs 3). The `toml` parser
/// recurses once per level and would overflow the caller's stack (an abort, not an error) on
/// a document nested a few hundred deep, so deeper documents are refused before parsing.
pub const MAX_DOCUMENT_NESTING: usize = 32;

/// A policy that failed to load. Positions are 1-based, in the file where known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The file (or the origin name given for strings and values).
    pub file: String,
    /// The rule concerned, if any.
    pub rule: Option<String>,
    /// Line in the file.
    pub line: Option<u32>,
    /// Column in the file.
    pub column: Option<u32>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        if let Some(r) = &self.rule {
            write!(f, ": rule `{r}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for PolicyError {}

/// allow or forbid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants the action when the condition holds.
    Allow,
    /// Denies the action when the condition holds, whatever allows it.
    Forbid,
}

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// Id.
    pub id: String,
    /// Effect.
    pub effect: Effect,
    /// Action patterns.
    pub actions: Vec<String>,
    /// Condition source (`true` when absent).
    pub when: String,
    /// Compiled condition; `None` means always true.
    pub(crate) program: Option<cel::Program>,
    /// The condition recognised as an idiom the engine evaluates without the CEL interpreter
    /// (same function, same result; see [`Native`]).
    pub(crate) native: Option<Native>,
    /// Why it exists.
    pub description: String,
    /// Error code for forbids.
    pub code: String,
}

/// Conditions common enough to compile to a direct call. The call is the very function the
/// CEL binding of `has_scope` answers from (`Facts::has_scope`), so the result cannot differ;
/// it only skips the interpreter's name resolution and allocations on the hottest rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Native {
    /// `has_scope(request.action)`.
    ScopeCoversAction,
}

impl Native {
    fn recognise(program: &cel::Program) -> Option<Native> {
        use cel::common::ast::Expr;
        let Expr::Call(call) = &program.expression().expr else { return None };
        let [arg] = call.args.as_slice() else { return None };
        let is_request_action = matches!(&arg.expr, Expr::Select(s)
            if !s.test && s.field == "action" && matches!(&s.operand.expr, Expr::Ident(v) if v == "request"));
        (call.func_name == "has_scope" && call.target.is_none() && is_request_action)
            .then_some(Native::ScopeCoversAction)
    }
}

impl Rule {
    /// True when the rule covers `action`.
    pub fn covers(&self, action: &str) -> bool {
        scopes::any_matches(self.actions.iter().map(String::as_str), action)
    }
}

/// A validated, compiled policy.
#[derive(Debug)]
pub struct PolicySet {
    origin: String,
    doc: PolicyDoc,
    roles: BTreeMap<String, Vec<String>>,
    rules: Vec<Rule>,
}

impl PolicySet {
    /// Parses and validates TOML. `origin` names the source in errors (a file name).
    pub fn from_toml_str(src: &str, origin: &str) -> Result<Self, PolicyError> {
        let fail = |message: String, line: Option<u32>, column: Option<u32>| PolicyError {
            file: origin.to_string(),
            rule: None,
            line,
            column,
            message,
        };
        if src.len() > MAX_DOCUMENT_BYTES {
            return Err(fail("policy document is larger than 1 MiB".to_string(), None, None));
        }
        if let Some(at) = toml_nesting_exceeds(src, MAX_DOCUMENT_NESTING) {
            let (l, c) = position(src, at);
            return Err(fail(format!("arrays/tables nest deeper than {MAX_DOCUMENT_NESTING}"), Some(l), Some(c)));
        }
        let doc: PolicyDoc = toml::from_str(src).map_err(|e| {
            let (line, col) = e.span().map_or((None, None), |sp| {
                let (l, c) = position(src, sp.start);
                (Some(l), Some(c))
            });
            fail(e.message().to_string(), line, col)
        })?;
        Self::build(doc, origin, Some(src))
    }

    /// Validates a document given as JSON text.
    pub fn from_json_str(src: &str, origin: &str) -> Result<Self, PolicyError> {
        if src.len() > MAX_DOCUMENT_BYTES {
            return Err(PolicyError {
                file: origin.into(),
                rule: None,
                line: None,
                column: None,
                message: "policy document is larger than 1 MiB".into(),
            });
        }
        let doc: PolicyDoc = serde_json::from_str(src).map_err(|e| PolicyError {
            file: origin.to_string(),
            rule: None,
            line: u32::try_from(e.line()).ok(),
            column: u32::try_from(e.column()).ok(),
            message: e.to_string(),
        })?;
        Self::build(doc, origin, None)
    }

    /// Validates a document given as a JSON value (Python dicts, JS objects).
    pub fn from_json_value(value: serde_json::Value, origin: &str) -> Result<Self, PolicyError> {
        let doc: PolicyDoc = serde_json::from_value(value).map_err(|e| PolicyError {
            file: origin.to_string(),
            rule: None,
            line: None,
            column: None,
            message: e.to_string(),
        })?;
        Self::build(doc, origin, None)
    }

    /// Loads a `.toml` or `.json` file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, PolicyError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| PolicyError {
            file: origin.clone(),
            rule: None,
            line: None,
            column: None,
            message: format!("cannot read: {e}"),
        })?;
        if path.extension().is_some_and(|e| e == "json") {
            Self::from_json_str(&src, &origin)
        } else {
            Self::from_toml_str(&src, &origin)
        }
    }

    /// The default policy shipped with keycel (`policies/default.toml`).
    pub fn default_policy() -> Result<Self, PolicyError> {
        Self::from_toml_str(DEFAULT_POLICY, "policies/default.toml")
    }

    fn build(doc: PolicyDoc, origin: &str, src: Option<&str>) -> Result<Self, PolicyError> {
        let at = |rule: Option<&str>, message: String, pos: Option<(u32, u32)>| PolicyError {
            file: origin.to_string(),
            rule: rule.map(str::to_string),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            message,
        };
        let find = |needle: &str| src.and_then(|s| s.find(needle).map(|i| position(s, i)));
        if doc.version != 1 {
            return Err(at(None, format!("unsupported policy version {} (this build reads 1)", doc.version), None));
        }
        for scope in doc.scopes.keys() {
            if !valid_scope(scope) || scope.contains('*') {
                return Err(at(None, format!("catalogue entry {scope:?} is not a scope name"), find(scope)));
            }
        }
        let catalogued =
            |pattern: &str| -> bool { valid_scope(pattern) && doc.scopes.keys().any(|s| scopes::matches(pattern, s)) };
        let mut roles = BTreeMap::new();
        for (role, patterns) in &doc.roles {
            crate::record::check_ident("role", role).map_err(|e| at(None, e.to_string(), find(role)))?;
            for p in patterns {
                if !catalogued(p) {
                    return Err(at(
                        None,
                        format!("role {role:?} grants {p:?}, which names no catalogued scope"),
                        find(p),
                    ));
                }
            }
            roles.insert(role.clone(), patterns.clone());
        }
        if let Some(why) = exceeds_ceiling(&doc.limits) {
            return Err(at(None, why, find("[limits]")));
        }
        if doc.rules.len() > doc.limits.max_rules {
            return Err(at(None, format!("{} rules; the limit is {}", doc.rules.len(), doc.limits.max_rules), None));
        }
        let mut rules = Vec::with_capacity(doc.rules.len());
        let mut seen = std::collections::BTreeSet::new();
        for r in &doc.rules {
            // The rule's `id = "…"` line, then its own `when` text after it (several rules may
            // share a condition's text, so search from the rule, not from the top).
            let id_at = src.and_then(|s| rule_id_offset(s, &r.id));
            let id_pos = src.zip(id_at).map(|(s, i)| position(s, i));
            if r.id.is_empty() || !seen.insert(r.id.clone()) {
                return Err(at(Some(&r.id), "rule ids must be unique and non-empty".into(), id_pos));
            }
            rules.push(compile_rule(r, &doc.limits, &catalogued).map_err(|(msg, pos)| {
                let when_pos = match (src, r.when.as_deref()) {
                    (Some(s), Some(w)) => {
                        let from = id_at.unwrap_or(0);
                        s.get(from..).and_then(|rest| rest.find(w)).map(|i| position(s, from + i))
                    }
                    _ => None,
                };
                // An expression error: the expression's place plus the offset inside it;
                // any other rule error: the rule's id line.
                let file_pos = match (pos, when_pos) {
                    (Some((l, c)), Some((fl, fc))) => Some((fl + l - 1, if l == 1 { fc + c - 1 } else { c })),
                    (Some(inner), None) => Some(inner),
                    (None, _) => id_pos,
                };
                at(Some(&r.id), msg, file_pos)
            })?);
        }
        if let Some(h) = &doc.defaults.hash {
            if crate::hash::HashParams::preset(h).is_none() {
                return Err(at(None, format!("defaults.hash must be \"owasp\" or \"edge\", not {h:?}"), find(h)));
            }
        }
        for d in [&doc.defaults.lease_ttl, &doc.defaults.expiry_leeway].into_iter().flatten() {
            crate::time::Duration::parse(d).map_err(|e| at(None, e.to_string(), find(d)))?;
        }
        if let Some(p) = &doc.defaults.token_prefix {
            crate::token::TokenFormat::with_prefix(p).map_err(|e| at(None, e.to_string(), find(p)))?;
        }
        Ok(PolicySet { origin: origin.to_string(), doc, roles, rules })
    }

    /// Where it came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The document as loaded (for `policy check --json`, tooling).
    pub fn document(&self) -> &PolicyDoc {
        &self.doc
    }

    /// The scope patterns of a role (empty for an unknown role).
    pub fn role_scopes(&self, role: &str) -> &[String] {
        self.roles.get(role).map_or(&[], Vec::as_slice)
    }

    /// Every role and the scope patterns it grants, by name.
    pub fn roles(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.roles.iter().map(|(r, s)| (r.as_str(), s.as_slice()))
    }

    /// True when the role is defined.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains_key(role)
    }

    /// True when `pattern` names at least one catalogued scope.
    pub fn is_catalogued(&self, pattern: &str) -> bool {
        valid_scope(pattern) && self.doc.scopes.keys().any(|s| scopes::matches(pattern, s))
    }

    /// The rules in document order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Turns native evaluation off, so tests can compare it with the interpreter.
    #[cfg(test)]
    pub(crate) fn interpret_only(mut self) -> Self {
        self.rules.iter_mut().for_each(|r| r.native = None);
        self
    }

    /// The run limits.
    pub fn limits(&self) -> &LimitsDoc {
        &self.doc.limits
    }
}

/// The shipped default policy source.
pub const DEFAULT_POLICY: &str = include_str!("../../../policies/default.toml");

fn compile_rule(
    r: &RuleDoc,
    limits: &LimitsDoc,
    catalogued: &dyn Fn(&str) -> bool,
) -> Result<Rule, (String, Option<(u32, u32)>)> {
    let effect = match r.effect.as_str() {
        "allow" => Effect::Allow,
        "forbid" => Effect::Forbid,
        other => return Err((format!("effect must be \"allow\" or \"forbid\", not {other:?}"), None)),
    };
    if r.actions.is_empty() {
        return Err(("a rule must cover at least one action pattern".into(), None));
    }
    for a in &r.actions {
        if !catalogued(a) {
            return Err((format!("action pattern {a:?} names no catalogued scope"), None));
        }
    }
    let program = match r.when.as_deref().map(str::trim) {
        None | Some("true") => None,
        Some(src) => Some(expr::compile(src, limits).map_err(|e| (e.message, Some((e.line, e.column))))?),
    };
    let native = program.as_ref().and_then(Native::recognise);
    Ok(Rule {
        id: r.id.clone(),
        effect,
        actions: r.actions.clone(),
        when: r.when.clone().unwrap_or_else(|| "true".to_string()),
        program,
        native,
        description: r.description.clone(),
        code: r.code.clone().unwrap_or_else(|| crate::decision::codes::FORBIDDEN.to_string()),
    })
}

/// Byte offset of the line `id = "<id>"` that names a rule in TOML source.
fn rule_id_offset(src: &str, id: &str) -> Option<usize> {
    let quoted = format!("\"{id}\"");
    let mut from = 0;
    while let Some(i) = src.get(from..).and_then(|rest| rest.find(&quoted)) {
        let at = from + i;
        let line_start = src.get(..at).and_then(|b| b.rfind('\n')).map_or(0, |n| n + 1);
        let before = src.get(line_start..at).unwrap_or("").trim();
        if before.strip_prefix("id").is_some_and(|r| r.trim() == "=") {
            return Some(line_start);
        }
        from = at + quoted.len();
    }
    None
}

/// 1-based line and column of a byte offset.
/// The most a document's `[limits]` may raise its own bounds to. CEL evaluation recurses once
/// per tree level on the request thread (about 2 KB of stack per level in a release build),
/// so an unbounded `max_depth` would let a policy abort the process with a stack overflow.
pub const LIMIT_CEILINGS: LimitsDoc = LimitsDoc {
    max_expression_bytes: 65_536,
    max_nesting: 64,
    max_depth: 128,
    max_comprehension_nesting: 3,
    max_rules: 10_000,
};

fn exceeds_ceiling(l: &LimitsDoc) -> Option<String> {
    let c = LIMIT_CEILINGS;
    [
        ("max_expression_bytes", l.max_expression_bytes, c.max_expression_bytes),
        ("max_nesting", l.max_nesting, c.max_nesting),
        ("max_depth", l.max_depth, c.max_depth),
        ("max_comprehension_nesting", l.max_comprehension_nesting, c.max_comprehension_nesting),
        ("max_rules", l.max_rules, c.max_rules),
    ]
    .into_iter()
    .find(|(_, v, max)| v > max)
    .map(|(name, v, max)| format!("limits.{name} = {v} is above the ceiling {max}"))
}

/// Offset where `[`/`{` nesting outside strings and comments first exceeds `max`, if it does.
fn toml_nesting_exceeds(src: &str, max: usize) -> Option<usize> {
    let b = src.as_bytes();
    let (mut i, mut depth) = (0usize, 0usize);
    while let Some(&c) = b.get(i) {
        match c {
            b'#' => {
                while b.get(i).is_some_and(|&x| x != b'\n') {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' => {
                let triple = b.get(i..i + 3) == Some(&[c, c, c][..]);
                i += if triple { 3 } else { 1 };
                loop {
                    match b.get(i) {
                        None => return None,
                        Some(b'\\') if c == b'"' => i += 2,
                        Some(&x) if x == c && (!triple || b.get(i..i + 3) == Some(&[c, c, c][..])) => {
                            i += if triple { 3 } else { 1 };
                            break;
                        }
                        Some(b'\n') if !triple => break,
                        Some(_) => i += 1,
                    }
                }
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

pub(crate) fn position(src: &str, offset: usize) -> (u32, u32) {
    let before = src.get(..offset.min(src.len())).unwrap_or("");
    let line = before.matches('\n').count() as u32 + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
    (line, col)
}
