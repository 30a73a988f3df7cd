"""Word counts and the short labels ("20M", "500K") that name checkpoints in paths."""

import re
from decimal import Decimal

_SUFFIX = {"": 1, "K": 1_000, "M": 1_000_000, "B": 1_000_000_000}
_LABEL = re.compile(r"^(\d+(?:\.\d+)?)([KMB]?)$")


def count_words(text: str) -> int:
    """Words as the paper counts them everywhere: a whitespace split."""
    return len(text.split())


def parse_words(value: int | str) -> int:
    """`20M` -> 20_000_000; plain integers pass through."""
    if isinstance(value, bool):
        raise ValueError(f"not a word count: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"word count must be >= 0, got {value}")
        return value
    m = _LABEL.match(str(value).strip().upper().replace("_", ""))
    if not m:
        raise ValueError(f"not a word count: {value!r} (use an integer or e.g. 500K, 20M, 1B)")
    # Decimal: in binary floats 32.2 * 1000 is 32200.000000000004, not a whole number.
    n = Decimal(m.group(1)) * _SUFFIX[m.group(2)]
    if n != n.to_integral_value():
        raise ValueError(f"word count must be a whole number: {value!r}")
    return int(n)


def words_label(n: int) -> str:
    """The inverse of parse_words, used in paths: 20_000_000 -> '20M', 1_500 -> '1500'."""
    for suffix in ("B", "M", "K"):
        unit = _SUFFIX[suffix]
        if n >= unit and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)
