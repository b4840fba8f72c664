"""Ending background tasks reliably, and bounding a step that may hang."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

__all__ = ["cancel_and_wait", "finish_within"]

_RETRY_S = 0.1


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has ended; an exception it ended with is raised.

    A single cancel() is not enough on Python 3.11: `asyncio.wait_for` (which
    nats-py uses for connects, flushes and requests) swallows a cancellation that
    races the result it was waiting for, and nats-py's own teardown catches
    `CancelledError` in places, so the task carries on. Cancel again until it ends.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=_RETRY_S)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()


async def finish_within(step: Awaitable[None], timeout_s: float) -> bool:
    """Run `step` for at most `timeout_s`; False (it is cancelled) if it took longer.

    Unlike `asyncio.timeout` around the step, the bound holds even when the step
    swallows the cancellation that the timeout sends it. Its exceptions propagate.
    """
    task = asyncio.ensure_future(step)
    try:
        done, _ = await asyncio.wait([task], timeout=timeout_s)
    finally:
        if not task.done():  # also when the caller is cancelled meanwhile
            await cancel_and_wait(task)
    if not done:
        return False
    task.result()
    return True
