"""Finished results of a group evaluation job, kept where Snakemake does not delete them.

Snakemake removes every output of a job before the job runs and again when it fails. A group
job (storyrl.evaluate.manifest) scores several checkpoints; one broken checkpoint would throw
away the results of all the others, and a rerun would score them all again. So once a
checkpoint's files are written they are also hard-linked into `.kept/` beside them, with a
record of what made them: the checkpoint's content, the job's settings, the code's version. A
rerun whose record matches links them back instead of scoring again. A hard link costs no copy,
and the kept name stays valid when Snakemake unlinks the output. `.kept/` sits one level below
the outputs, where nothing that gathers results looks.
"""

import json
import logging
import os
import shutil
from pathlib import Path

from storyrl.core.atomic import atomic_path, write_text
from storyrl.core.checkpoints import content_identity

log = logging.getLogger(__name__)

KEPT = ".kept"


def kept_path(out) -> Path:
    out = Path(out)
    return out.parent / KEPT / out.name


def _record_path(outputs: list[Path]) -> Path:
    return kept_path(outputs[0]).with_name(outputs[0].name + ".record.json")


def folder_identity(folder) -> dict:
    """Every file under `folder` by size and modification time: a regenerated data set differs."""
    folder = Path(folder)
    return {
        str(p.relative_to(folder)): [p.stat().st_size, p.stat().st_mtime_ns]
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def record(checkpoint, settings: dict) -> dict:
    from storyrl.core.schemas import make_metadata

    meta = make_metadata("kept")
    return {
        "checkpoint": content_identity(checkpoint),
        "code": [meta["storyrl_version"], meta["git_commit"]],
        "settings": json.loads(json.dumps(settings, sort_keys=True, default=str)),
    }


def _link(src: Path, dst: Path) -> None:
    """`dst` becomes a hard-linked copy of the file or tree `src` (a plain copy where the file
    system has no hard links), atomically."""
    if src.is_dir():
        with atomic_path(dst, is_dir=True) as tmp:
            shutil.copytree(src, tmp, copy_function=_link_file, dirs_exist_ok=True)
    else:
        with atomic_path(dst) as tmp:
            _link_file(src, tmp)


def _link_file(src, dst) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def restore(outputs: list, rec: dict) -> bool:
    """Link the kept files of a checkpoint back to `outputs` when they were made exactly as `rec`
    says; False (nothing touched) otherwise."""
    outputs = [Path(o) for o in outputs]
    path = _record_path(outputs)
    try:
        if json.loads(path.read_text()) != rec:
            return False
    except (OSError, json.JSONDecodeError):
        return False
    if not all(kept_path(o).exists() for o in outputs):
        return False
    for o in outputs:
        _link(kept_path(o), o)
    log.info(
        "%s: scored before with the same checkpoint and settings; kept files reused", outputs[0]
    )
    return True


def keep(outputs: list, rec: dict) -> None:
    """Keep a checkpoint's finished `outputs` under `.kept/` with their record (written last, so a
    keep cut short is never trusted)."""
    outputs = [Path(o) for o in outputs]
    path = _record_path(outputs)
    path.unlink(missing_ok=True)
    for o in outputs:
        _link(o, kept_path(o))
    write_text(path, json.dumps(rec, indent=2, sort_keys=True) + "\n")


def fail_on(broken: list[str], total: int) -> None:
    """After a group job scored what it could: one line naming the broken checkpoints."""
    from storyrl.core.checkpoints import CheckpointError

    if broken:
        raise CheckpointError(
            f"{' | '.join(broken)} ({len(broken)} of {total} checkpoints failed; the results of "
            f"the other {total - len(broken)} are written, and kept for the rerun)"
        )
