"""Tables as people read them: ``compare``'s and the leaderboard's plain text, markdown and
records (short floats, thousands separators, no ``nan``, reasons cut to one line)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

REASON_WIDTH = 60  # table/markdown only: csv and json keep the whole reason


def missing(value: Any) -> bool:
    """None, NaN or pandas.NA (a scalar); lists and strings are values."""
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def cell(column: str, value: Any) -> str:
    """A value as a person reads it: short floats, thousands separators, no ``nan``."""
    if missing(value):
        return ""
    if column == "reason":
        text = " ".join(str(value).split())
        return text if len(text) <= REASON_WIDTH else text[:REASON_WIDTH - 1] + "…"
    if column == "params_total":
        return f"{int(value):,}"
    if isinstance(value, float):
        if column == "train_seconds":
            return f"{value:.1f}"
        return f"{value:.4f}" if 0.001 <= abs(value) < 1 else f"{value:.4g}"
    return str(value)


def is_numeric(series: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series.dtype)
                and not pd.api.types.is_bool_dtype(series.dtype))


def grid(df: pd.DataFrame) -> tuple[list[str], list[list[str]], list[bool]]:
    rows = [[cell(c, v) for c, v in zip(df.columns, row, strict=True)]
            for row in df.astype(object).itertuples(index=False, name=None)]
    return [str(c) for c in df.columns], rows, [is_numeric(df[c]) for c in df.columns]


def plain_text(df: pd.DataFrame) -> str:
    header, rows, right = grid(df)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w)
                         for c, w, r in zip(cells, widths, right, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def markdown(df: pd.DataFrame) -> str:
    header, rows, right = grid(df)

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rule = "|" + "|".join("---:" if r else ":---" for r in right) + "|"
    return "\n".join([line(header), rule] + [line(r) for r in rows])


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    def plain(value: Any) -> Any:
        if missing(value):
            return None
        return value.item() if hasattr(value, "item") else value

    return [{c: plain(v) for c, v in zip(df.columns, row, strict=True)}
            for row in df.astype(object).itertuples(index=False, name=None)]
