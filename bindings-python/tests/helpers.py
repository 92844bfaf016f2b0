"""Constants and helpers shared by the tests (importable because pytest puts tests/ on
sys.path; the source tree's python/ directory never is)."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Dict

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VECTORS = REPO / "tests" / "vectors"
DEFAULT_POLICY = REPO / "policies" / "default.toml"
EXAMPLES = HERE.parent / "examples"

#: Cheapest argon2id parameters the default floor accepts: tests stay fast.
CHEAP: Dict[str, int] = {"m_cost": 1024, "t_cost": 1, "p_cost": 1}

#: The session fails if fewer tests than this ran (guards against silently skipped suites).
MIN_TESTS = int(os.environ.get("KEYCEL_MIN_TESTS", "100"))


def basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


