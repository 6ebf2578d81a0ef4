"""One error hierarchy; the CLI turns each into a message and an exit status in one place."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from difflib import get_close_matches


class TunetrackError(Exception):
    """Base of every error tunetrack reports to a user.

    ``exit_code`` is what the CLI exits with: 2 for bad user input (files, flags, data),
    1 for an outcome the user asked to be judged (e.g. a refused promotion).
    """

    exit_code = 2


class ConfigError(TunetrackError):
    """A pipeline or space file breaks a rule.

    The message is formatted ``FILE:LINE: key: message`` so editors can jump to it.
    ``problems`` holds every problem found, so ``validate`` can report them all at once.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None, problems: list[ConfigError] | None = None) -> None:
        self.file, self.line, self.key, self.detail = file, line, key, message
        self.problems = problems or [self]
        super().__init__(self.format() if problems is None else
                         "\n".join(p.format() for p in self.problems))

    def format(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
        key = f"{self.key}: " if self.key else ""
        return f"{where}: {key}{self.detail}"


class SpaceError(ConfigError):
    """A search-space file is invalid."""


class PipelineError(ConfigError):
    """A pipeline file is invalid."""


class DataError(TunetrackError):
    """The data cannot be loaded: a missing folder, too few classes, an undecodable image."""


class CandidateRejected(TunetrackError):
    """A candidate is impossible (shapes) or breaks a constraint; it is never trained.

    ``reason`` is a one-line explanation naming the layer and the numbers.
    """

    def __init__(self, reason: str, *, kind: str = "impossible") -> None:
        self.reason, self.kind = reason, kind
        super().__init__(reason)


class SearchAborted(TunetrackError):
    """keras-tuner gave up (too many consecutive failed trials); the search run is FAILED."""

    exit_code = 1


class TrackingError(TunetrackError):
    """The MLflow store cannot be used as asked (unknown experiment, run or model)."""


class PromotionRefused(TunetrackError):
    """A model was evaluated but not made champion; the user asked for a judgement."""

    exit_code = 1


def shown(value: object, width: int = 60) -> str:
    """``repr(value)`` cut to ``width`` characters: a message never echoes a whole file."""
    text = repr(value)
    return text if len(text) <= width else f"{text[:width - 1]}…"


def capped(message: str, *, lines: int = 40, width: int = 500) -> str:
    """At most ``lines`` lines of at most ``width`` characters: what a user is shown of any
    error, however large the value it quotes."""
    rows = message.splitlines() or [""]
    out = [row if len(row) <= width else f"{row[:width - 1]}…" for row in rows[:lines]]
    if len(rows) > lines:
        out.append(f"... and {len(rows) - lines} more lines")
    return "\n".join(out)


def did_you_mean(value: object, allowed: Iterable[object]) -> str:
    """`` (did you mean 'x'?)`` when ``value`` is close to one allowed value, else ``""``."""
    close = get_close_matches(str(value), [str(a) for a in allowed], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def allowed_list(allowed: Iterable[object]) -> str:
    return ", ".join(repr(a) if isinstance(a, str) else str(a) for a in allowed)


def causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and what it wraps: ``__cause__``/``__context__`` and SQLAlchemy's ``.orig``."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        todo.extend([current.__cause__, current.__context__,
                     orig if isinstance(orig, BaseException) else None])
