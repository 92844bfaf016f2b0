//! Failed-authentication budgets for a Cloudflare Durable Object: core's process-local
//! budget ([`keycel::throttle::LocalBudget`]) handed to JS, so that one Durable Object per
//! subject (a client address, a client id) counts that subject's failures for every isolate of
//! a deployment. Every decision is core's; this file converts values.
//!
//! The worker builds its `Engine` with `failureBudgets: "external"` (its own budget counts
//! nothing), asks `engine.failureSubjects(record, credentials, ip, now)` which subjects an
//! attempt is charged to (core's rule: none for a cached secret of a valid key), charges each subject's
//! Durable Object in that order before `authorize` (giving the earlier ones back when one is
//! refused, and answering the refusal: core's 429 `too_many_failures`), and gives them all
//! back when the authentication succeeds (examples/durable-admission/).

use crate::convert;
use crate::credentials::Credentials;
use crate::engine::Engine;
use crate::error::{codes, Error, JsResult};
use crate::records::{KeyRecord, UserRecord};
use keycel::decision::Messages;
use keycel::engine::{auth_config_for, throttle_config_for};
use keycel::policy::PolicySet;
use keycel::throttle::{FailureBudget, LocalBudget, Subject};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS: &str = r#"
/** Who a failure is charged to: `kind` and the `key` it is counted under (an IPv6 address per /64). Name a Durable Object after `${kind}:${key}`. */
export interface FailureSubject { kind: 'ip' | 'client_id'; key: string; }
/** `FailureBudgets.charge`'s answer: charged, or core's 429 `too_many_failures` to send. */
export type FailureAnswer =
  | { allowed: true }
  | { allowed: false; status: 429; error: 'too_many_failures'; body: string; headers: [string, string][] };
"#;

/// A subject as it crosses from JS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectJs {
    kind: String,
    key: String,
}

impl SubjectJs {
    fn of(s: Subject<'_>) -> Self {
        SubjectJs { kind: s.kind().to_string(), key: s.key().into_owned() }
    }

    fn subject(&self) -> Result<Subject<'_>, Error> {
        // Empty is a key core may name (an empty client address); the length is bounded.
        if self.key.len() > 256 {
            return Err(Error::invalid_argument("subject.key must be at most 256 bytes"));
        }
        match self.kind.as_str() {
            "ip" => Ok(Subject::Ip(&self.key)),
            "client_id" => Ok(Subject::ClientId(&self.key)),
            _ => Err(Error::invalid_argument("subject.kind must be \"ip\" or \"client_id\"")),
        }
    }
}

fn subject_of(value: &JsValue) -> Result<SubjectJs, Error> {
    convert::from_js(value, "subject")?.ok_or_else(|| Error::invalid_argument("subject is required"))
}

/// Failure budgets counted in this isolate: inside a Durable Object, the one place a
/// subject's failures are counted. `new FailureBudgets(policy)` takes the limits
/// (`[defaults.throttle]`) and the answer texts from the policy the workers use.
#[wasm_bindgen]
#[derive(Debug)]
pub struct FailureBudgets {
    inner: LocalBudget,
    messages: Messages,
}

#[wasm_bindgen]
impl FailureBudgets {
    /// From the policy (TOML text) the workers use.
    #[wasm_bindgen(constructor)]
    pub fn new(policy: &str, origin: Option<String>) -> JsResult<FailureBudgets> {
        let set = PolicySet::from_toml_str(policy, origin.as_deref().unwrap_or("policy.toml"))
            .map_err(|e| Error::new(codes::POLICY_ERROR, e.to_string()))?;
        let config_error = |e: keycel::engine::EngineError| Error::new(codes::CONFIG_ERROR, e.to_string());
        let limits = throttle_config_for(&set).map_err(config_error)?;
        let messages = auth_config_for(&set).map_err(config_error)?.messages;
        Ok(FailureBudgets { inner: LocalBudget::new(limits), messages })
    }

    /// Takes one failure from the subject's budget before argon2: `{ allowed: true }`, or
    /// the 429 to answer (`{ allowed: false, status, error, body, headers }`, with
    /// `Retry-After`), the engine's own.
    #[wasm_bindgen(unchecked_return_type = "FailureAnswer")]
    pub fn charge(
        &self,
        #[wasm_bindgen(unchecked_param_type = "FailureSubject")] subject: JsValue,
        #[wasm_bindgen(unchecked_param_type = "TimeInput")] now: JsValue,
    ) -> JsResult<JsValue> {
        let now = convert::timestamp(&now, "now")?;
        let s = subject_of(&subject)?;
        let subject = s.subject()?;
        Ok(match self.inner.charge(subject, now) {
            Ok(()) => convert::object(&[("allowed", true.into())]),
            Err(e) => {
                let d = keycel::step::throttled(&self.messages, subject, e);
                convert::object(&[
                    ("allowed", false.into()),
                    ("status", d.status.into()),
                    ("error", d.code.as_deref().map_or(JsValue::NULL, JsValue::from)),
                    ("body", d.body_json().into()),
                    ("headers", convert::to_js(&d.headers)),
                ])
            }
        })
    }

    /// Gives a charge back: the authentication succeeded, or a later subject was refused.
    pub fn refund(
        &self,
        #[wasm_bindgen(unchecked_param_type = "FailureSubject")] subject: JsValue,
        #[wasm_bindgen(unchecked_param_type = "TimeInput")] now: JsValue,
    ) -> JsResult<()> {
        let now = convert::timestamp(&now, "now")?;
        let s = subject_of(&subject)?;
        self.inner.refund(s.subject()?, now);
        Ok(())
    }

    /// Subjects tracked (memory is capped by `[defaults.throttle] max_tracked`).
    #[wasm_bindgen(getter)]
    pub fn tracked(&self) -> u32 {
        u32::try_from(self.inner.tracked()).unwrap_or(u32::MAX)
    }
}

impl Engine {
    fn failure_subjects_with(
        &self,
        record: Option<&KeyRecord>,
        user: Option<&UserRecord>,
        credentials: &Credentials,
        ip: Option<String>,
        now: &JsValue,
    ) -> JsResult<JsValue> {
        let now = convert::timestamp(now, "now")?;
        let mut request = keycel::engine::Request::new("");
        request.ip = ip;
        let subjects = self.core().failure_subjects(
            credentials.inner(),
            record.map(KeyRecord::inner),
            user.map(UserRecord::inner),
            &request,
            now,
        );
        Ok(match subjects {
            None => JsValue::NULL,
            Some(subjects) => convert::to_js(&subjects.into_iter().map(SubjectJs::of).collect::<Vec<_>>()),
        })
    }
}

// `failureSubjects(record | null, credentials, ip, now, user?)` is defined in `js/glue.js`
// over the entry points below, as `authorize` is (wasm-bindgen cannot borrow an optional
// handle).
#[wasm_bindgen]
impl Engine {
    /// `failureSubjects` for a key the lookup found.
    #[wasm_bindgen(js_name = failureSubjectsKey, skip_typescript)]
    pub fn failure_subjects_key(
        &self,
        record: &KeyRecord,
        credentials: &Credentials,
        ip: Option<String>,
        now: JsValue,
    ) -> JsResult<JsValue> {
        self.failure_subjects_with(Some(record), None, credentials, ip, &now)
    }

    /// `failureSubjects` for a personal token with its owner's record.
    #[wasm_bindgen(js_name = failureSubjectsPersonal, skip_typescript)]
    pub fn failure_subjects_personal(
        &self,
        record: &KeyRecord,
        user: &UserRecord,
        credentials: &Credentials,
        ip: Option<String>,
        now: JsValue,
    ) -> JsResult<JsValue> {
        self.failure_subjects_with(Some(record), Some(user), credentials, ip, &now)
    }

    /// `failureSubjects` when the lookup found no record.
    #[wasm_bindgen(js_name = failureSubjectsUnknown, skip_typescript)]
    pub fn failure_subjects_unknown(
        &self,
        credentials: &Credentials,
        ip: Option<String>,
        now: JsValue,
    ) -> JsResult<JsValue> {
        self.failure_subjects_with(None, None, credentials, ip, &now)
    }
}
