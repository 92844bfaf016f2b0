"""Flood benchmark: the example app under real uvicorn, a forged-token flood beside probes.

Not a test: run `make -C bindings-python flood` (or `python flood.py --help`). Only 127.0.0.1
(and other loopback source addresses) is ever contacted.

What it does:
  1. Creates a SQLite key store (keys hashed with the policy's preset, `owasp` by default):
     one key for the cached-key probe and one fresh key per first-use probe.
  2. Starts uvicorn serving bindings-python/examples/app.py on a free port; warms the cached
     key (its secret enters the verified-secret cache) and measures the server's base RSS.
  3. For SECONDS: a load-generator process keeps CONNECTIONS keep-alive connections busy with
     forged tokens (valid checksum, random unknown client id: each costs a dummy argon2
     unless throttled or shed), from FLOOD_IPS loopback source addresses (127.0.1.x);
     meanwhile probes from 127.0.0.1 request the cached key, a key's first use (one new key
     per second) and `/health` (no keycel), and /proc is sampled for the server's RSS and CPU.
  4. Prints p50/p99 latency, answer counts (200/401/429/503/other/timeouts) per stream, RSS
     base/peak (sum over the server's process tree; also VmHWM) and CPU; `--json` writes them.

Targets (issue 12): RSS peak <= base + 64 MiB, cached-key and /health p99 <= 50 ms, every
first use answered (200 or an immediate 503) within 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
EXAMPLES = HERE.parent / "examples"
POLICY = REPO / "policies" / "default.toml"
ROUTE = "/v1/accounts/acc_1/data"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------- tokens


def _base62_fixed(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, d = divmod(value, 62)
        out.append(ALPHABET[d])
    return "".join(reversed(out))


def forged_token(rng: random.Random, prefix: str = "kc") -> str:
    """A well-formed token with a valid checksum for a client id no store holds."""
    client_id = prefix + "_" + "".join(rng.choice(ALPHABET) for _ in range(16))
    secret = "".join(rng.choice(ALPHABET) for _ in range(32))
    crc = zlib.crc32(f"{client_id}_{secret}".encode())
    return f"{client_id}_{secret}{_base62_fixed(crc, 6)}"


# ------------------------------------------------------------------------------- raw HTTP


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, token: Optional[str]
) -> int:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


class Stream:
    """Latencies (seconds) and answers of one kind of request."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.latencies: List[float] = []
        self.counts: Dict[str, int] = {}

    def add(self, answer: str, latency: Optional[float]) -> None:
        self.counts[answer] = self.counts.get(answer, 0) + 1
        if latency is not None:
            self.latencies.append(latency)

    def summary(self) -> Dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: float) -> Optional[float]:
            if not lat:
                return None
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2)

        return {
            "requests": sum(self.counts.values()),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": round(lat[-1] * 1000, 2) if lat else None,
            "answers": dict(sorted(self.counts.items())),
        }


# ------------------------------------------------------------------------ load generator


async def _flood_connection(
    port: int, source: str, tokens: List[str], stream: Stream, stop_at: float, rng: random.Random
) -> None:
    while time.monotonic() < stop_at:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        except OSError:
            stream.add("connect_error", None)
            await asyncio.sleep(0.05)
            continue
        try:
            while time.monotonic() < stop_at:
                t = time.perf_counter()
                status = await _request(reader, writer, ROUTE, rng.choice(tokens))
                stream.add(str(status), time.perf_counter() - t)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            stream.add("reset", None)
        finally:
            writer.close()


async def _flood(port: int, connections: int, seconds: float, ips: int) -> Dict[str, Any]:
    rng = random.Random(12)
    tokens = [forged_token(rng) for _ in range(4096)]
    stream = Stream("flood")
    stop_at = time.monotonic() + seconds
    sources = [f"127.0.1.{1 + i % ips}" for i in range(connections)]
    tasks = [
        asyncio.ensure_future(_flood_connection(port, s, tokens, stream, stop_at, random.Random(i)))
        for i, s in enumerate(sources)
    ]
    # A request still running at the deadline is cut off: it counts as "unfinished".
    done, pending = await asyncio.wait(tasks, timeout=seconds + 1)
    for t in pending:
        t.cancel()
        stream.add("unfinished", None)
    await asyncio.gather(*pending, return_exceptions=True)
    return stream.summary()


def load_main(args: argparse.Namespace) -> None:
    if args.loader_uvloop:
        import uvloop

        uvloop.install()
    result = asyncio.run(_flood(args.port, args.connections, args.seconds, args.flood_ips))
    print(json.dumps(result))


# ----------------------------------------------------------------------------- /proc


def _tree(root: int) -> List[int]:
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(root: int) -> int:
    return sum(_status_kib(p, "VmRSS") for p in _tree(root))


def tree_cpu_seconds(root: int) -> float:
    total = 0
    for pid in _tree(root):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / TICKS


# ---------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_keys(db: Path, first_uses: int, hash_preset: str) -> Tuple[str, List[str]]:
    import keycel

    kr = keycel.Keyring(keycel.SqliteStore(db), hash=hash_preset)
    cached = kr.create("cached", role="reader", accounts=["acc_1"]).token
    fresh = [kr.create(f"first-{i}", role="reader", accounts=["acc_1"]).token for i in range(first_uses)]
    return cached, fresh


#: uvicorn's event loop and HTTP parser per `--server`: `standard` is what `uvicorn[standard]`
#: installs (uvloop + httptools, both C), `plain` is uvicorn's pure-Python fallback.
SERVERS = {"standard": ["--loop", "uvloop", "--http", "httptools"], "plain": ["--loop", "asyncio", "--http", "h11"]}


def start_server(
    port: int, db: Path, log: Path, env_extra: Dict[str, str], server: str = "standard"
) -> subprocess.Popen[bytes]:
    env = dict(os.environ, KEYCEL_DB=str(db), KEYCEL_POLICY=str(POLICY), **env_extra)
    out = open(log, "wb")
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--app-dir", str(EXAMPLES),
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
         "--backlog", "2048", *SERVERS[server]],
        env=env, stdout=out, stderr=subprocess.STDOUT,
    )


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("uvicorn exited: " + log.read_text())
        try:
            if asyncio.run(_one(port, "/health", None, 1.0))[0] == 200:
                return
        except (OSError, asyncio.TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError("uvicorn did not start within 30 s")


async def _one(port: int, path: str, token: Optional[str], timeout: float) -> Tuple[int, float]:
    t = time.perf_counter()
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        status = await asyncio.wait_for(_request(reader, writer, path, token), timeout)
    finally:
        writer.close()
    return status, time.perf_counter() - t


# ----------------------------------------------------------------------------- probes


async def _probe_loop(
    port: int, path: str, tokens: List[str], stream: Stream, stop_at: float, every: float, timeout: float
) -> None:
    """One request at a time (a fresh connection each, from 127.0.0.1), every `every` s."""
    for i in range(len(tokens) if tokens else 1 << 30):
        if time.monotonic() >= stop_at:
            break
        token = tokens[i] if tokens else None
        started = time.monotonic()
        try:
            status, latency = await _one(port, path, token, timeout)
            stream.add(str(status), latency)
        except asyncio.TimeoutError:
            stream.add("timeout", None)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            stream.add("error", None)
        await asyncio.sleep(max(0.0, every - (time.monotonic() - started)))


async def _sampler(pid: int, stop_at: float, samples: List[int]) -> None:
    while time.monotonic() < stop_at:
        samples.append(tree_rss_kib(pid))
        await asyncio.sleep(0.1)


async def _measure(args: argparse.Namespace, port: int, pid: int, cached: str, fresh: List[str]) -> Dict[str, Any]:
    loop = asyncio.get_running_loop()
    gen = await asyncio.create_subprocess_exec(
        sys.executable, "-I", str(Path(__file__).resolve()), "--load", "--port", str(port),
        "--connections", str(args.connections), "--seconds", str(args.seconds), "--flood-ips", str(args.flood_ips),
        "--route", ROUTE, *(["--loader-uvloop"] if getattr(args, "loader_uvloop", False) else []),
        stdout=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(1.0)  # let the flood build up before probing
    stop_at = time.monotonic() + args.seconds - 1.0
    cpu0, t0 = tree_cpu_seconds(pid), loop.time()
    cached_s, first_s, health_s = Stream("cached"), Stream("first_use"), Stream("health")
    samples: List[int] = []
    await asyncio.gather(
        _probe_loop(port, ROUTE, [cached] * 100_000, cached_s, stop_at, 0.05, args.probe_timeout),
        _probe_loop(port, ROUTE, fresh, first_s, stop_at, 1.0, args.probe_timeout),
        _probe_loop(port, "/health", [], health_s, stop_at, 0.05, args.probe_timeout),
        _sampler(pid, stop_at, samples),
    )
    cpu = (tree_cpu_seconds(pid) - cpu0) / max(1e-9, loop.time() - t0)
    out, _ = await gen.communicate()
    flood = json.loads(out.decode() or "{}")
    return {
        "flood": flood,
        "cached": cached_s.summary(),
        "first_use": first_s.summary(),
        "health": health_s.summary(),
        "rss_samples_kib": samples,
        "cpu_cores": round(cpu, 2),
    }


def run(args: argparse.Namespace) -> Dict[str, Any]:
    loadavg_before = round(os.getloadavg()[0], 1)
    with tempfile.TemporaryDirectory(prefix="keycel-flood-") as tmp:
        db = Path(tmp) / "keys.db"
        log = Path(tmp) / "uvicorn.log"
        cached, fresh = make_keys(db, int(args.seconds) + 2, args.hash)
        port = free_port()
        server = getattr(args, "server", "standard")
        hold = getattr(args, "hold", None)
        proc = start_server(port, db, log, {} if hold is None else {"KEYCEL_THROTTLE_HOLD": str(hold)}, server)
        try:
            wait_ready(proc, port, log)
            for _ in range(3):
                status, _ = asyncio.run(_one(port, ROUTE, cached, 30.0))
                if status != 200:
                    raise RuntimeError(f"the cached key answered {status} before the flood")
            idle = [asyncio.run(_one(port, ROUTE, cached, 30.0))[1] for _ in range(20)]
            idle_health = [asyncio.run(_one(port, "/health", None, 30.0))[1] for _ in range(20)]
            time.sleep(1.0)
            base = tree_rss_kib(proc.pid)
            result = asyncio.run(_measure(args, port, proc.pid, cached, fresh))
            # The peak: the highest sample of the tree, or the server process's own high-water
            # mark (VmHWM catches a peak between samples).
            hwm, end = _status_kib(proc.pid, "VmHWM"), tree_rss_kib(proc.pid)
            peak = max(result.pop("rss_samples_kib") + [base, hwm, end])
            result["rss"] = {
                "base_mib": round(base / 1024, 1),
                "peak_mib": round(peak / 1024, 1),
                "growth_mib": round((peak - base) / 1024, 1),
                "hwm_mib": round(hwm / 1024, 1),
                "end_mib": round(end / 1024, 1),
            }
            result["cached_idle_p50_ms"] = round(sorted(idle)[len(idle) // 2] * 1000, 2)
            result["health_idle_p50_ms"] = round(sorted(idle_health)[len(idle_health) // 2] * 1000, 2)
            if proc.poll() is not None:
                raise RuntimeError("uvicorn died during the flood: " + log.read_text()[-2000:])
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    result["settings"] = {
        "connections": args.connections, "seconds": args.seconds,
        "flood_ips": min(args.flood_ips, args.connections),
        "route": ROUTE, "hash": args.hash, "server": getattr(args, "server", "standard"),
        "hold_s": "default" if getattr(args, "hold", None) is None else args.hold,
        "loader": "uvloop" if getattr(args, "loader_uvloop", False) else "asyncio",
        "cpus": os.cpu_count(), "loadavg_1m_before": loadavg_before, "loadavg_1m_after": round(os.getloadavg()[0], 1),
    }
    return result


def targets(r: Dict[str, Any]) -> List[Tuple[str, bool]]:
    first = r["first_use"]
    first_ok = (
        first["requests"] > 0
        and set(first["answers"]) <= {"200", "503"}
        and (first["max_ms"] or 0) <= 1000
    )
    return [
        ("RSS peak <= base + 64 MiB", r["rss"]["growth_mib"] <= 64),
        ("cached-key p99 <= 50 ms", r["cached"]["p99_ms"] is not None and r["cached"]["p99_ms"] <= 50
         and set(r["cached"]["answers"]) == {"200"}),
        ("/health p99 <= 50 ms", r["health"]["p99_ms"] is not None and r["health"]["p99_ms"] <= 50),
        ("first use answers 200/503 within 1 s", first_ok),
    ]


def report(r: Dict[str, Any]) -> str:
    s = r["settings"]
    lines = [
        f"flood: {s['route']}, {s['connections']} connections x {s['seconds']} s from {s['flood_ips']} source IP(s), "
        f"hash preset {s['hash']}, uvicorn {s['server']}, 429 hold {s['hold_s']} (s), loader {s['loader']}, {s['cpus']} CPUs, "
        f"load average {s['loadavg_1m_before']} before / {s['loadavg_1m_after']} after",
        f"{'stream':<10} {'requests':>8} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}  answers",
    ]
    for name in ("flood", "cached", "first_use", "health"):
        x = r[name]
        lines.append(
            f"{name:<10} {x.get('requests', 0):>8} {str(x.get('p50_ms')):>9} {str(x.get('p99_ms')):>9} "
            f"{str(x.get('max_ms')):>9}  {json.dumps(x.get('answers', {}))}"
        )
    m = r["rss"]
    lines.append(
        f"RSS (server tree): base {m['base_mib']} MiB, peak {m['peak_mib']} MiB (+{m['growth_mib']} MiB), "
        f"VmHWM {m['hwm_mib']} MiB, after {m['end_mib']} MiB; CPU {r['cpu_cores']} cores"
    )
    # The same probes before the flood, same run: the machine's own latency floor.
    for name, idle in (("cached", r["cached_idle_p50_ms"]), ("health", r["health_idle_p50_ms"])):
        p50 = r[name]["p50_ms"]
        ratio = f"{p50 / idle:.1f}x" if p50 and idle else "n/a"
        lines.append(f"{name} idle p50 {idle} ms (before the flood); during the flood p50 {p50} ms = {ratio}")
    for name, ok in targets(r):
        lines.append(f"  [{'ok' if ok else 'MISSED'}] {name}")
    return "\n".join(lines)


def main() -> None:
    global ROUTE
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--flood-ips", type=int, default=64, help="loopback source addresses of the flood (127.0.1.x)")
    p.add_argument("--route", default=ROUTE, help="keycel route to flood and probe (/mw/accounts/acc_1/data: the ASGI middleware)")
    p.add_argument("--hash", default="owasp", help="argon2 preset of the probe keys (the policy's default)")
    p.add_argument("--server", choices=sorted(SERVERS), default="standard",
                   help="uvicorn loop + parser: standard = uvloop + httptools (uvicorn[standard]), plain = asyncio + h11")
    p.add_argument("--hold", type=float, default=None,
                   help="seconds the server holds each screened 429 (ThrottleGuard's bounded tarpit; default: the "
                   "example app's, 3 s; 0: answer at once)")
    p.add_argument("--loader-uvloop", action="store_true",
                   help="run the load generator on uvloop (cheaper per request: leaves the server more CPU)")
    p.add_argument("--probe-timeout", type=float, default=60.0)
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    ROUTE = args.route
    if args.load:
        load_main(args)
        return
    r = run(args)
    print(report(r))
    if args.json:
        args.json.write_text(json.dumps(r, indent=2) + "\n")


if __name__ == "__main__":
    main()
