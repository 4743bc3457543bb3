"""The steps every administration action is made of: a statement or a value read that says,
when it fails, which step it was; and a deadline that says which action ran out of time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from shinha.db.conn import Session
from shinha.db.options import Node
from shinha.errors import DatabaseError, DatabaseFenced


async def run_step(s: Session, sql: str, args: Sequence[Any] | None = None,
               what: str = "") -> None:
    """Run one statement; a failure says which step it was."""
    try:
        await s.execute(sql, args)
    except DatabaseError as exc:
        raise in_step(exc, what) from None


async def step_value(s: Session, sql: str, args: Sequence[Any] | None = None,
                 what: str = "") -> Any:
    try:
        row = await s.fetchone(sql, args)
    except DatabaseError as exc:
        raise in_step(exc, what) from None
    return row[0] if row else None


def in_step(exc: DatabaseError, what: str) -> DatabaseError:
    if not what or isinstance(exc, DatabaseFenced):
        return exc
    message = str(exc).removeprefix(f"database {exc.node}: ")
    return type(exc)(exc.node, f"{what}: {message}")


@asynccontextmanager
async def deadline(node: Node, action: str, timeout: float) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(timeout):
            yield
    except TimeoutError:
        raise DatabaseError(node.name, f"{action} did not finish within {timeout:g} s; "
                            "run `shinha db status` to see where each node stands") from None
