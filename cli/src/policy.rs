//! `keycel policy check` (load and validate policy documents) and `keycel policy test` (run
//! `*.tests.toml` policy tests with core's runner).

use crate::args::PolicyCommand;
use crate::context::Ctx;
use crate::error::CliError;
use crate::output::print_json;
use keycel::policy::testing::{find_test_files, run_file, FileReport};
use keycel::policy::{PolicyError, PolicySet};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn error_json(e: &PolicyError) -> Value {
    json!({ "file": e.file, "rule": e.rule, "line": e.line, "column": e.column, "message": e.message })
}

fn is_tests_file(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".tests.toml"))
}

/// Policy documents under `path`: the file itself, or every `.toml`/`.json` below a directory
/// except test files, sorted.
fn policy_files(path: &Path) -> Result<Vec<PathBuf>, CliError> {
    if !path.exists() {
        return Err(CliError::not_found(format!("{} does not exist", path.display())));
    }
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let p = entry?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "toml" || e == "json") && !is_tests_file(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(CliError::not_found(format!("no policy files (*.toml, *.json) under {}", path.display())));
    }
    Ok(out)
}

fn check(ctx: &Ctx, path: &Path) -> Result<(), CliError> {
    let files = policy_files(path)?;
    let mut results = Vec::new();
    let mut bad = 0usize;
    for f in &files {
        match PolicySet::load(f) {
            Ok(p) => {
                let rules = p.rules().len();
                let roles = p.document().roles.len();
                let scopes = p.document().scopes.len();
                if !ctx.json() {
                    println!("ok    {}  ({scopes} scopes, {roles} roles, {rules} rules)", f.display());
                }
                results.push(json!({ "file": f.display().to_string(), "ok": true, "scopes": scopes, "roles": roles, "rules": rules }));
            }
            Err(e) => {
                bad += 1;
                if !ctx.json() {
                    println!("ERROR {e}");
                }
                results.push(json!({ "file": f.display().to_string(), "ok": false, "error": error_json(&e) }));
            }
        }
    }
    if ctx.json() {
        print_json(&json!({ "files": results, "valid": files.len() - bad, "invalid": bad }));
    } else {
        println!("{} valid, {bad} invalid", files.len() - bad);
    }
    if bad > 0 {
        return Err(CliError::policy(format!("{bad} policy file(s) do not load")));
    }
    Ok(())
}

fn report_json(r: &FileReport) -> Value {
    json!({
        "file": r.file.display().to_string(),
        "passed": r.passed(),
        "failed": r.failed(),
        "cases": r.cases.iter().map(|c| json!({
            "name": c.name,
            "passed": c.passed,
            "mismatch": c.mismatch,
            "status": c.decision.status,
            "code": c.decision.code,
            "rules": c.decision.matched_rules,
        })).collect::<Vec<_>>(),
    })
}

fn test(ctx: &Ctx, path: &Path) -> Result<(), CliError> {
    if !path.exists() {
        return Err(CliError::not_found(format!("{} does not exist", path.display())));
    }
    let files = find_test_files(path)?;
    if files.is_empty() {
        return Err(CliError::not_found(format!("no policy tests (*.tests.toml) under {}", path.display())));
    }
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut reports = Vec::new();
    let mut load_errors = Vec::new();
    for f in &files {
        match run_file(f) {
            Ok(r) => {
                passed += r.passed();
                failed += r.failed();
                if !ctx.json() {
                    println!("{}: {} passed, {} failed", r.file.display(), r.passed(), r.failed());
                    for c in r.cases.iter().filter(|c| !c.passed) {
                        println!("  FAIL {}: {}", c.name, c.mismatch);
                    }
                }
                reports.push(report_json(&r));
            }
            Err(e) => {
                if !ctx.json() {
                    println!("ERROR {e}");
                }
                load_errors.push(error_json(&e));
            }
        }
    }
    if ctx.json() {
        print_json(&json!({ "files": reports, "errors": load_errors, "passed": passed, "failed": failed }));
    } else {
        println!("{passed} passed, {failed} failed");
    }
    if !load_errors.is_empty() {
        return Err(CliError::policy(format!("{} test file(s) could not be run", load_errors.len())));
    }
    if failed > 0 {
        return Err(CliError::denied("tests_failed", format!("{failed} policy test(s) failed")));
    }
    Ok(())
}

pub fn run(ctx: &Ctx, cmd: &PolicyCommand) -> Result<(), CliError> {
    match cmd {
        PolicyCommand::Check { path } => check(ctx, path),
        PolicyCommand::Test { path } => test(ctx, path),
        PolicyCommand::Roles => crate::explain::roles(ctx),
    }
}
