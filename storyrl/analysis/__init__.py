"""Analysis: every table and figure of the paper, rebuilt from Parquet results alone.

`layout` (where results live), `load` (checked readers), `stats` (bootstrap, monotone curve),
`tables`, `style` + `figures`, `registry` (every table and figure, listed once),
`targets` (building them: one, or `all`).
"""


class AnalysisError(ValueError):
    """An input that cannot be used; the message names the file and the field."""


class BadResults(AnalysisError):
    """Inputs that contradict each other or hold impossible values (two files of one run, seeds
    of one setting run under different configurations, NaN scores, a junk summary): every
    table could be wrong, so `analysis all` stops instead of skipping a target."""
