"""`async with` / `with` for what has an `aclose` / `close`: the clients and the streams."""

from __future__ import annotations

from typing import Self


class AsyncClosing:
    """`async with x:` closes `x` on the way out."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class SyncClosing:
    """`with x:` closes `x` on the way out."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
