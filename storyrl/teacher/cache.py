"""A persistent score cache: rescoring a story the same teacher already scored costs nothing.

SQLite in WAL mode: several processes (RL jobs, evaluation) may read and write one file at
once; writers wait for each other (busy timeout) instead of failing. Keep the file on a local
disk: SQLite's locking is unreliable on network file systems (NFS, Lustre).
"""

import hashlib
import json
import sqlite3
from pathlib import Path

_SCHEMA = "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL)"
_CHUNK = 500  # SQLite limits the number of ? in one statement


def cache_key(teacher_id: dict, prompt: str, continuation: str) -> str:
    """sha256 of everything that decides the reply: backend, model, template hash, sampling
    parameters (seed included), prompt and continuation."""
    blob = json.dumps(
        [teacher_id["backend"], teacher_id["model"], teacher_id["template_sha256"],
         teacher_id["sampling"], prompt, continuation],
        sort_keys=True, ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class ScoreCache:
    """Maps a cache key to the teacher's raw reply. Failed calls are never stored (they are
    retried next time); unparseable replies are, since they are the teacher's answer."""

    def __init__(self, path: str | Path, timeout_s: float = 60.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def get_many(self, keys: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i:i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT key, reply FROM replies WHERE key IN ({marks})", chunk)
            found.update(rows.fetchall())
        return found

    def put_many(self, items: dict[str, str]) -> None:
        if not items:
            return
        # One short transaction; a concurrent writer of the same key wrote the same kind of
        # answer, so the first one in wins.
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR IGNORE INTO replies VALUES (?, ?)", items.items())

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        self._db.close()
