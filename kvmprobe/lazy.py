"""Names a module offers but defines elsewhere, imported the first time they are asked for:
what most commands never use costs them no start-up time."""

from __future__ import annotations

from importlib import import_module

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def forward(module: str, homes: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``module``: each name in ``homes`` is read from the module
    named there, imported on first use; any other name is an AttributeError as usual.

    Assign it under ``if not TYPE_CHECKING:`` (to a type checker a module ``__getattr__``
    makes every name exist, so a misspelt import would pass) and import the names for type
    checkers under ``if TYPE_CHECKING:``."""

    def __getattr__(name: str) -> object:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        return getattr(import_module(home), name)

    return __getattr__
