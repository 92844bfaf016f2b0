//! The user-facing form of a key record: every field a person or an admin endpoint may see,
//! and never a hash.
//!
//! A record has two JSON forms. The *storage* form ([`KeyRecord::to_storage_json`]) carries
//! the argon2id PHC strings and is only for stores. The *public* form ([`KeyView`]) is what
//! `to_dict()` / `to_json()` / `toJSON()` give in the bindings and what the CLI prints, so an
//! admin endpoint that returns a record never hands out its hash. One struct, serialized the
//! same way everywhere, so every runtime shows the same fields (conformance vectors hold it).

use crate::record::{AccountScope, KeyRecord, RecordError, SCHEMA_VERSION};
use crate::time::Timestamp;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};
use serde::Serialize;

/// A key record without its hashes (the public form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyView {
    /// Record schema.
    pub schema: u32,
    /// The client id (public).
    pub id: String,
    /// Human name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// `"api"` or `"personal"`.
    pub kind: &'static str,
    /// The owning user of a personal token.
    pub user: Option<String>,
    /// Stored role.
    pub role: String,
    /// Stored extra scopes.
    pub scopes: BTreeSet<String>,
    /// Stored account scope.
    pub accounts: AccountScope,
    /// False when deactivated.
    pub active: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Expiry, if any.
    pub expires_at: Option<Timestamp>,
    /// Last rotation, if any.
    pub rotated_at: Option<Timestamp>,
    /// Until when the secret from before the last rotation still works (its hash is not shown).
    pub previous_secret_valid_until: Option<Timestamp>,
    /// Per-key in-flight limit, if set.
    pub max_concurrent: Option<u32>,
    /// Per-key rate limit, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::budget::RateLimit>,
    /// Usage credits as granted (the count spent is the admission backend's), if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<crate::budget::CreditGrant>,
    /// Host metadata.
    pub metadata: BTreeMap<String, String>,
    /// Bumped by every change.
    pub version: u64,
}

impl KeyRecord {
    /// The public form: everything but the hashes.
    pub fn public_view(&self) -> KeyView {
        KeyView {
            schema: SCHEMA_VERSION,
            id: self.id.as_str().to_string(),
            name: self.name.clone(),
            description: self.description.clone(),
            kind: self.kind.as_str(),
            user: self.kind.user().map(str::to_string),
            role: self.role.clone(),
            scopes: self.scopes.clone(),
            accounts: self.accounts.clone(),
            active: self.active,
            created_at: self.created_at,
            updated_at: self.updated_at,
            expires_at: self.expires_at,
            rotated_at: self.rotated_at,
            previous_secret_valid_until: self.previous_secret.as_ref().map(|p| p.valid_until),
            max_concurrent: self.max_concurrent,
            rate_limit: self.rate_limit,
            credits: self.credits,
            metadata: self.metadata.clone(),
            version: self.version,
        }
    }

    /// The public form as JSON text (stable field order).
    pub fn to_public_json(&self) -> String {
        serde_json::to_string(&self.public_view()).unwrap_or_default()
    }

    /// The public form as a JSON value (bindings convert it to dicts / objects).
    pub fn to_public_value(&self) -> serde_json::Value {
        serde_json::to_value(self.public_view()).unwrap_or(serde_json::Value::Null)
    }

    /// The storage form (with the argon2id hashes), for stores only: never return it to a
    /// client. Same as [`KeyRecord::to_json`], named so that a store author's choice is explicit.
    pub fn to_storage_json(&self) -> String {
        self.to_json()
    }

    /// The storage form as a JSON value (stores, bindings' store protocol).
    pub fn to_storage_value(&self) -> serde_json::Value {
        self.to_value()
    }

    /// Reads the storage form (schema-checked, validated), as a store hands it back.
    pub fn from_storage_json(json: &str) -> Result<Self, RecordError> {
        Self::from_json(json)
    }

    /// Reads the storage form from an already-parsed JSON value.
    pub fn from_storage_value(v: serde_json::Value) -> Result<Self, RecordError> {
        Self::from_value(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::PhcHash;
    use crate::record::{KeyKind, PreviousSecret};
    use crate::test_rng::TestRng;
    use crate::time::Duration;
    use crate::token::TokenFormat;

    fn rotated_personal() -> KeyRecord {
        let key = TokenFormat::default().issue(&mut TestRng::new(4)).unwrap();
        let t = Timestamp::from_unix(1_700_000_000).unwrap();
        let phc =
            PhcHash::parse("$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc")
                .unwrap();
        let old =
            PhcHash::parse("$argon2id$v=19$m=1024,t=1,p=1$b3RoZXJzYWx0$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc")
                .unwrap();
        KeyRecord {
            previous_secret: Some(PreviousSecret { hash: old, valid_until: t.plus(Duration::from_secs(3600)) }),
            rotated_at: Some(t),
            metadata: [("team".to_string(), "core".to_string())].into_iter().collect(),
            ..KeyRecord::new(key.client_id, "laptop", KeyKind::Personal { user: "alice".into() }, "viewer", phc, t)
        }
    }

    #[test]
    fn public_form_carries_no_hash_and_every_other_field() {
        let r = rotated_personal();
        for text in [r.to_public_json(), r.to_public_value().to_string(), format!("{:?}", r.public_view())] {
            assert!(!text.contains("$argon2"), "{text}");
            assert!(!text.contains("secret_hash") && !text.contains("previous_secret\""), "{text}");
            assert!(!text.contains("CTFhFdXPJO1a"), "{text}");
        }
        let v = r.to_public_value();
        assert_eq!(v["id"], r.id.as_str());
        assert_eq!(v["kind"], "personal");
        assert_eq!(v["user"], "alice");
        assert_eq!(v["accounts"], "all");
        assert_eq!(v["metadata"]["team"], "core");
        assert_eq!(v["previous_secret_valid_until"], "2023-11-14T23:13:20Z");
        // The public form has every storage field except the hashes (and names the grace deadline).
        let storage = r.to_storage_value();
        let public: BTreeSet<&String> = v.as_object().unwrap().keys().collect();
        let stored: BTreeSet<&String> = storage.as_object().unwrap().keys().collect();
        let only_stored: Vec<_> = stored.difference(&public).collect();
        assert_eq!(only_stored, vec![&&"previous_secret".to_string(), &&"secret_hash".to_string()]);
    }

    #[test]
    fn storage_form_round_trips_and_the_public_form_is_not_a_record() {
        let r = rotated_personal();
        assert!(r.to_storage_json().contains("$argon2id$"));
        assert_eq!(KeyRecord::from_storage_json(&r.to_storage_json()).unwrap(), r);
        assert_eq!(KeyRecord::from_storage_value(r.to_storage_value()).unwrap(), r);
        let e = KeyRecord::from_storage_json(&r.to_public_json()).unwrap_err();
        assert_eq!(e.field, "json");
    }
}
