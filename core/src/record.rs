//! Stored records: keys and the users that personal tokens belong to.
//!
//! Records are stable JSON with a `schema` number; unknown fields are rejected and every field
//! is validated, with an error that names it. The wire structs stay private so the public
//! types can only hold valid values.

use crate::hash::PhcHash;
use crate::time::Timestamp;
use crate::token::ClientId;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The record schema this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Size bounds, checked on every record.
pub mod limits {
    /// Longest name.
    pub const NAME: usize = 128;
    /// Longest description.
    pub const DESCRIPTION: usize = 1024;
    /// Longest role, scope, user or account id.
    pub const IDENT: usize = 128;
    /// Most explicit scopes on one key.
    pub const SCOPES: usize = 256;
    /// Most accounts in one account scope.
    pub const ACCOUNTS: usize = 10_000;
    /// Most metadata entries.
    pub const METADATA: usize = 64;
    /// Longest metadata value.
    pub const METADATA_VALUE: usize = 1024;
    /// Highest per-key concurrency limit.
    pub const MAX_CONCURRENT: u32 = 10_000;
    /// Longest record JSON accepted.
    pub const JSON_BYTES: usize = 1 << 20;
}

/// A record field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// The field (`name`, `scopes[2]`, `metadata.team`, or `json` for syntax errors).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl RecordError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        RecordError { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid record field `{}`: {}", self.field, self.message)
    }
}

impl core::error::Error for RecordError {}

/// Whom a key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    /// Account-level API token for service-to-service use.
    Api,
    /// User-level personal token: never exceeds its user's current roles and accounts, and
    /// is deleted with the user.
    Personal {
        /// The owning user's id.
        user: String,
    },
}

impl KeyKind {
    /// From its two wire fields (`kind` and the owning `user`), as records, bindings and the
    /// CLI receive them; the error names the field at fault.
    pub fn from_parts(kind: &str, user: Option<String>) -> Result<Self, RecordError> {
        match (kind, user) {
            ("api", None) => Ok(KeyKind::Api),
            ("api", Some(_)) => Err(RecordError::new("user", "only personal tokens have a user")),
            ("personal", Some(user)) => Ok(KeyKind::Personal { user }),
            ("personal", None) => Err(RecordError::new("user", "a personal token needs its user")),
            _ => Err(RecordError::new("kind", "must be \"api\" or \"personal\"")),
        }
    }

    /// `"api"` or `"personal"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyKind::Api => "api",
            KeyKind::Personal { .. } => "personal",
        }
    }

    /// The owning user of a personal token.
    pub fn user(&self) -> Option<&str> {
        match self {
            KeyKind::Api => None,
            KeyKind::Personal { user } => Some(user),
        }
    }
}

/// Which accounts a key (or user) may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountScope {
    /// Every account, including ones created later. Serialized as `"all"`.
    All,
    /// Only these accounts. Serialized as a JSON array.
    Only(BTreeSet<String>),
}

impl AccountScope {
    /// True when `account` is inside the scope.
    pub fn contains(&self, account: &str) -> bool {
        match self {
            AccountScope::All => true,
            AccountScope::Only(set) => set.contains(account),
        }
    }

    /// The intersection of two scopes (a personal token never exceeds its user).
    pub fn intersect(&self, other: &AccountScope) -> AccountScope {
        match (self, other) {
            (AccountScope::All, x) | (x, AccountScope::All) => x.clone(),
            (AccountScope::Only(a), AccountScope::Only(b)) => AccountScope::Only(a.intersection(b).cloned().collect()),
        }
    }

    /// Parses the CLI form: `all` or a comma-separated list.
    pub fn parse_list(s: &str) -> Result<Self, RecordError> {
        let s = s.trim();
        let scope = if s == "all" {
            AccountScope::All
        } else {
            AccountScope::Only(s.split(',').map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect())
        };
        if scope == AccountScope::Only(BTreeSet::new()) {
            return Err(RecordError::new("accounts", "give `all` or at least one account id"));
        }
        scope.validate("accounts")?;
        Ok(scope)
    }

    fn validate(&self, field: &str) -> Result<(), RecordError> {
        if let AccountScope::Only(set) = self {
            if set.len() > limits::ACCOUNTS {
                return Err(RecordError::new(field, format!("at most {} accounts", limits::ACCOUNTS)));
            }
            for a in set {
                check_ident(field, a)?;
            }
        }
        Ok(())
    }
}

impl Serialize for AccountScope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AccountScope::All => s.serialize_str("all"),
            AccountScope::Only(set) => set.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for AccountScope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Word(String),
            List(BTreeSet<String>),
        }
        match Wire::deserialize(d)? {
            Wire::Word(w) if w == "all" => Ok(AccountScope::All),
            Wire::Word(_) => Err(serde::de::Error::custom("accounts must be \"all\" or a list of account ids")),
            Wire::List(l) => Ok(AccountScope::Only(l)),
        }
    }
}

/// The hash of the secret before the last rotation, accepted until a deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousSecret {
    /// PHC string of the old secret.
    pub hash: PhcHash,
    /// The old secret stops working at this instant.
    pub valid_until: Timestamp,
}

/// A stored API key. Holds no secret, only its argon2id hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The client id (public, never reused).
    pub id: ClientId,
    /// Human name, e.g. "Production".
    pub name: String,
    /// Free text.
    pub description: String,
    /// API token or personal token.
    pub kind: KeyKind,
    /// Role, resolved to scopes by the policy.
    pub role: String,
    /// Scopes granted on top of the role.
    pub scopes: BTreeSet<String>,
    /// Accounts the key can reach.
    pub accounts: AccountScope,
    /// Inactive keys fail authentication.
    pub active: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Expiry, if any.
    pub expires_at: Option<Timestamp>,
    /// Last rotation, if any.
    pub rotated_at: Option<Timestamp>,
    /// argon2id PHC string of the current secret.
    pub secret_hash: PhcHash,
    /// The previous secret during a rotation grace period.
    pub previous_secret: Option<PreviousSecret>,
    /// Per-key in-flight limit (else the policy default, 5).
    pub max_concurrent: Option<u32>,
    /// Per-key rate limit (else the policy's `[defaults.rate_limit]`, else none).
    pub rate_limit: Option<crate::budget::RateLimit>,
    /// Usage credits (none: unmetered). The count spent lives in the admission backend.
    pub credits: Option<crate::budget::CreditGrant>,
    /// Host-defined string metadata (visible to policies).
    pub metadata: BTreeMap<String, String>,
    /// Bumped by every change; used for optimistic concurrency.
    pub version: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyWire {
    schema: u32,
    id: String,
    name: String,
    #[serde(default)]
    description: String,
    kind: String,
    #[serde(default)]
    user: Option<String>,
    role: String,
    #[serde(default)]
    scopes: Vec<String>,
    accounts: AccountScope,
    active: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
    #[serde(default)]
    expires_at: Option<Timestamp>,
    #[serde(default)]
    rotated_at: Option<Timestamp>,
    secret_hash: PhcHash,
    #[serde(default)]
    previous_secret: Option<PreviousSecret>,
    #[serde(default)]
    max_concurrent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rate_limit: Option<crate::budget::RateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    credits: Option<crate::budget::CreditGrant>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    version: u64,
}

fn is_control(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

pub(crate) fn check_text(field: &str, v: &str, max: usize, allow_empty: bool) -> Result<(), RecordError> {
    if !allow_empty && v.trim().is_empty() {
        return Err(RecordError::new(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(RecordError::new(field, format!("at most {max} characters")));
    }
    if v.chars().any(is_control) {
        return Err(RecordError::new(field, "must not contain control characters"));
    }
    Ok(())
}

/// Ids (users, accounts, roles): 1-128 printable ASCII characters other than space.
pub(crate) fn check_ident(field: &str, v: &str) -> Result<(), RecordError> {
    if v.is_empty() || v.len() > limits::IDENT || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(RecordError::new(
            field,
            format!("{:?} must be 1-{} printable ASCII characters without spaces", shorten(v), limits::IDENT),
        ));
    }
    Ok(())
}

/// A scope is dot-separated segments of `[a-z0-9_-]`; the last segment may be `*`
/// (`admin.*`), and `*` alone means every scope.
pub fn valid_scope(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > limits::IDENT {
        return false;
    }
    // One pass (every request's action goes through here): `at_start` is true at the start of
    // a segment, where a `.` would make an empty segment and `*` may begin the last one.
    let mut at_start = true;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'.' if !at_start => at_start = true,
            b'*' if at_start && i + 1 == b.len() => at_start = false,
            b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' => at_start = false,
            _ => return false,
        }
    }
    !at_start
}

/// Checks a scope and names the field when it is invalid.
pub fn check_scope(field: &str, s: &str) -> Result<(), RecordError> {
    if valid_scope(s) {
        Ok(())
    } else {
        Err(RecordError::new(
            field,
            format!("{:?} is not a scope (dot-separated [a-z0-9_-] segments, optional trailing `*`)", shorten(s)),
        ))
    }
}

fn shorten(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

impl KeyRecord {
    /// A record with the state a new key starts in: active, every account, no extra scopes,
    /// no expiry, no rotation, version 1. Set other fields with struct-update syntax
    /// (`KeyRecord { scopes, ..KeyRecord::new(..) }`), then [`KeyRecord::validate`].
    pub fn new(
        id: ClientId,
        name: impl Into<String>,
        kind: KeyKind,
        role: impl Into<String>,
        secret_hash: PhcHash,
        now: Timestamp,
    ) -> Self {
        KeyRecord {
            id,
            name: name.into(),
            description: String::new(),
            kind,
            role: role.into(),
            scopes: BTreeSet::new(),
            accounts: AccountScope::All,
            active: true,
            created_at: now,
            updated_at: now,
            expires_at: None,
            rotated_at: None,
            secret_hash,
            previous_secret: None,
            max_concurrent: None,
            rate_limit: None,
            credits: None,
            metadata: BTreeMap::new(),
            version: 1,
        }
    }

    /// True when the key is past its expiry at `now`, allowing `leeway` for clock skew. The
    /// deadline itself is inclusive: a key expiring at T still authenticates at T.
    pub fn expired(&self, now: Timestamp, leeway: crate::time::Duration) -> bool {
        self.expires_at.is_some_and(|e| now > e.plus(leeway))
    }

    /// Checks every field; the single gate every record passes through (JSON, stores, builders).
    pub fn validate(&self) -> Result<(), RecordError> {
        ClientId::parse_any(self.id.as_str()).map_err(|e| RecordError::new("id", e.to_string()))?;
        check_text("name", &self.name, limits::NAME, false)?;
        check_text("description", &self.description, limits::DESCRIPTION, true)?;
        if let KeyKind::Personal { user } = &self.kind {
            check_ident("user", user)?;
        }
        check_ident("role", &self.role)?;
        if self.scopes.len() > limits::SCOPES {
            return Err(RecordError::new("scopes", format!("at most {} scopes", limits::SCOPES)));
        }
        for s in &self.scopes {
            check_scope("scopes", s)?;
        }
        self.accounts.validate("accounts")?;
        if self.updated_at < self.created_at {
            return Err(RecordError::new("updated_at", "must not be before created_at"));
        }
        if let Some(e) = self.expires_at {
            if e < self.created_at {
                return Err(RecordError::new("expires_at", "must not be before created_at"));
            }
        }
        if let Some(n) = self.max_concurrent {
            if n == 0 || n > limits::MAX_CONCURRENT {
                return Err(RecordError::new("max_concurrent", format!("must be 1-{}", limits::MAX_CONCURRENT)));
            }
        }
        if let Some(r) = &self.rate_limit {
            r.validate()?;
        }
        if let Some(c) = &self.credits {
            c.validate()?;
        }
        if self.metadata.len() > limits::METADATA {
            return Err(RecordError::new("metadata", format!("at most {} entries", limits::METADATA)));
        }
        for (k, v) in &self.metadata {
            if k.is_empty()
                || k.len() > 64
                || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
            {
                return Err(RecordError::new(
                    "metadata",
                    format!("key {:?} must be 1-64 of [A-Za-z0-9_.-]", shorten(k)),
                ));
            }
            check_text(&format!("metadata.{k}"), v, limits::METADATA_VALUE, true)?;
        }
        if self.version == 0 {
            return Err(RecordError::new("version", "must be at least 1"));
        }
        Ok(())
    }

    /// Reads a record from JSON (schema-checked, unknown fields rejected, fields validated).
    pub fn from_json(json: &str) -> Result<Self, RecordError> {
        if json.len() > limits::JSON_BYTES {
            return Err(RecordError::new("json", "record is larger than 1 MiB"));
        }
        let w: KeyWire = serde_json::from_str(json).map_err(|e| RecordError::new("json", e.to_string()))?;
        Self::from_wire(w)
    }

    /// Reads a record from an already-parsed JSON value (bindings pass dicts/objects).
    pub fn from_value(v: serde_json::Value) -> Result<Self, RecordError> {
        let w: KeyWire = serde_json::from_value(v).map_err(|e| RecordError::new("json", e.to_string()))?;
        Self::from_wire(w)
    }

    fn from_wire(w: KeyWire) -> Result<Self, RecordError> {
        if w.schema != SCHEMA_VERSION {
            return Err(RecordError::new(
                "schema",
                format!("unsupported schema {} (this build reads {SCHEMA_VERSION})", w.schema),
            ));
        }
        let kind = KeyKind::from_parts(&w.kind, w.user)?;
        let id = ClientId::parse_any(&w.id).map_err(|e| RecordError::new("id", e.to_string()))?;
        let mut scopes = BTreeSet::new();
        for (i, s) in w.scopes.into_iter().enumerate() {
            check_scope(&format!("scopes[{i}]"), &s)?;
            scopes.insert(s);
        }
        let r = KeyRecord {
            id,
            name: w.name,
            description: w.description,
            kind,
            role: w.role,
            scopes,
            accounts: w.accounts,
            active: w.active,
            created_at: w.created_at,
            updated_at: w.updated_at,
            expires_at: w.expires_at,
            rotated_at: w.rotated_at,
            secret_hash: w.secret_hash,
            previous_secret: w.previous_secret,
            max_concurrent: w.max_concurrent,
            rate_limit: w.rate_limit,
            credits: w.credits,
            metadata: w.metadata,
            version: w.version,
        };
        r.validate()?;
        Ok(r)
    }

    fn to_wire(&self) -> KeyWire {
        KeyWire {
            schema: SCHEMA_VERSION,
            id: self.id.as_str().to_string(),
            name: self.name.clone(),
            description: self.description.clone(),
            kind: self.kind.as_str().to_string(),
            user: self.kind.user().map(str::to_string),
            role: self.role.clone(),
            scopes: self.scopes.iter().cloned().collect(),
            accounts: self.accounts.clone(),
            active: self.active,
            created_at: self.created_at,
            updated_at: self.updated_at,
            expires_at: self.expires_at,
            rotated_at: self.rotated_at,
            secret_hash: self.secret_hash.clone(),
            previous_secret: self.previous_secret.clone(),
            max_concurrent: self.max_concurrent,
            rate_limit: self.rate_limit,
            credits: self.credits,
            metadata: self.metadata.clone(),
            version: self.version,
        }
    }

    /// The stable JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.to_wire()).unwrap_or_default()
    }

    /// The JSON form as a value (for bindings).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self.to_wire()).unwrap_or(serde_json::Value::Null)
    }
}

impl Serialize for KeyRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_wire().serialize(s)
    }
}

impl<'de> Deserialize<'de> for KeyRecord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        KeyRecord::from_wire(KeyWire::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A user known to the store: what a personal token is capped by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    /// Record schema.
    #[serde(default = "schema_default")]
    pub schema: u32,
    /// User id.
    pub id: String,
    /// The user's current roles.
    pub roles: BTreeSet<String>,
    /// The user's data access.
    pub accounts: AccountScope,
    /// Bumped by every change.
    #[serde(default = "version_default")]
    pub version: u64,
}

fn schema_default() -> u32 {
    SCHEMA_VERSION
}
fn version_default() -> u64 {
    1
}

impl UserRecord {
    /// A user with roles and data access.
    pub fn new(id: &str, roles: impl IntoIterator<Item = String>, accounts: AccountScope) -> Result<Self, RecordError> {
        let u = UserRecord {
            schema: SCHEMA_VERSION,
            id: id.to_string(),
            roles: roles.into_iter().collect(),
            accounts,
            version: 1,
        };
        u.validate()?;
        Ok(u)
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), RecordError> {
        if self.schema != SCHEMA_VERSION {
            return Err(RecordError::new("schema", format!("unsupported schema {}", self.schema)));
        }
        check_ident("id", &self.id)?;
        if self.roles.len() > limits::SCOPES {
            return Err(RecordError::new("roles", "too many roles"));
        }
        for r in &self.roles {
            check_ident("roles", r)?;
        }
        self.accounts.validate("accounts")
    }

    /// Reads a user from JSON, validated.
    pub fn from_json(json: &str) -> Result<Self, RecordError> {
        let u: UserRecord = serde_json::from_str(json).map_err(|e| RecordError::new("json", e.to_string()))?;
        u.validate()?;
        Ok(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::HashPolicy;
    use crate::test_rng::TestRng;

    #[test]
    fn expiry_deadline_is_inclusive_and_leeway_extends_it() {
        use crate::time::Duration;
        let mut r = sample();
        let t = r.created_at;
        assert!(!r.expired(t.plus(Duration::from_secs(1_000_000)), Duration::from_secs(0)), "no expiry");
        r.expires_at = Some(t);
        assert!(!r.expired(t, Duration::from_secs(0)));
        assert!(r.expired(t.plus(Duration::from_secs(1)), Duration::from_secs(0)));
        assert!(!r.expired(t.plus(Duration::from_secs(30)), Duration::from_secs(30)));
        assert!(r.expired(t.plus(Duration::from_secs(31)), Duration::from_secs(30)));
    }

    #[test]
    fn key_kind_from_its_wire_fields() {
        assert_eq!(KeyKind::from_parts("api", None), Ok(KeyKind::Api));
        assert_eq!(KeyKind::from_parts("personal", Some("u".into())), Ok(KeyKind::Personal { user: "u".into() }));
        let field = |k: &str, u: Option<&str>| KeyKind::from_parts(k, u.map(str::to_string)).unwrap_err().field;
        assert_eq!(field("api", Some("u")), "user");
        assert_eq!(field("personal", None), "user");
        assert_eq!(field("service", None), "kind");
    }

    /// The one-pass `valid_scope` agrees with the plain statement of the grammar on every
    /// string of up to 6 characters over an alphabet that exercises each case.
    #[test]
    fn valid_scope_matches_the_grammar() {
        fn grammar(s: &str) -> bool {
            let segs: Vec<&str> = s.split('.').collect();
            !s.is_empty()
                && segs.iter().enumerate().all(|(i, seg)| {
                    (i + 1 == segs.len() && *seg == "*")
                        || (!seg.is_empty()
                            && seg
                                .bytes()
                                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'))
                })
        }
        let alphabet = ['a', '.', '*', '_', '-', 'Z', '0'];
        let mut strings = vec![String::new()];
        let mut all = Vec::new();
        for _ in 0..6 {
            strings = strings.iter().flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}"))).collect();
            all.extend(strings.iter().cloned());
        }
        for s in &all {
            assert_eq!(valid_scope(s), grammar(s), "{s:?}");
        }
        assert!(valid_scope("*") && valid_scope("admin.*") && !valid_scope("a*") && !valid_scope("*.a"));
        assert!(!valid_scope(&"a".repeat(limits::IDENT + 1)));
    }
    use crate::token::TokenFormat;

    pub(crate) fn sample() -> KeyRecord {
        let key = TokenFormat::default().issue(&mut TestRng::new(9)).unwrap();
        let t = Timestamp::from_unix(1_700_000_000).unwrap();
        let phc = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        KeyRecord {
            scopes: ["api.read".to_string()].into_iter().collect(),
            ..KeyRecord::new(key.client_id, "Production", KeyKind::Api, "admin", PhcHash::parse(phc).unwrap(), t)
        }
    }

    #[test]
    fn json_round_trip() {
        let r = sample();
        let j = r.to_json();
        assert!(j.contains("\"accounts\":\"all\""));
        assert_eq!(KeyRecord::from_json(&j).unwrap(), r);
        let mut p = r.clone();
        p.kind = KeyKind::Personal { user: "u_1".into() };
        p.accounts = AccountScope::Only(["acc_1".to_string()].into_iter().collect());
        assert_eq!(KeyRecord::from_json(&p.to_json()).unwrap(), p);
    }

    #[test]
    fn errors_name_the_field() {
        let j = sample().to_json();
        let e = KeyRecord::from_json(&j.replace("\"version\":1", "\"version\":1,\"extra\":2")).unwrap_err();
        assert_eq!(e.field, "json");
        assert!(e.message.contains("extra"));
        let e = KeyRecord::from_json(&j.replace("\"name\":\"Production\"", "\"name\":\"\"")).unwrap_err();
        assert_eq!(e.field, "name");
        let e = KeyRecord::from_json(&j.replace("\"api.read\"", "\"API READ\"")).unwrap_err();
        assert_eq!(e.field, "scopes[0]");
        let e = KeyRecord::from_json(&j.replace("\"schema\":1", "\"schema\":2")).unwrap_err();
        assert_eq!(e.field, "schema");
        let e = KeyRecord::from_json(&j.replace("\"kind\":\"api\"", "\"kind\":\"personal\"")).unwrap_err();
        assert_eq!(e.field, "user");
        let e = KeyRecord::from_json(&j.replace("\"accounts\":\"all\"", "\"accounts\":\"some\"")).unwrap_err();
        assert_eq!(e.field, "json");
    }

    #[test]
    fn scopes_and_accounts() {
        assert!(valid_scope("admin.account.create"));
        assert!(valid_scope("admin.*"));
        assert!(valid_scope("*"));
        assert!(!valid_scope("admin.*.x"));
        assert!(!valid_scope("admin..x"));
        assert!(!valid_scope("Admin"));
        let a = AccountScope::parse_list("acc_1, acc_2").unwrap();
        assert!(a.contains("acc_1") && !a.contains("acc_3"));
        assert!(AccountScope::All.contains("anything-created-later"));
        assert_eq!(AccountScope::All.intersect(&a), a);
        let b = AccountScope::parse_list("acc_2,acc_3").unwrap();
        assert_eq!(a.intersect(&b), AccountScope::parse_list("acc_2").unwrap());
    }

    #[test]
    fn hash_policy_is_not_in_debug_of_record_secret() {
        let _ = HashPolicy::default();
        let dbg = format!("{:?}", sample());
        assert!(dbg.contains("PhcHash(argon2id"));
        assert!(!dbg.contains("CTFhFdXPJO1a"));
    }
}
