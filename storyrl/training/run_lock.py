"""One writer per run folder: pretraining and RL hold an exclusive lock on their folder while they
run, and a second start on the same folder stops at once, naming the process that holds it.

Two writers would both resume from the same state and overwrite each other's steps, parts and
checkpoints: both exit 0, and the result matches neither trajectory. The lock is an `flock` on a
file in the folder: the kernel releases it when the holder exits, however it ends (SIGKILL
included), so a killed run never leaves a lock behind. The file itself stays; it holds the
holder's PID and host only so the refusal can name them.
"""

import fcntl
import functools
import inspect
import logging
import os
import socket
from contextlib import contextmanager
from pathlib import Path

from storyrl.config import ConfigError

log = logging.getLogger(__name__)

LOCK = ".storyrl.lock"
"""The lock file in a run folder; it stays where it is when a run is moved aside
(storyrl.training.run_config)."""


class RunFolderBusy(ConfigError):
    """Another process holds the run folder's lock."""


@contextmanager
def run_lock(folder):
    """Hold `folder`'s lock (creating the folder) for the block, or raise RunFolderBusy. Under
    torchrun only rank 0 writes the folder, so only it locks."""
    if int(os.environ.get("RANK", "0")):
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    # 0o666: the umask decides, as for every other file of the run.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise RunFolderBusy(
                f"{folder}: another process ({holder}) is writing this run folder; a second "
                "writer would mix both runs' steps. Wait for it to end or stop it, then start "
                "again"
            ) from None
        except OSError as err:  # a file system without locks (some network mounts)
            log.warning(
                "%s: cannot lock the run folder (%s); a second writer would not be refused",
                folder,
                err.strerror or err,
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"PID {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def holds_run_folder(arg: str):
    """Decorator: the function runs holding the lock of the folder given as its argument
    `arg`."""

    def wrap(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def locked(*args, **kwargs):
            with run_lock(signature.bind(*args, **kwargs).arguments[arg]):
                return fn(*args, **kwargs)

        return locked

    return wrap
