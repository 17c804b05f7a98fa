"""The Executor family: where a task's handler actually runs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any


class Executor(ABC):
    """Runs handlers.  ``run`` is called on the scheduler's loop and returns an awaitable."""

    #: the name tasks use to pick this executor (``executor="thread"``)
    name: str
    #: whether handlers must be coroutine functions (True) or plain callables (False)
    wants_coroutines: bool

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources (pools)."""

    async def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Release resources; running work has already been drained or cancelled."""

    @abstractmethod
    def run(self, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Awaitable[Any]: ...
