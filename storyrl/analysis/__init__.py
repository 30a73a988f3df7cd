"""Analysis: every table and figure of the paper, rebuilt from Parquet results alone.

`layout` (where results live), `load` (checked readers), `stats` (bootstrap, monotone curve),
`tables`, `style` + `figures`, `targets` (one entry point per table/figure, and `all`).
"""


class AnalysisError(ValueError):
    """An input that cannot be used; the message names the file and the field."""
