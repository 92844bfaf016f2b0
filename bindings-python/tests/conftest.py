"""Shared fixtures. Tests run against the INSTALLED wheel (see test_installed.py)."""

from __future__ import annotations


import pytest

import keycel

from helpers import CHEAP, DEFAULT_POLICY, MIN_TESTS


@pytest.fixture
def engine() -> keycel.Engine:
    return keycel.Engine(DEFAULT_POLICY, store=keycel.MemoryStore())


@pytest.fixture
def keyring(engine: keycel.Engine) -> keycel.Keyring:
    return engine.keyring(hash=CHEAP)


@pytest.fixture
def plain_keyring() -> keycel.Keyring:
    return keycel.Keyring(hash=CHEAP)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    collected = session.testscollected
    # Only the full run (no file arguments, no -k/-m) is held to the minimum.
    selected = bool(
        session.config.args != [] and session.config.args != [str(session.config.invocation_params.dir)]
        or session.config.getoption("keyword")
        or session.config.getoption("markexpr")
    )
    if not selected and collected < MIN_TESTS and exitstatus == 0:
        print(f"\nkeycel: only {collected} tests collected (expected at least {MIN_TESTS}); failing")
        session.exitstatus = 1


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
