"""`Batcher`: requests that arrive while a batch is being worked on wait, and go together.

The activity API decides every report in a ledger transaction, and a transaction's cost is
mostly its commit. Reports that queue up while one batch is decided are decided as the
next batch, in one transaction: under load, one commit serves many reports, and an idle
server still answers a lone report at once (a batch of one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

Item = TypeVar("Item")
Result = TypeVar("Result")

__all__ = ["Batcher"]


class Batcher(Generic[Item, Result]):
    """Runs `work(batch)` in the thread pool, one batch at a time, for one event loop.

    `work` returns one result per item, in order: a value, or an exception for that item
    alone. If `work` itself raises, every item of the batch gets that exception.
    """

    def __init__(
        self,
        work: Callable[[Sequence[Item]], Sequence[Result | BaseException]],
        *,
        max_batch: int = 256,
    ) -> None:
        self.work = work
        self.max_batch = max_batch
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._waiting.append((item, future))
        # A task of its own: a request that is cancelled (its client left) must not stop
        # the batches of the others.
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._waiting:
            batch = self._waiting[: self.max_batch]
            del self._waiting[: self.max_batch]
            await self._run(batch)

    async def _run(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await run_in_threadpool(self.work, [item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
        except BaseException as error:  # noqa: BLE001 -- every waiter must hear of it
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # its request was cancelled (client gone)
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
