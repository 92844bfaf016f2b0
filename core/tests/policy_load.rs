//! Load-time validation: every failure names the file, the rule and the position.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use keycel::policy::PolicySet;

const HEAD: &str = r#"
[scopes]
"api.read" = "read"
"api.write" = "write"

[roles]
reader = ["api.read"]
"#;

fn load(rules: &str) -> Result<PolicySet, keycel::policy::PolicyError> {
    PolicySet::from_toml_str(&format!("{HEAD}{rules}"), "test.toml")
}

fn rule(id: &str, when: &str) -> String {
    format!("\n[[rules]]\nid = \"{id}\"\neffect = \"allow\"\nactions = [\"api.*\"]\nwhen = '{when}'\n")
}

#[test]
fn a_valid_policy_loads() {
    let p =
        load(&rule("ok", "has_scope(request.action) && request.method in [\"GET\"] && [1, 2].all(x, x > 0)")).unwrap();
    assert_eq!(p.rules().len(), 1);
}

#[test]
fn unknown_variable_is_positioned() {
    let e = load(&rule("typo", "has_scope(request.action) && requst.method == \"GET\"")).unwrap_err();
    assert_eq!(e.file, "test.toml");
    assert_eq!(e.rule.as_deref(), Some("typo"));
    assert!(e.message.contains("unknown variable `requst`"), "{e}");
    assert_eq!(e.line, Some(13));
    assert_eq!(e.column, Some(38), "{e}");
}

#[test]
fn unknown_fields_of_declared_variables_are_refused() {
    let e = load(&rule("field", "request.methd == \"GET\"")).unwrap_err();
    assert!(e.message.contains("unknown field `methd` of `request`"), "{e}");
    assert_eq!((e.line, e.rule.as_deref()), (Some(13), Some("field")));
    let e = load(&rule("has", "has(key.rol)")).unwrap_err();
    assert!(e.message.contains("`rol`"), "{e}");
    // Maps below the variables stay open; comprehension variables are not checked.
    load(&rule("open", "has(key.metadata.team) && has(request.attributes.x) && [1].all(request, request > 0)"))
        .unwrap();
}

#[test]
fn errors_point_at_the_rule_that_has_them() {
    let two = format!(
        "{}{}",
        rule("first", "has_scope(request.action)"),
        "\n[[rules]]\nid = \"second\"\neffect = \"allow\"\nactions = [\"api.wirte\"]\nwhen = 'has_scope(request.action)'\n"
    );
    let e = load(&two).unwrap_err();
    assert_eq!(e.rule.as_deref(), Some("second"));
    assert_eq!(e.line, Some(16), "the second rule's id line, not the first rule's identical condition: {e}");
}

#[test]
fn unknown_and_unavailable_functions_are_refused() {
    let e = load(&rule("f", "frobnicate(1)")).unwrap_err();
    assert!(e.message.contains("unknown function `frobnicate`"), "{e}");
    assert_eq!(e.column, Some(9), "points at the name, not the parenthesis: {e}");
    let e = load(&rule("re", "request.path.matches(\"^/x\")")).unwrap_err();
    assert!(e.message.contains("`matches`"), "regex is not compiled in: refuse at load, not at request time: {e}");
}

#[test]
fn syntax_errors_are_positioned() {
    let e = load(&rule("syntax", "request.method == ")).unwrap_err();
    assert_eq!(e.rule.as_deref(), Some("syntax"));
    assert!(e.line.is_some() && e.column.is_some(), "{e}");
}

#[test]
fn scopes_must_be_catalogued() {
    let e = PolicySet::from_toml_str("[scopes]\n\"api.read\" = \"r\"\n[roles]\nx = [\"api.delete\"]\n", "t.toml")
        .unwrap_err();
    assert!(e.message.contains("api.delete"), "{e}");
    let e = load("\n[[rules]]\nid = \"r\"\neffect = \"allow\"\nactions = [\"billing.*\"]\n").unwrap_err();
    assert!(e.message.contains("billing.*"), "{e}");
}

#[test]
fn unknown_fields_and_bad_values_are_refused() {
    let e = load("\n[[rules]]\nid = \"r\"\neffect = \"allow\"\nactions = [\"api.*\"]\nwhne = \"true\"\n").unwrap_err();
    assert!(e.message.contains("whne"), "{e}");
    assert!(e.line.is_some());
    let e = load("\n[[rules]]\nid = \"r\"\neffect = \"permit\"\nactions = [\"api.*\"]\n").unwrap_err();
    assert!(e.message.contains("permit"), "{e}");
    let e = load(&format!("{}{}", rule("dup", "true"), rule("dup", "true"))).unwrap_err();
    assert!(e.message.contains("unique"), "{e}");
}

#[test]
fn run_limits_reject_deep_and_huge_expressions_before_parsing() {
    let deep = format!("{}true{}", "(".repeat(240), ")".repeat(240));
    let e = load(&rule("deep", &deep)).unwrap_err();
    assert!(e.message.contains("nest"), "{e}");
    let huge = vec!["true"; 9000].join(" && ");
    let e = load(&rule("huge", &huge)).unwrap_err();
    assert!(e.message.contains("bytes"), "{e}");
    let nested = "[1].all(a, [1].all(b, [1].all(c, c > 0)))";
    let e = load(&rule("compr", nested)).unwrap_err();
    assert!(e.message.contains("comprehensions"), "{e}");
}

#[test]
fn json_documents_load_too() {
    let json = serde_json::json!({
        "scopes": {"api.read": "read"},
        "roles": {"reader": ["api.read"]},
        "rules": [{"id": "s", "effect": "allow", "actions": ["*"], "when": "has_scope(request.action)"}]
    });
    assert!(PolicySet::from_json_value(json, "dict").is_ok());
    let e = PolicySet::from_json_str("{\"scopes\": {}, \"bogus\": 1}", "x.json").unwrap_err();
    assert!(e.message.contains("bogus"));
    assert_eq!(e.line, Some(1));
}
