"""The error every reader raises for a bad input: it names the file, the item in it and the field."""

from __future__ import annotations

import os


class InputError(ValueError):
    """A file (or a value given on the command line) is not what it must be.

    The message is ``"<source>: <item>: <field>: <problem>"`` with the parts that apply, e.g.
    ``"gt.json: annotations[3] (id 17): bbox: expected 4 finite numbers [x, y, w, h], got 'abc'"``. The parts are
    kept as attributes for programs (``source``, ``item``, ``field``, ``problem``).
    """

    def __init__(
        self, source: str | os.PathLike[str], problem: str, *, item: str | None = None, field: str | None = None
    ) -> None:
        self.source = str(source)
        self.item = item
        self.field = field
        self.problem = problem
        super().__init__(": ".join(p for p in (self.source, item, field, problem) if p))


def describe(value: object, limit: int = 60) -> str:
    """A short, safe rendering of an offending value for a message (type and a truncated repr)."""
    kind = "null" if value is None else type(value).__name__
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{kind} {text}"
