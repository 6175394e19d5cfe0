"""Micro-batching: concurrent requests are gathered into one model call, off the event loop.

A consumer task takes the first waiting item, waits at most ``max_wait_s`` for more (up to
``max_batch``), and runs ``fn(items)`` in the executor, so the event loop keeps accepting
requests. While a batch runs, new items queue up and form the next batch, so batches grow with
load without any extra waiting. One consumer (the model: one batch at a time in one thread) by
default; image perception runs ``consumers`` batches at once in as many worker processes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any, Generic, TypeVar

from mabsa.serve.errors import ApiError

T = TypeVar("T")
R = TypeVar("R")

#: ``fn(items)`` returns one result or one exception per item (an item's own error must not
#: fail its batch neighbours).
BatchFn = Callable[[Sequence[T]], Sequence["R | BaseException"]]


class MicroBatcher(Generic[T, R]):
    def __init__(
        self,
        fn: BatchFn,
        executor: Executor,
        max_batch: int = 16,
        max_wait_s: float = 0.005,
        max_queue: int = 512,
        consumers: int = 1,
    ):
        if max_batch < 1 or consumers < 1:
            raise ValueError("max_batch and consumers must be >= 1")
        self.fn = fn
        self.executor = executor
        self.max_batch = int(max_batch)
        self.max_wait_s = float(max_wait_s)
        self.max_queue = int(max_queue)
        self.consumers = int(consumers)
        self._queue: asyncio.Queue | None = None
        self._tasks: list[asyncio.Task] = []
        self.batch_sizes: Counter[int] = Counter()

    def start(self) -> None:
        self._queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(), name="micro-batcher") for _ in range(self.consumers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = []
        while self._queue is not None and not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(ApiError(503, "shutting_down", "the server is shutting down"))

    @property
    def queued(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    def stats(self) -> dict[str, Any]:
        """What ``/v1/stats`` shows of this batcher: items waiting, and batches by size."""
        return {"queued": self.queued, "batch_sizes": dict(sorted(self.batch_sizes.items()))}

    async def submit(self, item: T) -> R:
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        if self._queue.qsize() >= self.max_queue:
            raise ApiError(
                503,
                "overloaded",
                f"{self._queue.qsize()} posts are waiting for the model; retry shortly",
                headers={"Retry-After": "1"},
            )
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await future

    async def _gather(self) -> list[tuple[T, asyncio.Future]]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return [(item, fut) for item, fut in batch if not fut.done()]  # timed out: skip

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            if not batch:
                continue
            self.batch_sizes[len(batch)] += 1
            items = [item for item, _ in batch]
            try:
                results: Sequence[Any] = await loop.run_in_executor(self.executor, self.fn, items)
            except Exception as e:  # fn itself broke: every item gets the error
                results = [e] * len(batch)
            for (_, future), result in zip(batch, results):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
