"""Analysis: every table and figure of the paper, rebuilt from Parquet results alone.

`layout` (where results live), `load` (checked readers), `stats` (bootstrap, monotone curve),
`tables`, `style` + `figures`, `registry` (every table and figure, listed once),
`targets` (building them: one, or `all`).
"""

# storyrl.config imports AnalysisConfig from here; loading it first keeps the import order the
# same whichever module a caller imports first.
import storyrl.config  # noqa: F401


class AnalysisError(ValueError):
    """An input that cannot be used; the message names the file and the field."""
