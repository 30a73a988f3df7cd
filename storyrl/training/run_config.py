"""The settings a resumable run belongs to, recorded in its folder and compared at every start.

Pretraining and RL keep their resume state in a folder that is not a Snakemake output, so it
survives a failed job; it also survives a config change that reruns the job. A state made with
other settings must never be resumed: the run would mix the two configurations (steps of one,
labels of the other). At a mismatch the caller chooses: `move` the old run aside (what a
workflow rule wants: the config changed, so the job starts afresh and nothing is lost), or
`refuse` (what a person at the command line wants: pointing a changed run at an old folder is
more likely a mistake than an intent, and the message says how to do either on purpose).
"""

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Literal

from storyrl.config import ConfigError
from storyrl.core.atomic import write_text
from storyrl.training.run_lock import LOCK

log = logging.getLogger(__name__)

RECORD = "run_config.json"


class RunConfigMismatch(ConfigError):
    """The folder holds a run made with other settings, and the caller refused to move it."""


def _text(settings: dict) -> str:
    return json.dumps(settings, indent=2, sort_keys=True, default=str) + "\n"


def differences(old, new, prefix: str = "") -> list[str]:
    """Dotted paths of the leaves that differ between two settings dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            out += differences(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [f"{prefix[:-1]} ({_short(old)} -> {_short(new)})"]


def _short(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def check_run_config(
    folder,
    settings: dict,
    on_change: Literal["move", "refuse"] = "move",
    keep: tuple[str, ...] = (),
    added: dict[str, str] | None = None,
) -> Path | None:
    """Make `folder` belong to `settings`: record them when it has none, do nothing when they
    match, else move the old run aside or refuse (see the module's docstring). Returns where an
    old run went.

    Moving: without `keep` the old run becomes a sibling `<name>.stale-<time>`; with `keep`
    (names that stay, such as a score cache that is keyed by what it caches) the other entries
    go into `<folder>/stale-<time>/`, so that nothing that scans the folder's parent mistakes the
    old run for another one. The folder's lock (storyrl.training.run_lock) always stays, and the record
    moves last: a move cut short leaves a folder that is still seen as the other run's.

    `added`: settings (dotted path -> why) that records written before they were recorded lack;
    such a record is taken to hold the current value, with a warning."""
    folder = Path(folder)
    path = folder / RECORD
    text = _text(settings)
    moved = None
    # A folder with nothing but the record (a start that stopped before its first save, e.g. on
    # a broken checkpoint) holds nothing to protect.
    done = path.exists() and any(e.name not in (RECORD, LOCK, *keep) for e in folder.iterdir())
    if done and path.read_text() != text:
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = {}
        if _adopt(old, json.loads(text), added or {}, folder):
            write_text(path, text)
            return None
        what = "; ".join(differences(old, json.loads(text))) or "the record is unreadable"
        if on_change == "refuse":
            raise RunConfigMismatch(
                f"{folder}: holds a run made with other settings ({what}); resuming it would mix "
                "the two. Use another output folder, or start afresh on purpose (`--on-change "
                "move` moves the old run aside)"
            )
        stamp = int(time.time())
        moved = (
            folder / f"stale-{stamp}" if keep else folder.with_name(f"{folder.name}.stale-{stamp}")
        )
        moved.mkdir()
        entries = [
            e
            for e in folder.iterdir()
            if e != moved and e.name not in (*keep, LOCK) and not e.name.startswith("stale-")
        ]
        for entry in sorted(entries, key=lambda e: e.name == RECORD):
            shutil.move(str(entry), moved / entry.name)
        log.warning(
            "settings changed since %s was started (%s): moved it to %s", folder, what, moved
        )
    folder.mkdir(parents=True, exist_ok=True)
    write_text(path, text)
    return moved


def _adopt(old: dict, new: dict, added: dict[str, str], folder: Path) -> bool:
    """Whether `old` differs from `new` only by lacking settings of `added` (then warned)."""
    lacking = []
    for dotted in added:
        *parents, leaf = dotted.split(".")
        src, dst = new, old
        for key in parents:
            src, dst = src.get(key, {}), dst.get(key)
            if not isinstance(dst, dict):
                break
        else:
            if leaf not in dst and leaf in src:
                dst[leaf] = src[leaf]
                lacking.append(dotted)
    if not lacking or old != new:
        return False
    for dotted in lacking:
        log.warning(
            "%s: its run was recorded without %s (%s); resuming it as made with %s",
            folder,
            dotted,
            added[dotted],
            _short(_get(new, dotted)),
        )
    return True


def _get(settings: dict, dotted: str):
    for key in dotted.split("."):
        settings = settings[key]
    return settings
