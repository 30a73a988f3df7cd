"""Bootstrap intervals, the monotone curve of teacher score against pretraining words, and the
paper's discrete reading of the same comparison (the nearest checkpoint)."""

import hashlib

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.optimize import brentq, isotonic_regression

_CHUNK = 20_000_000  # resampled values held at once


def stream(seed: int, *key) -> np.random.Generator:
    """The random stream of one unit of resampling (a run's window, a checkpoint), seeded from
    the analysis seed and the unit's name: the same results give the same intervals whatever
    order the files come in, and adding a run leaves the others' intervals as they were."""
    digest = hashlib.sha256("\x1f".join(map(str, key)).encode()).digest()
    return np.random.default_rng(
        np.random.SeedSequence(
            [seed % 2**64, *(int.from_bytes(digest[i : i + 8], "little") for i in (0, 8, 16, 24))]
        )
    )


def bootstrap_means(groups, n: int, rng) -> np.ndarray:
    """`n` bootstrap replicates of the mean over `groups` of each group's mean, every group
    resampled with replacement on its own (stratified: one group per run or per checkpoint).
    `rng`: one Generator for all groups, or one per group (`stream`)."""
    rngs = rng if isinstance(rng, (list, tuple)) else [rng] * len(groups)
    if len(rngs) != len(groups):
        raise ValueError(f"{len(groups)} groups but {len(rngs)} random streams")
    total = np.zeros(n)
    for g, rng in zip(groups, rngs):
        g = np.asarray(g, dtype=float)
        if g.size == 0:
            raise ValueError("cannot bootstrap an empty group")
        rows = max(1, _CHUNK // g.size)
        for start in range(0, n, rows):
            k = min(rows, n - start)
            total[start : start + k] += g[rng.integers(0, g.size, (k, g.size))].mean(axis=1)
    return total / len(groups)


def interval(samples, ci: float) -> tuple[float, float]:
    """Percentile interval; `inverted_cdf` picks observed replicates, so replicates of +inf
    ('above the curve') give an infinite bound instead of NaN."""
    lo, hi = np.quantile(
        np.asarray(samples, dtype=float), [(1 - ci) / 2, (1 + ci) / 2], method="inverted_cdf"
    )
    return float(lo), float(hi)


class MonotoneCurve:
    """Score as a non-decreasing function of log10(words): the weighted isotonic fit of the
    checkpoints' mean scores, joined by a monotone cubic (PCHIP). Not extrapolated."""

    def __init__(self, words, scores, weights=None):
        words = np.asarray(words, dtype=float)
        scores = np.asarray(scores, dtype=float)
        weights = np.ones_like(scores) if weights is None else np.asarray(weights, dtype=float)
        if np.any(words <= 0):
            raise ValueError("pretraining words must be > 0 for a log scale")
        # One knot per checkpoint: several files of the same words are pooled by weight.
        knots, inv = np.unique(words, return_inverse=True)
        x = np.log10(knots)
        if x.size < 2:
            raise ValueError("the curve needs at least two pretraining checkpoints")
        w = np.bincount(inv, weights=weights)
        y = np.bincount(inv, weights=weights * scores) / w
        self.knots, self.x, self.raw = knots, x, y
        self.y = isotonic_regression(y, weights=w, increasing=True).x
        self._f = PchipInterpolator(x, self.y, extrapolate=False)

    @property
    def words_range(self) -> tuple[float, float]:
        return float(self.knots[0]), float(self.knots[-1])

    def __call__(self, words) -> np.ndarray:
        return self._f(np.log10(np.asarray(words, dtype=float)))

    def words_for(self, score: float) -> tuple[float, str]:
        """The fewest words whose curve value reaches `score`, and a status: `ok`,
        `above_max` (+inf: no checkpoint scores that high; never extrapolated) or `below_min`
        (the first checkpoint's words: it already scores higher)."""
        y, x, k = self.y, self.x, self.knots
        if score > y[-1] + 1e-12:
            return float("inf"), "above_max"
        if score < y[0] - 1e-12:
            return float(k[0]), "below_min"
        if score <= y[0]:
            return float(k[0]), "ok"
        i = min(int(np.searchsorted(y, score, side="left")), len(y) - 1)  # y[i-1] < score <= y[i]
        if abs(y[i] - score) <= 1e-12:
            return float(k[i]), "ok"
        root = brentq(lambda t: float(self._f(t)) - score, x[i - 1], x[i], xtol=1e-12)
        return float(10**root), "ok"


class CurveBootstrap:
    """The curve of the checkpoints' mean scores and its bootstrap replicates (every
    checkpoint's stories resampled on their own), fitted once and shared by all runs."""

    def __init__(self, curve_groups: dict, n_boot: int, seed: int):
        self.words = np.array(sorted(curve_groups), dtype=float)
        arrays = [np.asarray(curve_groups[w], dtype=float) for w in sorted(curve_groups)]
        self.sizes = np.array([a.size for a in arrays], dtype=float)
        self.means = np.array([a.mean() for a in arrays])
        self.curve = MonotoneCurve(self.words, self.means, self.sizes)
        self.boot = np.stack(
            [
                bootstrap_means([a], n_boot, stream(seed, "curve", int(w)))
                for w, a in zip(self.words, arrays)
            ]
        )
        boot = self.boot
        self.replicates = [MonotoneCurve(self.words, boot[:, b], self.sizes) for b in range(n_boot)]


def equivalent_words(cb: CurveBootstrap, start_words, after_groups, ci: float, rng) -> dict:
    """Pretraining words that reach a run's after-RL score, minus its starting words.

    `after_groups`: the run's per-story (or per-step) after-RL scores, one array per run pooled
    as a mean of means. Bootstrap: the run's stories are resampled and each replicate is
    inverted on one curve replicate."""
    after = float(np.mean([np.mean(a) for a in after_groups]))
    eq, status = cb.curve.words_for(after)
    boot_after = bootstrap_means(after_groups, len(cb.replicates), rng)
    boot_eq = np.array([c.words_for(a)[0] for c, a in zip(cb.replicates, boot_after)])
    lo, hi = interval(boot_eq - start_words, ci)
    return {
        "after": after,
        "equivalent_words": eq,
        "status": status,
        "extra_words": eq - start_words,
        "extra_lo": lo,
        "extra_hi": hi,
        "above_max_share": float(np.mean(np.isinf(boot_eq))),
    }


def nearest_checkpoint(before: dict, after: float) -> tuple[float, str]:
    """The paper's reading: the checkpoint whose before-RL score is closest to `after` (a tie
    goes to the fewer words), and a status: `ok`; `above_max` when `after` is above every
    checkpoint's score (+inf: no checkpoint scores that high); `below_min` when it is below
    every one (the lowest-scoring checkpoint's words)."""
    if not before:
        raise ValueError("no checkpoint to compare with")
    words = sorted(before)
    scores = np.array([before[w] for w in words], dtype=float)
    if after > scores.max() + 1e-12:
        return float("inf"), "above_max"
    status = "below_min" if after < scores.min() - 1e-12 else "ok"
    return float(words[int(np.argmin(np.abs(scores - after)))]), status
