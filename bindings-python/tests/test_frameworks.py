"""The shared HTTP cases (tests/http_cases/) against the Django and Flask integrations in real
servers on 127.0.0.1: gunicorn (Django WSGI, Flask), uvicorn (Django ASGI); Django both with
plain views (``@require``) and with Django REST Framework (``KEYCEL_EXAMPLE_VIEWS=drf``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import httpx
import pytest

import keycel
from helpers import CHEAP, DEFAULT_POLICY, EXAMPLES
from http_cases import Key, load, run, scenario_ids

CASES = load()

GUNICORN = [sys.executable, "-m", "gunicorn", "--chdir", str(EXAMPLES), "--bind", "127.0.0.1:PORT",
            "--workers", "1", "--threads", "8", "--log-level", "warning"]
UVICORN = [sys.executable, "-m", "uvicorn", "--app-dir", str(EXAMPLES), "--host", "127.0.0.1", "--port", "PORT",
           "--log-level", "warning"]

#: test target -> (command line with PORT, extra environment)
TARGETS: Dict[str, Tuple[List[str], Dict[str, str]]] = {
    "django-gunicorn": ([*GUNICORN, "django_example:application"], {}),
    "django-drf-gunicorn": ([*GUNICORN, "django_example:application"], {"KEYCEL_EXAMPLE_VIEWS": "drf"}),
    "django-uvicorn": ([*UVICORN, "django_example:asgi_application"], {}),
    "django-drf-uvicorn": ([*UVICORN, "django_example:asgi_application"], {"KEYCEL_EXAMPLE_VIEWS": "drf"}),
    "flask-gunicorn": ([*GUNICORN, "flask_example:app"], {}),
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Running:
    def __init__(self, base: str, keys: Dict[str, Key], proc: "subprocess.Popen[bytes]", log: Path) -> None:
        self.base, self.keys, self.proc, self.log = base, keys, proc, log

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def start(kind: str, tmp: Path) -> Running:
    db = tmp / f"{kind}.db"
    keyring = keycel.Keyring(keycel.SqliteStore(db), hash=CHEAP)
    keys: Dict[str, Key] = {}
    for label, spec in CASES["keys"].items():
        issued = keyring.create(label, role=spec["role"], accounts=spec["accounts"], max_concurrent=spec.get("max_concurrent"))
        keys[label] = Key(issued.client_id, issued.token)
    port = free_port()
    command, extra = TARGETS[kind]
    env = dict(os.environ, KEYCEL_DB=str(db), KEYCEL_POLICY=str(DEFAULT_POLICY), **extra)
    log = tmp / f"{kind}.log"
    cmd = [part.replace("PORT", str(port)) for part in command]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    running = Running(f"http://127.0.0.1:{port}", keys, proc, log)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} exited: " + log.read_text())
        try:
            if httpx.get(running.base + "/health", timeout=1).status_code == 200:
                return running
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            running.stop()
            raise RuntimeError(f"{kind} did not start within 30 s: " + log.read_text())
        time.sleep(0.1)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Running]]:
    tmp = tmp_path_factory.mktemp("frameworks")
    started: Dict[str, Running] = {}

    class Lazy(dict):  # type: ignore[type-arg]
        def __missing__(self, kind: str) -> Running:
            # Tests run target by target: one server at a time.
            for other in list(self):
                self.pop(other).stop()
            self[kind] = started[kind] = start(kind, tmp)
            return started[kind]

    try:
        yield Lazy()
    finally:
        for running in started.values():
            running.stop()


@pytest.mark.parametrize("scenario", CASES["scenarios"], ids=scenario_ids(CASES))
@pytest.mark.parametrize("target", list(TARGETS))
def test_http_case(servers: Dict[str, Running], target: str, scenario: Dict[str, object]) -> None:
    server = servers[target]
    try:
        run(server.base, scenario, server.keys)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- {target} log ---\n{server.log.read_text()[-3000:]}") from None
