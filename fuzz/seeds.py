#!/usr/bin/env python3
"""Writes the fuzz seed corpora into fuzz/seeds/<target>/ (deterministic; run by run.sh).

Sources: the RFC 7617 (Basic) and RFC 6750 (Bearer) examples, the conformance vectors in
tests/vectors/ (valid tokens, header sets, key records, requests), and the policies in
policies/. Seeds follow the vectors, so they stay valid as the vectors change.
"""
import base64
import hashlib
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "fuzz" / "seeds"


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def write(target: str, items):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    for old in d.iterdir():
        old.unlink()
    seen = set()
    for item in items:
        data = item.encode() if isinstance(item, str) else item
        if data in seen:
            continue
        seen.add(data)
        (d / hashlib.sha1(data).hexdigest()).write_bytes(data)
    return len(seen)


vectors = [json.loads(p.read_text()) for p in sorted((ROOT / "tests" / "vectors").glob("*.json"))]
tokens, ids, secrets, records, users, requests, header_sets = [], [], [], [], [], [], []
for v in vectors:
    for t in v.get("tokens", {}).values():
        tokens.append(t["token"])
        ids.append(t["client_id"])
        secrets.append(t["secret"])
    records += [json.dumps(k) for k in v.get("keys", [])]
    users += [json.dumps(u) for u in v.get("users", [])]
    for c in v.get("cases", []):
        if "headers" in c:
            header_sets.append("\n".join(f"{n}: {val}" for n, val in c["headers"]))
        if "request" in c:
            requests.append(json.dumps(c["request"]))

rfc_basic = [
    "QWxhZGRpbjpvcGVuIHNlc2FtZQ==",  # RFC 7617 2: Aladdin:open sesame
    "dGVzdDoxMjPCow==",  # RFC 7617 2.1: test:123£ (UTF-8)
    b64("user:pa:ss"),
    b64(":"),
    "",
    "=",
    "QWxhZGRpbjpvcGVuIHNlc2FtZQ",  # unpadded
]
rfc_bearer = ["mF_9.B5f-4.1JqM"]  # RFC 6750 2.1 example token

basic = rfc_basic + [b64(t) for t in tokens] + [b64(t + ":") for t in tokens]
basic += [b64(f"{i}:{s}") for i, s in zip(ids, secrets)]
n = {}
n["basic"] = write("basic", basic)
n["credentials"] = write(
    "credentials",
    header_sets
    + [f"Authorization: Basic {b}" for b in basic]
    + [f"Authorization: Bearer {t}" for t in tokens + rfc_bearer]
    + [f"x-keycel-client-id: {i}\nx-keycel-secret-key: {s}" for i, s in zip(ids, secrets)]
    + [f"X-Finout-Client-Id: {i}\nX-Finout-Secret-Key: {s}" for i, s in zip(ids, secrets)]
    + ["Authorization: Digest abc", "Authorization: Bearer a\nAuthorization: Bearer a"],
)
n["token"] = write("token", tokens + ids + secrets + [t.replace("kc_", "acme_", 1) for t in tokens] + ["kc__", "_"])
hashes = set()
for r in records:
    for h in re.findall(r"\$argon2[^\"]*", r):
        hashes.add(h)
hashes |= {
    "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
    "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
    "$argon2i$v=19$m=4096,t=3,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
    "$argon2id$v=16$m=4096,t=3,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
    "$argon2id$v=19$m=4294967295,t=1,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
}
n["phc"] = write("phc", sorted(hashes))
n["record_json"] = write("record_json", records + users)
policies = [p.read_text() for p in sorted((ROOT / "policies").rglob("*.toml")) if not p.name.endswith(".tests.toml")]
n["policy_load"] = write("policy_load", policies)
conditions = []
for p in policies:
    conditions += re.findall(r"^when = '([^'\n]*)'", p, flags=re.M)
    conditions += re.findall(r'^when = "([^"\n]*)"', p, flags=re.M)
conditions += [
    'has_scope("api.read") && in_account_scope(request.account)',
    'ip_in("203.0.113.0/24")',
    'request.method == "GET" && request.path.startsWith("/v1/")',
    'key.metadata.tier == "gold" && now > key.created_at',
    '[1, 2, 3].all(x, x > 0) && size(key.scopes) < 10',
    "hour_utc(now) >= 9 && weekday_utc(now) < 6",
    "1 / 0 == 1",
]
n["policy_eval"] = write(
    "policy_eval", [c + "\n" + r for c in conditions for r in (requests[:3] or ["{}"])] + conditions
)
print("seeds: " + ", ".join(f"{k} {v}" for k, v in n.items()))
