"""The Executor family: where a task's handler actually runs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asched.model import Task


class Executor(ABC):
    """Runs handlers.  ``run`` is called on the scheduler's loop and returns an awaitable."""

    #: the name tasks use to pick this executor (``executor="thread"``)
    name: str
    #: whether handlers must be coroutine functions (True) or plain callables (False)
    wants_coroutines: bool
    #: whether the executor enforces ``task.timeout_s`` itself (the engine then sets
    #: no timer of its own), e.g. counting from when a remote worker starts the task
    owns_timeouts: bool = False
    #: the reason recorded with the task's move to RUNNING
    start_reason: str | None = None

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources (pools)."""

    async def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Release resources; running work has already been drained or cancelled."""

    @abstractmethod
    def run(self, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Awaitable[Any]: ...

    def run_task(
        self, task: Task, fn: Callable[..., Any], kwargs: dict[str, Any]
    ) -> Awaitable[Any]:
        """Run one attempt of ``task``.  Executors that need the task itself (its id,
        attempt, priority or timeout) override this; the others just ``run``."""
        return self.run(fn, kwargs)
