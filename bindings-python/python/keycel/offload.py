"""Bounded thread pools that keep argon2 and store I/O off the event loop.

:meth:`keycel.Engine.authorize_async` asks core for the cheap first step of an
authorization. When core decides there (a verified-secret cache hit, a malformed token, a
throttled client) the answer is ready at once, on the loop. When it needs an argon2
verification, the rest runs here, on a pool with one thread per argon2 gate slot and a short
queue; when the queue is full the answer is core's immediate ``503 overloaded`` with
``Retry-After``, never a wait. With a store that does I/O (SQLite, your own), the first step
itself (the record lookup) runs on a second small pool, so a slow store never stalls the loop.

Every engine gets its pools on first use; :meth:`keycel.Engine.configure_offload` sizes them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Awaitable, Callable, Optional, TypeVar, Union

from ._keycel import Decision, Pending, PreparedStep

if TYPE_CHECKING:
    from ._keycel import TimeLike

__all__ = ["Offload", "BoundedPool"]

T = TypeVar("T")


#: Nice value of argon2 threads (Linux): below the event loop, so a flood saturating every
#: core with argon2 still leaves the loop the CPU it needs to answer everything else.
BACKGROUND_NICE = 10


def _background() -> None:
    """Lowers the calling thread's CPU priority (Linux: `setpriority` on a thread id affects
    that thread only; elsewhere it would name a process, so it is skipped)."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
        except OSError:
            pass


class BoundedPool:
    """A thread pool that refuses work instead of queueing it without bound: at most
    ``threads`` jobs run and ``queue`` more wait. ``background``: its threads run at a lower
    CPU priority than the rest of the process (Linux)."""

    def __init__(self, threads: int, queue: int, name: str, background: bool = False) -> None:
        if threads < 1 or queue < 0:
            raise ValueError("a pool needs at least one thread and a queue of zero or more")
        self.threads = threads
        self.queue = queue
        self._executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix=name, initializer=_background if background else None
        )
        self._lock = threading.Lock()
        self._taken = 0

    @property
    def busy(self) -> int:
        """Jobs running or waiting now."""
        with self._lock:
            return self._taken

    def try_submit(self, fn: Callable[[], T]) -> Optional["asyncio.Future[T]"]:
        """Schedules ``fn`` for the running event loop, or returns None when the pool is full."""
        with self._lock:
            if self._taken >= self.threads + self.queue:
                return None
            self._taken += 1

        def job() -> T:
            try:
                return fn()
            finally:
                self._done()

        try:
            return asyncio.get_running_loop().run_in_executor(self._executor, job)
        except BaseException:
            self._done()
            raise

    def _done(self) -> None:
        with self._lock:
            self._taken -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


async def _ready(decision: Decision) -> Decision:
    return decision


class Offload:
    """The pools of one engine: ``hash`` runs argon2 (``Pending.finish``), ``io`` runs first
    steps that look records up in a store doing I/O."""

    def __init__(self, hash_threads: int, hash_queue: int, io_threads: int, io_queue: int) -> None:
        self.hash = BoundedPool(hash_threads, hash_queue, "keycel-argon2", background=True)
        self.io = BoundedPool(io_threads, io_queue, "keycel-store")

    def hash_full(self) -> bool:
        """True while the argon2 pool takes no more work: a request that would need argon2 is
        answered at once (core's ``Engine::shed``: charged, 503) instead of queueing for its
        lookup first."""
        return self.hash.busy >= self.hash.threads + self.hash.queue

    def finish(self, pending: Pending, now: Optional[TimeLike] = None) -> Awaitable[Decision]:
        """The decision of a request that needs argon2, or core's 503 when the pool is full."""
        fut = self.hash.try_submit(lambda: pending.finish(now))
        if fut is None:
            return _ready(pending.overloaded())
        return fut

    async def step_then_finish(self, prepared: PreparedStep, now: Optional[TimeLike] = None) -> Decision:
        """First step on the I/O pool, then argon2 on the hash pool when core needs it."""
        fut = self.io.try_submit(prepared.step)
        if fut is None:
            return prepared.overloaded()
        step: Union[Decision, Pending] = await fut
        if isinstance(step, Decision):
            return step
        return await self.finish(step, now)

    def shutdown(self) -> None:
        self.hash.shutdown()
        self.io.shutdown()

    def __repr__(self) -> str:
        return (
            f"Offload(hash_threads={self.hash.threads}, hash_queue={self.hash.queue}, "
            f"io_threads={self.io.threads}, io_queue={self.io.queue})"
        )
