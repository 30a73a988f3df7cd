"""Atomic writes: a file or folder appears complete under its final name, or not at all, with
the modes the umask gives (644/755 under 022, 664/775 under 002) whatever made its files.

A write that fails (full or read-only disk) raises an OSError whose `filename` is the file that
was being written: the kernel's ENOSPC names no path, and a user must know which disk is full."""

import contextlib
import errno
import glob
import os
import re
import shutil
import socket
import stat
import tempfile
from pathlib import Path

# Errors of the disk being written; others (an input gone missing) keep their own story.
DISK_ERRNOS = {
    errno.ENOSPC,
    errno.EROFS,
    errno.EDQUOT,
    errno.EFBIG,
    errno.EIO,
    errno.EACCES,
    errno.EPERM,
}


def _named(err: OSError, path: Path) -> OSError:
    """`err` with `path` as its filename (pyarrow's errors carry the errno only in the text)."""
    if err.filename is not None:
        return err
    code = err.errno
    if code is None and "errno 28" in str(err).lower():
        code = errno.ENOSPC
    if code not in DISK_ERRNOS:
        return err
    return OSError(code, os.strerror(code), str(path))


# The owner of a temporary folder is in its name, so that a later write can tell a folder left
# by a killed process (removed) from one being written now (left alone).
HOST = socket.gethostname().replace(".", "-")


def _owner_tag() -> str:
    return f"pid{os.getpid()}@{HOST}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(path: Path) -> None:
    """Remove temporary siblings of `path` whose writer on this host is gone (killed mid-save)."""
    owned = re.compile(rf"^\.{re.escape(path.name)}\.pid(\d+)@{re.escape(HOST)}\.[^.]+\.tmp$")
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.pid*.tmp"):
        m = owned.match(tmp.name)
        if m and not _alive(int(m[1])):
            shutil.rmtree(tmp, ignore_errors=True)


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (os.umask can only be
    read by setting it, which another thread could see)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path: str | os.PathLike) -> None:
    """Give `path` and everything under it the modes a plain `open`/`mkdir` would under the
    umask: a private temporary folder (mkdtemp: 700) or a file its library made private
    (safetensors: 600) would otherwise keep a lab-mate from loading a checkpoint. Files keep
    their execute bits; files of other owners (hard links to them) are left as they are."""
    mask = current_umask()
    uid = os.geteuid()
    path = Path(path)
    todo = [path]
    if path.is_dir() and not path.is_symlink():
        todo += [Path(d) / n for d, dirs, files in os.walk(path) for n in dirs + files]
    for p in todo:
        st = p.lstat()
        if stat.S_ISLNK(st.st_mode) or st.st_uid != uid:
            continue
        full = 0o777 if stat.S_ISDIR(st.st_mode) or st.st_mode & 0o111 else 0o666
        if stat.S_IMODE(st.st_mode) != full & ~mask:
            os.chmod(p, full & ~mask)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, is_dir: bool = False):
    """Yield a temporary sibling path; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(path)
        tmp = Path(
            tempfile.mkdtemp(prefix=f".{path.name}.{_owner_tag()}.", suffix=".tmp", dir=path.parent)
        )
    except OSError as err:
        raise _named(err, path.parent) from err
    target = tmp if is_dir else tmp / path.name
    try:
        yield target
        honour_umask(target)
        if is_dir and path.exists():
            shutil.rmtree(path)
        os.replace(target, path)
    except OSError as err:
        raise _named(err, path) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def check_writable(path: str | os.PathLike) -> None:
    """Raise the OSError (naming the folder) that writing `path` would meet, before hours of
    work that would end in it: create the folder, and a file in it, then remove the file."""
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise _named(err, folder) from err
