"""Progress of a long job: step k of N, words seen, the latest loss or score, seconds per step
and the time left.

In a terminal it is a tqdm bar. In a log file (a rule's `> log 2>&1`, a SLURM job's output) a
bar's carriage returns would make one unreadable multi-megabyte line, so there it is a plain
log line every `every_s` seconds, and at the first and the last step. A job whose log is a file
can also echo those lines to a console (`echo_to`): the workflow's long rules pass snakemake's
own stderr, where the user watches the run.
"""

import logging
import math
import os
import sys
import time

log = logging.getLogger(__name__)

_console = None
"""Where progress lines are echoed besides the log (`echo_to`); None: nowhere."""


def echo_to(fd: int | None):
    """Echo every progress line to the open file descriptor `fd` as well (None: stop). A
    descriptor that is not open is a warning, not a failure: progress never stops a job."""
    global _console
    _console = None
    if fd is None:
        return None
    try:
        _console = os.fdopen(fd, "w", buffering=1, closefd=False)
    except OSError as err:
        log.warning("progress lines stay in the log: file descriptor %d: %s", fd, err.strerror)
    return _console


def _echo(text: str) -> None:
    global _console
    if _console is None:
        return
    try:
        _console.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
    except (OSError, ValueError):  # the console went away (closed pipe, ended terminal)
        _console = None


def duration(seconds: float) -> str:
    """H:MM:SS (days as `Nd H:MM:SS`), `?` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    days, s = divmod(s, 86400)
    text = f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{days}d {text}" if days else text


def quiet_library_bars(stream=None) -> None:
    """When `stream` (stderr) is a file, turn off the libraries' own tqdm bars (loading and
    saving weights, datasets), whose carriage returns would fill a job's log file."""
    if (stream if stream is not None else sys.stderr).isatty():
        return
    import transformers
    from huggingface_hub.utils import disable_progress_bars

    transformers.utils.logging.disable_progress_bar()
    disable_progress_bars()
    try:
        import datasets
    except ImportError:  # pragma: no cover - a dependency of trl
        return
    datasets.disable_progress_bars()


def _known(value) -> bool:
    return value is not None and math.isfinite(value)


class Progress:
    """Report steps as they end: `update(k, words=..., total=..., metric=value)`.

    Seconds per step are measured over the steps this process has run (a resumed job's earlier
    steps took their time in another job); the ETA is the steps left at that pace. `total` may
    change (an RL run's planned steps follow its ledger)."""

    def __init__(
        self,
        name: str,
        total: int | None,
        every_s: float = 60.0,
        start: int = 0,
        stream=None,
        clock=time.monotonic,
    ):
        self.name, self.total, self.every_s, self.clock = name, total, every_s, clock
        self.stream = stream if stream is not None else sys.stderr
        self.start_step, self.start_time = start, clock()
        self.last_line = -math.inf
        self.bar = None
        if self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=start,
                desc=name,
                unit="step",
                file=self.stream,
                dynamic_ncols=True,
            )

    def line(self, k: int, words: int | None = None, **latest) -> str:
        """The progress line of step `k`."""
        done = k - self.start_step
        s_step = (self.clock() - self.start_time) / done if done > 0 else math.nan
        total = self.total
        parts = [f"step {k}/{total if total is not None else '?'}"]
        if total:
            parts[0] += f" ({100 * k / total:.0f}%)"
        if words is not None:
            parts.append(f"words {words:,}")
        parts += [f"{name} {value:.4g}" for name, value in latest.items() if _known(value)]
        parts.append(f"{s_step:.2f} s/step" if math.isfinite(s_step) else "? s/step")
        eta = (total - k) * s_step if total is not None else math.nan
        parts.append(f"ETA {duration(eta)}")
        return f"{self.name}: " + ", ".join(parts)

    def update(self, k: int, words: int | None = None, total: int | None = None, **latest) -> None:
        if total is not None:
            self.total = total
        if self.bar is not None:
            if self.bar.total != self.total:
                self.bar.total = self.total
            post = {n: f"{v:.4g}" for n, v in latest.items() if _known(v)}
            if words is not None:
                post["words"] = f"{words:,}"
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(k - self.bar.n)
            return
        now = self.clock()
        last = self.total is not None and k >= self.total
        if now - self.last_line >= self.every_s or last:
            self.last_line = now
            text = self.line(k, words, **latest)
            log.info("%s", text)
            _echo(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
