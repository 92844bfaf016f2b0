"""The budget input shapes of `tests/vectors/forms/budgets.json` through `Keyring.create`
(`rate_limit=`, `credits=`): the same record fields, or the same field-named
`InvalidRecordError`, as core's parser and the JS key spec give (issue 13)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Dict, List

import pytest

import keycel
from helpers import CHEAP, HERE

FORMS: Dict[str, Any] = json.loads((HERE.parent.parent / "tests" / "vectors" / "forms" / "budgets.json").read_text())
CASES: List[Dict[str, Any]] = FORMS["cases"]


def test_the_vector_file_has_its_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_budget_input_forms(case: Dict[str, Any]) -> None:
    ring = keycel.Keyring(hash=CHEAP)
    now = datetime.fromisoformat(FORMS["now"].replace("Z", "+00:00"))
    field = next(iter(case["input"]))
    kwargs: Dict[str, Any] = {field: case["input"][field]}
    error = case["expect"].get("error")
    if error is not None:
        assert error["code"] == "invalid_record"
        with pytest.raises(keycel.InvalidRecordError) as e:
            ring.create("k", role="reader", now=now, **kwargs)
        assert e.value.field == error["field"], str(e.value)
        assert ring.list() == []
        return
    record = ring.create("k", role="reader", now=now, **kwargs).record.to_dict()
    assert record[field] == case["expect"][field]
