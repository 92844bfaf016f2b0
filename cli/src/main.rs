//! `keycel`: manage API keys in a SQLite store, authorize requests, check and test policies,
//! and walk the seed scenarios (`keycel demo`).

mod args;
mod authorize;
mod context;
mod demo;
mod error;
mod explain;
mod keys;
mod output;
mod policy;

use args::{Cli, Command};
use clap::Parser;
use context::Ctx;
use error::{code, CliError};
use keycel::sqlite::SqliteStore;
use output::print_json;
use serde_json::json;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors.
            return ExitCode::from(if e.use_stderr() { code::USAGE } else { code::OK });
        }
    };
    let json = cli.global.json;
    match run(cli) {
        Ok(()) => ExitCode::from(code::OK),
        Err(e) => {
            if json {
                eprintln!("{}", e.to_json());
            } else {
                eprintln!("keycel: {e}");
            }
            ExitCode::from(e.code)
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let ctx = Ctx::new(cli.global)?;
    match cli.command {
        Command::Init => init(&ctx),
        Command::Check => check(&ctx),
        Command::Key(cmd) => keys::run_key(&ctx, cmd),
        Command::User(cmd) => keys::run_user(&ctx, cmd),
        Command::Authorize(a) => authorize::run(&ctx, &a),
        Command::Policy(cmd) => policy::run(&ctx, &cmd),
        Command::Demo(a) => demo::run(&ctx, &a),
    }
}

fn init(ctx: &Ctx) -> Result<(), CliError> {
    let path = &ctx.global.db;
    let existed = path.exists();
    let store = SqliteStore::create(path)?;
    let report = store.check_integrity()?;
    if ctx.json() {
        print_json(&json!({
            "db": path.display().to_string(),
            "created": !existed,
            "schema_version": report.schema_version,
            "keys": report.keys,
            "users": report.users,
        }));
    } else if existed {
        println!(
            "{} is already a keycel store (schema {}, {} keys, {} users); nothing to do.",
            path.display(),
            report.schema_version,
            report.keys,
            report.users
        );
    } else {
        println!("Created keycel store {} (schema {}).", path.display(), report.schema_version);
    }
    Ok(())
}

fn check(ctx: &Ctx) -> Result<(), CliError> {
    let store = ctx.open_store()?;
    let r = store.check_integrity()?;
    if ctx.json() {
        print_json(&json!({
            "ok": true, "schema_version": r.schema_version, "keys": r.keys, "users": r.users, "retired": r.retired
        }));
    } else {
        println!(
            "ok: schema {}, {} keys, {} users, {} retired ids; every record valid",
            r.schema_version, r.keys, r.users, r.retired
        );
    }
    Ok(())
}
