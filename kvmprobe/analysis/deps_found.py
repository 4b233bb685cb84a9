"""What a dependency check finds when something is missing: a Violation (offered while a
requirement is not) and a Dropped feature (left out of a closure). Kept out of
kvmprobe.analysis.deps (which creates them, and re-exports both) because a host's own answer
normally has neither: a report does not pay for creating their classes at start-up."""

from __future__ import annotations

from kvmprobe.analysis.answers import Answer
from kvmprobe.frozen import frozen
from kvmprobe.vocab import Offered


class _Chain:
    """A requirement chain: the feature it starts from and the requirement it ends in."""

    chain: tuple[str, ...]

    @property
    def feature(self) -> str:
        return self.chain[0]

    @property
    def missing(self) -> str:
        return self.chain[-1]


@frozen
class Violation(_Chain):
    """``chain[0]`` is offered, every link up to ``chain[-2]`` is offered, and ``chain[-1]``,
    which ``chain[-2]`` requires, is not (``answer`` says why or that it is unknown)."""

    chain: tuple[str, ...]
    answer: Answer

    @property
    def direct(self) -> bool:
        return len(self.chain) == 2

    @property
    def certain(self) -> bool:
        """True when the requirement is known not to be offered; False when it is unknown."""
        return self.answer.offered is Offered.NO

    def describe(self) -> str:
        via = "" if self.direct else f" (through {' -> '.join(self.chain)})"
        return (
            f"{self.feature} is offered but needs {self.missing}{via}, which is "
            f"{self.answer.label()}"
        )


@frozen
class Dropped(_Chain):
    """``feature`` was dropped because ``chain[-1]`` (required through ``chain``) is absent."""

    chain: tuple[str, ...]

    def reason(self, lacking: str | None = None) -> str:
        """The reason in words: ``reason("host X lacks")`` gives "avx2 dropped: needs avx,
        which host X lacks"; without ``lacking`` it ends "which is not in the set"."""
        via = "" if len(self.chain) == 2 else f" (through {' -> '.join(self.chain[1:-1])})"
        tail = lacking or "is not in the set"
        return f"{self.feature} dropped: needs {self.missing}{via}, which {tail}"
