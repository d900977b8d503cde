"""`Batcher`: requests that queue up behind a batch go together, each gets its own answer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from floatseat.web.batching import Batcher


class Work:
    """Doubles numbers; a negative one is refused alone; the first batch waits for a gate."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.started = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        self.started.set()
        self.gate.wait(5)
        if 99 in items:
            raise RuntimeError("the ledger failed")
        return [ValueError(f"{i} < 0") if i < 0 else 2 * i for i in items]


def test_a_lone_request_goes_at_once_and_the_queue_goes_as_one_batch() -> None:
    async def scenario() -> tuple[list[object], list[list[int]]]:
        work = Work()
        batcher: Batcher[int, int] = Batcher(work)
        first = asyncio.ensure_future(batcher.submit(1))
        await asyncio.to_thread(work.started.wait, 5)  # the first batch is being worked on
        queued = [asyncio.ensure_future(batcher.submit(i)) for i in (2, -3, 4)]
        await asyncio.sleep(0.05)
        work.gate.set()
        answers = await asyncio.gather(first, *queued, return_exceptions=True)
        return list(answers), work.batches

    answers, batches = asyncio.run(scenario())
    assert batches == [[1], [2, -3, 4]]  # one transaction for the three that queued
    assert answers[0] == 2 and answers[1] == 4 and answers[3] == 8
    assert isinstance(answers[2], ValueError)  # refused alone: the others are answered


def test_a_failed_batch_fails_each_of_its_requests_and_the_next_batch_still_runs() -> None:
    async def scenario() -> list[object]:
        work = Work()
        work.gate.set()
        batcher: Batcher[int, int] = Batcher(work)
        failed = await asyncio.gather(batcher.submit(99), return_exceptions=True)
        return [*failed, await batcher.submit(5)]

    failed, later = asyncio.run(scenario())
    assert isinstance(failed, RuntimeError) and later == 10


def test_a_cancelled_request_does_not_stop_the_others() -> None:
    async def scenario() -> int:
        work = Work()
        batcher: Batcher[int, int] = Batcher(work)
        first = asyncio.ensure_future(batcher.submit(1))
        await asyncio.to_thread(work.started.wait, 5)
        second = asyncio.ensure_future(batcher.submit(7))
        await asyncio.sleep(0.01)
        first.cancel()  # its client went away while the batch ran
        work.gate.set()
        with pytest.raises(asyncio.CancelledError):
            await first
        return await asyncio.wait_for(second, 5)

    assert asyncio.run(scenario()) == 14


def test_batches_are_at_most_max_batch_long() -> None:
    async def scenario() -> list[list[int]]:
        work = Work()
        batcher: Batcher[int, int] = Batcher(work, max_batch=2)
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.to_thread(work.started.wait, 5)
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 6)]
        await asyncio.sleep(0.02)
        work.gate.set()
        await asyncio.gather(first, *rest)
        return work.batches

    assert asyncio.run(scenario()) == [[0], [1, 2], [3, 4], [5]]
