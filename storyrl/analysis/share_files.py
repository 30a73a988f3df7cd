"""The files of a shared folder (`storyrl share`): how they are copied, which of them `share`
owns, and whether they are still what the card recorded.

- Copies, never links: a hard link made the shared file the result file itself, so an edit of
  one changed the other and the card's sha256 went stale. A reflink (copy-on-write clone, where
  the filesystem offers one) shares the blocks but not later edits.
- `share` owns the files it wrote, listed in MANIFEST; everything else in the folder (a clone's
  `.git/`, a LICENSE, notes) is kept, and a folder without its card is refused.
- `check_shared`: a folder with a card is read only as the card recorded it; a file edited,
  added or removed after sharing is refused by name (or, when told, warned about).
"""

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path

from storyrl.analysis import AnalysisError, BadResults
from storyrl.core import layout
from storyrl.core.atomic import write_text

log = logging.getLogger(__name__)

MARK = "<!-- written by `storyrl share` -->"
"""In the card (README.md) of every folder `share` writes."""
MANIFEST = ".storyrl-share.json"
"""The files `share` wrote into a folder (paths relative to it): the ones it may replace or
remove when it shares into that folder again."""
CARD = "README.md"
FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
CARD_ROW = re.compile(r"^\| `(?P<rel>[^`]+)` \|.*\| `(?P<sha>[0-9a-f]{64})` \|$", re.M)
"""A row of the card's Files table: path first, SHA-256 last (storyrl.analysis.share.card)."""


def copy_file(src: Path, dst: Path) -> None:
    """`dst` as a copy of `src`: a reflink where the filesystem clones files (btrfs, XFS; no
    second copy of GBs of rollouts), else the bytes copied."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as s, open(dst, "wb") as d:
        try:
            fcntl.ioctl(d.fileno(), FICLONE, s.fileno())
            return
        except OSError:
            pass  # no clones here (ext4, tmpfs, another filesystem): a disk error recurs below
    shutil.copyfile(src, dst)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _card(folder: Path) -> str:
    path = folder / CARD
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def recorded(folder) -> dict[str, str] | None:
    """{relative path: sha256} of the files the card of `folder` lists; None without a card
    that `share` wrote."""
    text = _card(Path(folder))
    if MARK not in text:
        return None
    return {m["rel"]: m["sha"] for m in CARD_ROW.finditer(text)}


def owned(out: Path) -> set[str] | None:
    """The files `share` wrote into `out`; None for a folder that is absent or empty (it can
    be written whole). A folder with other contents and no card of `share` is refused."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None
    files = recorded(out) if out.is_dir() else None
    if files is None:
        raise AnalysisError(
            f"--out {out}: exists and is not a folder `storyrl share` wrote (no {CARD} with its "
            "mark); give a new or empty folder"
        )
    try:
        return set(json.loads((out / MANIFEST).read_text(encoding="utf-8"))["files"])
    except FileNotFoundError:
        # A folder shared before the manifest: its card lists every file `share` wrote.
        return set(files) | {CARD}
    except (ValueError, KeyError, TypeError) as err:
        raise AnalysisError(f"{out / MANIFEST}: not a readable share manifest ({err})") from None


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _manifest(folder: Path, files) -> None:
    write_text(folder / MANIFEST, json.dumps({"files": sorted(files)}, indent=1) + "\n")


def install(staged: Path, out: Path, mine: set[str] | None) -> None:
    """Move the folder `staged` (every file of the share, its card included) into `out`.
    A new `out` is `staged` renamed (all at once). Into a former share folder, each file
    replaces its old version, the files of the former share that this one lacks are removed,
    and nothing else is touched; the manifest lists the old and the new files until the end,
    so an interrupted update leaves no file of `share` unlisted, and the card, replaced last,
    tells a half-done update (`check_shared`)."""
    new = _files(staged)
    if mine is None:
        _manifest(staged, new)
        if out.exists():
            out.rmdir()
        out.parent.mkdir(parents=True, exist_ok=True)
        staged.rename(out)
        return
    foreign = [rel for rel in new if rel not in mine and (out / rel).exists()]
    if foreign:
        raise AnalysisError(
            f"--out {out}: {', '.join(foreign[:3])} exist(s) there but `storyrl share` did not "
            "write them; move them out of the folder or give another one"
        )
    _manifest(out, set(mine) | set(new))
    for rel in sorted(new, key=lambda r: r == CARD):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged / rel, out / rel)
    for rel in sorted(set(mine) - set(new)):
        path = out / rel
        path.unlink(missing_ok=True)
        for parent in path.parents:
            if parent == out or not parent.is_dir() or any(parent.iterdir()):
                break
            parent.rmdir()
    _manifest(out, new)
    shutil.rmtree(staged)


def check_shared(folder, allow_modified: bool = False) -> list[str]:
    """Check the input files of a shared folder against its card: a file edited after sharing
    (its sha256 differs), one added (the card does not list it) or one removed. Refused
    (BadResults, each named) unless `allow_modified`, which warns. Returns the files that
    differ; [] for a folder without a card (a results folder)."""
    folder = Path(folder)
    files = recorded(folder)
    if files is None:
        return []
    inputs = layout.discover(folder)
    present = {
        p.relative_to(folder).as_posix()
        for field in layout.PATTERNS
        for p in getattr(inputs, field)
    }
    if inputs.baselines is not None:
        present.add(inputs.baselines.relative_to(folder).as_posix())
    problems = {}
    for rel in sorted(present | set(files)):
        if rel not in files:
            problems[rel] = "not in the card"
        elif not (folder / rel).is_file():
            problems[rel] = "in the card but missing"
        elif sha256(folder / rel) != files[rel]:
            problems[rel] = f"sha256 differs from the card's ({files[rel][:12]}…)"
    if problems and not allow_modified:
        lines = "; ".join(f"{rel}: {why}" for rel, why in problems.items())
        raise BadResults(
            f"{folder}: the shared files are not those its {CARD} records ({lines}); tables "
            "rebuilt from them would not be the shared results. Share again from the original "
            "results, or pass --allow-modified to build from them anyway"
        )
    for rel, why in problems.items():
        log.warning("%s: %s (--allow-modified: used as it is)", folder / rel, why)
    return sorted(problems)
