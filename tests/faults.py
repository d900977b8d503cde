"""Faults injected into one function of the code under test (with pytest's monkeypatch)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def failing_first(function: Callable[..., Any], *errors: BaseException) -> Callable[..., Any]:
    """`function`, except that its first calls raise `errors`, one each, in order."""
    left = list(errors)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if left:
            raise left.pop(0)
        return function(*args, **kwargs)

    return wrapped
