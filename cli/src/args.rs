//! The command line (clap derive). Help texts carry examples; exit codes are listed once here.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const EXIT_CODES: &str = "\
Exit codes:
  0  success (authorize: allowed)
  1  authorize: denied; policy test: a test failed; demo: a step deviated
  2  bad command line
  3  no such key, user or store file
  4  invalid value (name, role, scope, duration, header, ...)
  5  conflict (id exists, concurrent change)
  6  the policy refused a management action
  7  a policy file does not load
  8  store or file-system failure";

const TOP_EXAMPLES: &str = "\
Examples:
  keycel init
  keycel key create --name Production --kind api --role admin
  keycel user add alice --role editor --accounts acc_1,acc_2
  keycel key create --name 'alice laptop' --kind personal --user alice --role editor --expires-in 90d
  keycel key list
  keycel key set-accounts Production acc_1
  keycel key rotate Production --grace 1h
  keycel authorize --header 'Authorization: Basic a2NfLi4uOg==' --action api.read --account acc_1
  keycel policy check policies/default.toml
  keycel policy test policies/
  keycel demo";

/// keycel: API keys with CEL policies, from a terminal.
#[derive(Debug, Parser)]
#[command(name = "keycel", version, about, after_help = format!("{TOP_EXAMPLES}\n\n{EXIT_CODES}"))]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct Global {
    /// The store: a SQLite file (`keys.db`, `sqlite:keys.db`) or a PostgreSQL database
    /// (`postgresql://user@host:5432/db`).
    #[arg(long, global = true, env = "KEYCEL_DB", default_value = "keycel.db")]
    pub db: PathBuf,
    /// Machine-readable JSON on stdout (and errors as JSON on stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// Policy file (default: the built-in policies/default.toml).
    #[arg(long, global = true, env = "KEYCEL_POLICY")]
    pub policy: Option<PathBuf>,
    /// argon2id parameters for new hashes: owasp or edge (cheaper: edge runtimes, tests).
    /// Default: the policy's `defaults.hash` (owasp in the default policy).
    #[arg(long, global = true, env = "KEYCEL_HASH", value_enum)]
    pub hash: Option<HashPreset>,
    /// Act as if the time were this RFC 3339 instant (replays, expiry checks, tests).
    #[arg(long, global = true, env = "KEYCEL_NOW")]
    pub now: Option<String>,
    /// Print audit events as JSON lines on stderr.
    #[arg(long, global = true)]
    pub audit: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HashPreset {
    /// m=19456 KiB, t=2, p=1.
    Owasp,
    /// m=2048 KiB, t=1, p=1.
    Edge,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the store (./keycel.db, --db or KEYCEL_DB); an existing store is only checked.
    #[command(after_help = "Examples:\n  keycel init\n  keycel --db /var/lib/app/keys.db init")]
    Init,
    /// Issue, inspect, change, rotate and delete keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Users that personal tokens belong to.
    #[command(subcommand)]
    User(UserCommand),
    /// Authenticate and authorize one request from its headers; exits 1 when denied.
    #[command(after_help = "\
Examples:
  keycel authorize --header \"Authorization: Basic $(printf '%s:' \"$TOKEN\" | base64 -w0)\" --action api.read
  keycel authorize --header \"x-keycel-client-id: kc_...\" --header \"x-keycel-secret-key: ...\" \\
      --action api.read --account acc_1 --method GET --path /v1/accounts/acc_1")]
    Authorize(AuthorizeArgs),
    /// Validate policy files and run policy tests.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Walk the seed scenarios end to end against a fresh temporary store.
    Demo(DemoArgs),
    /// Check the store file: SQLite integrity and every record's validity.
    Check,
    /// Whole-store operations (copy between SQLite and PostgreSQL).
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy every user and key to another store as they are (same ids and secret hashes: no
    /// key is re-issued). Records already in the target must be identical.
    #[command(
        after_help = "Examples:\n  keycel store copy --from sqlite:keys.db --to postgresql://keycel@db.internal/app"
    )]
    Copy {
        /// Source store (`sqlite:PATH`, a path, or `postgresql://...`).
        #[arg(long)]
        from: String,
        /// Target store (created if it is a new SQLite file; a PostgreSQL database must exist).
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Account-level token for services.
    Api,
    /// A user's token, capped by the user's roles and accounts.
    Personal,
}

impl Kind {
    /// The record's `kind` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Api => "api",
            Kind::Personal => "personal",
        }
    }
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Human name, e.g. Production.
    #[arg(long)]
    pub name: String,
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// Owner of a personal token (must exist: `keycel user add`).
    #[arg(long)]
    pub user: Option<String>,
    /// Role from the policy.
    #[arg(long)]
    pub role: String,
    /// Extra scope (repeatable).
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// `all` (default, includes future accounts) or a comma-separated list.
    #[arg(long, default_value = "all")]
    pub accounts: String,
    /// Lifetime with a unit: 90d, 12h, 30m, 45s or 2w (a bare number is refused).
    #[arg(long)]
    pub expires_in: Option<String>,
    /// In-flight request limit for this key (default: the policy's, 5).
    #[arg(long)]
    pub max_concurrent: Option<u32>,
    /// Rate limit `LIMIT/PER`: 100/1m is 100 requests a minute (as `key set-rate-limit
    /// --limit 100 --per 1m`); default: the policy's `[defaults.rate_limit]`, else none.
    #[arg(long, value_name = "LIMIT/PER")]
    pub rate_limit: Option<String>,
    /// Extra requests at once on top of --rate-limit (default 0).
    #[arg(long, requires = "rate_limit")]
    pub burst: Option<u32>,
    /// Usage credits granted now (as `key set-credits --remaining`); default: unmetered.
    #[arg(long)]
    pub credits: Option<u64>,
    /// Credits at the start of each refill interval (with --credits and --refill-interval).
    #[arg(long, requires_all = ["credits", "refill_interval"])]
    pub refill_amount: Option<u64>,
    /// The refill interval (`1d`, `1h`; with --refill-amount).
    #[arg(long, requires = "refill_amount")]
    pub refill_interval: Option<String>,
    /// Free text.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Metadata visible to policies, KEY=VALUE (repeatable).
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub metadata: Vec<String>,
    /// Create the key inactive.
    #[arg(long)]
    pub inactive: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Issue a key; prints its secret once.
    #[command(after_help = "\
Examples:
  keycel key create --name Production --kind api --role admin
  keycel key create --name reporting --kind api --role reader --scope api.read --accounts acc_1,acc_2 --max-concurrent 5
  keycel key create --name 'alice laptop' --kind personal --user alice --role editor --expires-in 90d --json
  keycel key create --name metered --kind api --role reader --rate-limit 100/1m --burst 20 \\
      --credits 10000 --refill-amount 10000 --refill-interval 30d")]
    Create(Box<CreateArgs>),
    /// List keys (no secrets).
    List {
        /// Only this user's personal tokens.
        #[arg(long)]
        user: Option<String>,
        #[arg(long, value_enum)]
        kind: Option<Kind>,
        /// Only active keys.
        #[arg(long, conflicts_with = "inactive")]
        active: bool,
        /// Only inactive keys.
        #[arg(long)]
        inactive: bool,
    },
    /// One key in detail (by client id or unique name).
    Show { key: String },
    /// What a key can actually do now: effective scopes (role expansion, a personal token's
    /// user caps), accounts, deadline and limit.
    #[command(
        after_help = "Examples:\n  keycel key explain Production\n  keycel --json key explain kc_0123456789abcdef"
    )]
    Explain { key: String },
    /// New name.
    Rename { key: String, name: String },
    /// New description.
    Describe { key: String, description: String },
    /// New role.
    SetRole { key: String, role: String },
    /// Replace the explicit scopes (none clears them).
    SetScopes { key: String, scopes: Vec<String> },
    /// Replace the account scope: `all` or a comma-separated list; effective on the next request.
    SetAccounts { key: String, accounts: String },
    /// New expiry: a duration from now (90d), an RFC 3339 instant, or `never`.
    SetExpiry { key: String, expiry: String },
    /// New in-flight limit, or `default`.
    SetMaxConcurrent { key: String, limit: String },
    /// Rate limit: `--limit` requests per `--per`, `--burst` more at once (GCRA); `--clear`
    /// falls back to the policy's `[defaults.rate_limit]` (or none).
    #[command(
        after_help = "Examples:\n  keycel key set-rate-limit Production --limit 100 --per 1m --burst 20\n  keycel key set-rate-limit Production --clear"
    )]
    SetRateLimit {
        key: String,
        /// Requests per window.
        #[arg(long, required_unless_present = "clear")]
        limit: Option<u32>,
        /// The window (`1m`, `10s`, `1h`).
        #[arg(long, required_unless_present = "clear")]
        per: Option<String>,
        /// Extra requests at once (default 0).
        #[arg(long)]
        burst: Option<u32>,
        /// Remove the key's own limit.
        #[arg(long, conflicts_with_all = ["limit", "per", "burst"])]
        clear: bool,
    },
    /// Usage credits: a new grant of `--remaining`, optionally refilled to `--refill-amount`
    /// every `--refill-interval` from now; `--clear` makes the key unmetered.
    #[command(
        after_help = "Examples:\n  keycel key set-credits Production --remaining 10000\n  keycel key set-credits Production --remaining 1000 --refill-amount 1000 --refill-interval 1d"
    )]
    SetCredits {
        key: String,
        /// Credits granted now (a new count).
        #[arg(long, required_unless_present = "clear")]
        remaining: Option<u64>,
        /// Credits at the start of each refill interval.
        #[arg(long, requires = "refill_interval")]
        refill_amount: Option<u64>,
        /// The refill interval (`1d`, `1h`).
        #[arg(long, requires = "refill_amount")]
        refill_interval: Option<String>,
        /// Make the key unmetered.
        #[arg(long, conflicts_with_all = ["remaining", "refill_amount", "refill_interval"])]
        clear: bool,
    },
    /// Let the key authenticate again.
    Activate { key: String },
    /// Stop the key authenticating (kept, can be re-activated).
    Deactivate { key: String },
    /// New secret; the old one dies at once, or after --grace.
    #[command(
        after_help = "Examples:\n  keycel key rotate Production\n  keycel key rotate kc_0123456789abcdef --grace 1h"
    )]
    Rotate {
        key: String,
        /// Keep the old secret valid this long (e.g. 1h).
        #[arg(long)]
        grace: Option<String>,
    },
    /// Delete for good (the id is never reused).
    Delete { key: String },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add or update a user (roles and data access cap their personal tokens).
    #[command(
        after_help = "Examples:\n  keycel user add alice --role editor\n  keycel user add bob --role admin --role editor --accounts acc_1,acc_2"
    )]
    Add {
        user: String,
        /// Role (repeatable).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// `all` or a comma-separated list.
        #[arg(long, default_value = "all")]
        accounts: String,
    },
    /// List users.
    List,
    /// Remove a user and delete all their personal tokens.
    Remove { user: String },
}

#[derive(Debug, Args)]
pub struct AuthorizeArgs {
    /// A request header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE", required = true)]
    pub headers: Vec<String>,
    /// The action, e.g. api.read.
    #[arg(long)]
    pub action: String,
    #[arg(long)]
    pub account: Option<String>,
    #[arg(long)]
    pub method: Option<String>,
    #[arg(long)]
    pub path: Option<String>,
    #[arg(long)]
    pub ip: Option<String>,
    /// Request attribute for policies, KEY=JSON (repeatable; plain text is taken as a string).
    #[arg(long = "attr", value_name = "KEY=JSON")]
    pub attributes: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Load and validate policy files (a file, or every *.toml in a directory except tests).
    #[command(after_help = "Examples:\n  keycel policy check policies/default.toml\n  keycel policy check policies/")]
    Check { path: PathBuf },
    /// Run policy tests (*.tests.toml files, or every one under a directory).
    #[command(
        after_help = "Examples:\n  keycel policy test policies/\n  keycel policy test policies/default.tests.toml --json"
    )]
    Test { path: PathBuf },
    /// The roles the policy (--policy, else the built-in default) defines, the scopes each
    /// grants, and the scope catalogue.
    #[command(after_help = "Examples:\n  keycel policy roles\n  keycel --policy my.toml --json policy roles")]
    Roles,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo store at this path instead of a temporary file.
    #[arg(long)]
    pub keep: Option<PathBuf>,
}
