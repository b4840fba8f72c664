"""Stopping background tasks reliably."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

_RETRY_S = 0.1


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has ended.

    A single cancel() is not enough on Python 3.11: `asyncio.wait_for` (which
    nats-py uses for requests) swallows a cancellation that races the result it
    was waiting for, and the task carries on. So cancel again until it ends.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=_RETRY_S)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()
