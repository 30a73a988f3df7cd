"""A persistent score cache: rescoring a story the same teacher already scored costs nothing.

One SQLite file per job (the workflow gives each RL run `results/rl/<run_id>/teacher_cache.sqlite`,
which pays when a killed run resumes and redraws the same stories): SQLite's locking is not to
be trusted across the nodes of a cluster file system, so no two jobs share a file. Several
processes on one machine may still share one (WAL mode; writers wait for each other).

A cache is an optimisation, never a reason to stop: a file that cannot be opened, is corrupt,
stays locked or fails to write (disk I/O error, disk full) is logged once with its path and the
teacher goes on uncached.

Only parsed replies are stored: a failed call or an unparseable reply is asked again next time,
so fixing the server fixes the rerun. Each row keeps the teacher's identity (JSON: backend,
server, model, template, template_sha256, sampling), so one teacher's entries can be dropped:
`drop_entries(path, model="...")`, or in the sqlite3 shell
`DELETE FROM replies WHERE json_extract(teacher, '$.server') = 'http://host:8000/v1';`
Deleting the file drops them all.
"""

import hashlib
import json
import logging
import sqlite3
from pathlib import Path

from storyrl.core.atomic import honour_umask

log = logging.getLogger(__name__)

# The table of the first format (keys without the server, unparseable replies kept) is left
# alone and unread: its rows cannot be told apart from a good teacher's.
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS replies_v2 (key TEXT PRIMARY KEY, teacher TEXT NOT NULL, "
    "reply TEXT NOT NULL)"
)
_TABLE = "replies_v2"
_CHUNK = 500  # SQLite limits the number of ? in one statement
IDENTITY_FIELDS = ("backend", "server", "model", "template_sha256", "join", "sampling")
"""What decides the reply besides the story (the template's path does not, its bytes do; the
join of opening and continuation makes the message too)."""


def cache_key(teacher_id: dict, prompt: str, continuation: str) -> str:
    """sha256 of everything that decides the reply: backend, server, model, template hash,
    sampling parameters (seed included), prompt and continuation."""
    blob = json.dumps(
        [[teacher_id.get(f) for f in IDENTITY_FIELDS], prompt, continuation],
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class ScoreCache:
    """Maps a cache key to a parsed teacher reply. Any SQLite or OS error turns the cache off
    for the rest of the run (`broken` holds why); reads then find nothing, writes do nothing."""

    def __init__(self, path: str | Path, timeout_s: float = 10.0):
        self.path = Path(path)
        self.broken: str | None = None
        self._db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            # SQLite makes its files 644 whatever the umask (a group's 002 included).
            for f in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                if f.exists():
                    honour_umask(f)
        except (sqlite3.Error, OSError) as err:
            self._fail(err)

    def _fail(self, err: Exception) -> None:
        self.broken = f"{type(err).__name__}: {err}"
        log.warning(
            "teacher cache %s is unusable (%s); scoring goes on uncached", self.path, self.broken
        )
        self.close()

    def get_many(self, keys: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        if self._db is None:
            return found
        try:
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, reply FROM {_TABLE} WHERE key IN ({marks})", chunk
                )
                found.update(rows.fetchall())
        except (sqlite3.Error, OSError) as err:
            self._fail(err)
            return {}
        return found

    def put_many(self, teacher_id: dict, items: dict[str, str]) -> None:
        if not items or self._db is None:
            return
        teacher = json.dumps({f: teacher_id.get(f) for f in IDENTITY_FIELDS}, sort_keys=True)
        try:
            # One short transaction; a concurrent writer of the same key wrote the same kind of
            # answer, so the first one in wins.
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    f"INSERT OR IGNORE INTO {_TABLE} VALUES (?, ?, ?)",
                    [(k, teacher, r) for k, r in items.items()],
                )
        except (sqlite3.Error, OSError) as err:
            self._fail(err)

    def __len__(self) -> int:
        if self._db is None:
            return 0
        return self._db.execute(f"SELECT COUNT(*) FROM {_TABLE}").fetchone()[0]

    def close(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None


def drop_entries(path: str | Path, **match) -> int:
    """Delete the entries of the teachers whose identity fields equal `match` (e.g.
    `server="http://host:8000/v1"`, `model="..."`, `backend="heuristic"`); returns how many."""
    unknown = set(match) - set(IDENTITY_FIELDS)
    if unknown or not match:
        raise ValueError(
            f"unknown teacher field(s) {', '.join(sorted(unknown)) or '(none given)'}"
            f": match on one or more of {', '.join(IDENTITY_FIELDS)}"
        )
    # json_extract gives an object (sampling) as minified JSON text; json(?) minifies ours alike.
    where = " AND ".join(
        f"json_extract(teacher, '$.{f}') = json(?)"
        if f == "sampling"
        else f"json_extract(teacher, '$.{f}') = ?"
        for f in match
    )
    values = [json.dumps(v, sort_keys=True) if f == "sampling" else v for f, v in match.items()]
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute(_SCHEMA)
        return db.execute(f"DELETE FROM {_TABLE} WHERE {where}", values).rowcount
    finally:
        db.close()
