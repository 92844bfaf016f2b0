//! `keycel`: manage API keys in a SQLite store, authorize requests, check and test policies,
//! and walk the seed scenarios (`keycel demo`).

mod args;
mod authorize;
mod budgets;
mod context;
mod demo;
mod error;
mod explain;
mod keys;
mod output;
mod policy;
mod stores;

use args::{Cli, Command, StoreCommand};
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
        Command::Store(StoreCommand::Copy { from, to }) => store_copy(&ctx, &from, &to),
    }
}

fn store_copy(ctx: &Ctx, from: &str, to: &str) -> Result<(), CliError> {
    let source = stores::open(from, false)?;
    let target = stores::open(to, true)?;
    let n = stores::copy(source.as_ref(), target.as_ref())?;
    if ctx.json() {
        print_json(&json!({ "users": n.users, "keys": n.keys, "unchanged": n.unchanged }));
    } else {
        println!("Copied {} users and {} keys ({} already present, identical).", n.users, n.keys, n.unchanged);
    }
    Ok(())
}

/// `init`/`check` on a PostgreSQL database: schema created or migrated, every record read back
/// (each is validated on the way out).
fn postgres_summary(ctx: &Ctx, dsn: &str, verb: &str) -> Result<(), CliError> {
    let store = keycel_postgres::PostgresStore::connect(dsn).map_err(|e| CliError::store(e.to_string()))?;
    let keys = keycel::store::Store::list_keys(&store, &keycel::store::KeyFilter::default())?.len();
    let users = keycel::store::Store::list_users(&store)?.len();
    let schema = store.schema_version()?;
    if ctx.json() {
        print_json(
            &json!({ "ok": true, "db": store.database(), "schema_version": schema, "keys": keys, "users": users }),
        );
    } else {
        println!(
            "{verb} keycel store {} (schema {schema}, {keys} keys, {users} users; every record valid).",
            store.database()
        );
    }
    Ok(())
}

fn init(ctx: &Ctx) -> Result<(), CliError> {
    let spec = ctx.db_spec();
    let path = match stores::Location::parse(&spec) {
        stores::Location::Postgres(dsn) => return postgres_summary(ctx, dsn, "Ready:"),
        stores::Location::Sqlite(p) => p,
    };
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
    let spec = ctx.db_spec();
    let store = match stores::Location::parse(&spec) {
        stores::Location::Postgres(dsn) => return postgres_summary(ctx, dsn, "ok:"),
        stores::Location::Sqlite(p) => SqliteStore::open(p)?,
    };
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
