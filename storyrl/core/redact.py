"""Secrets and private paths kept out of what storyrl prints and writes.

- `redact(text)`: credentials blanked in any text: the `user:password@` of a URL (a teacher
  server's `base_url` may carry them), `Authorization: Bearer x`, `"api_key": "x"`,
  OpenAI-style `sk-...` keys. The error boundary (storyrl.cli), the log handlers, printed
  configs and the share card all go through it; `redact_data` applies it to every string of a
  nested structure.
- `portable_path(path)`: a path as results record it: relative to the workflow's folder (the
  working directory) when inside it, else only its name (home folders and cluster scratch are
  nobody else's business); the caller records the file's sha256 beside it, which identifies it.
  `portable_ids` applies it to a table's metadata (storyrl.core.schemas.make_metadata),
  `portable_config` to a config shown in a share card.
- `credentials_to_env(url)` / `credentials_from_env(url)`: the workflow hands a job its teacher's
  URL with `user:password@` moved into an environment variable, because snakemake prints a job's
  command line (`-p`, and every failed job's), which no storyrl code sees to redact.
"""

import logging
import os
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

SECRETS = [
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@]+@"), r"\1[redacted]@"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
    (
        re.compile(
            r"""(?i)((?:authorization|api[_-]?key|access[_-]?token|secret|password)["']?"""
            r"""\s*[:=]\s*["']?)(?!bearer\b|basic\b|\[redacted)[^\s"',}]+"""
        ),
        r"\1[redacted]",
    ),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), "[redacted]"),
]


def redact(text: str) -> str:
    for pattern, repl in SECRETS:
        text = pattern.sub(repl, text)
    return text


def redact_data(value):
    """`value` (dicts, lists, strings, numbers) with every string redacted."""
    return _walk(value, redact)


def without_credentials(url: str) -> str:
    """The URL with no `user:password@` at all: what names a server in cache keys and metadata
    (the same server with other credentials is the same teacher)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


CREDENTIALS_ENV = "STORYRL_URL_CREDENTIALS_"
_PLACEHOLDER = re.compile(r"\$\{(" + CREDENTIALS_ENV + r"[0-9a-f]{12})\}@")


def credentials_to_env(url: str) -> tuple[str, dict[str, str]]:
    """`url` with its `user:password@` replaced by `${STORYRL_URL_CREDENTIALS_<id>}@`, and the
    variable to set ({} for a URL without credentials). The id comes from the URL without the
    password, so a job's own snakemake (on SLURM) names the same variable; it leaks nothing of
    the password."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}
    userinfo, _, hostport = parts.netloc.rpartition("@")
    import hashlib

    ident = f"{parts.username}@{hostport}{parts.path}"
    name = CREDENTIALS_ENV + hashlib.sha256(ident.encode()).hexdigest()[:12]
    return urlunsplit(parts._replace(netloc=f"${{{name}}}@{hostport}")), {name: userinfo}


def credentials_from_env(url: str) -> str:
    """The URL with a `${STORYRL_URL_CREDENTIALS_<id>}@` placeholder filled from the
    environment; a KeyError naming the variable if it is not set."""

    def fill(m):
        if m.group(1) not in os.environ:
            raise KeyError(
                f"{m.group(1)} is not set: the workflow sets it from the URL's credentials in "
                "the config (teacher.openai.base_url)"
            )
        return os.environ[m.group(1)] + "@"

    return _PLACEHOLDER.sub(fill, url)


def portable_path(path, root=None) -> str:
    """`path` relative to `root` (default: the working directory, the workflow's folder) when it
    lies inside it, else its name."""
    full = Path(os.path.abspath(path))
    try:
        return full.relative_to(os.path.abspath(root or os.getcwd())).as_posix()
    except ValueError:
        return full.name


def portable_config(value):
    """A config (nested dicts and lists) as it may be shown to others: every string redacted,
    every absolute path made portable (`portable_path`)."""

    def one(text: str) -> str:
        if "\n" not in text and len(text) < 4096 and os.path.isabs(text):
            return portable_path(text)
        return redact(text)

    return _walk(value, one)


PATH_KEYS = frozenset({"checkpoint", "model_dir", "model", "template", "stories_file"})
"""Keys of the ids in a table's metadata whose values are paths."""
URL_CREDENTIALS = SECRETS[0]


def portable_ids(value):
    """The ids of a table's metadata as written: the values of PATH_KEYS made portable, and no
    URL credentials in any string (other text, such as prompts, is kept as it is)."""

    def walk(v, key=None):
        if isinstance(v, dict):
            return {k: walk(x, k) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x, key) for x in v]
        if isinstance(v, str):
            if key in PATH_KEYS and "\n" not in v and os.path.isabs(v):
                return portable_path(v)
            return URL_CREDENTIALS[0].sub(URL_CREDENTIALS[1], v)
        return v

    return walk(value)


def _walk(value, fn):
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {k: _walk(v, fn) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_walk(v, fn) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """On a log handler: every record's message redacted before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True
