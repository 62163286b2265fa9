"""Tables as Markdown, numbers written as a reader wants them (the ladder's and the studies' pages)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def format_cell(value: Any, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if column in ("delta", "ci_low", "ci_high"):
        return f"{value:+.3f}"
    if column == "p_value":
        return f"{value:.3f}" if value >= 0.001 else "<0.001"
    if column == "train_seconds":
        return f"{value:.1f}"
    if column == "tokens_per_second":
        return f"{value:,.0f}"
    if column in ("params", "seeds", "diverged"):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of the ladder (numbers to 3 decimals)."""
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---:" if table[c].dtype.kind in "if" else "---" for c in table.columns) + "|"
    body = ["| " + " | ".join(format_cell(row[c], c) for c in table.columns) + " |" for _, row in table.iterrows()]
    return "\n".join([header, rule, *body]) + "\n"
