"""Teacher behind any OpenAI-compatible chat-completions server (vLLM serve, llama.cpp, Ollama,
hosted APIs). Requests run concurrently; each is retried with exponential backoff."""

import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

from storyrl.config import ConfigError, TeacherConfig
from storyrl.teacher.core import TeacherFailure
from storyrl.teacher.rubric import Rubric

log = logging.getLogger(__name__)


def _without_credentials(url: str) -> str:
    """The server's URL as it goes into the cache key and metadata: no `user:password@`."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


class OpenAIBackend:
    name = "openai"

    def __init__(self, cfg: TeacherConfig, rubric: Rubric, seed: int):
        import openai

        self.cfg, self.rubric, self.o = cfg, rubric, cfg.openai
        self.model = cfg.model
        self.server = self.o.server_label or _without_credentials(self.o.base_url)
        # Every setting that shapes a reply, sent with each request: a server fills the rest
        # from its own defaults (vllm serve: the model's generation_config.json, Llama 3.1's
        # top_p 0.9). top_p 1 as the offline engine and the hf backend sample (the paper's).
        self.sampling = {
            "temperature": cfg.temperature,
            "top_p": 1.0,
            "max_tokens": cfg.max_tokens,
            "seed": seed,
        }
        key = "unused"  # the client insists on a key; servers without auth ignore it
        if self.o.api_key_env:
            key = os.environ.get(self.o.api_key_env)
            if not key:
                raise ConfigError(
                    f"teacher.openai.api_key_env: environment variable {self.o.api_key_env} "
                    "is not set (it must hold the API key)"
                )
        # Retries are ours (configurable backoff, counted); the client makes one attempt.
        self.client = openai.OpenAI(
            base_url=self.o.base_url, api_key=key, timeout=self.o.timeout_s, max_retries=0
        )
        self._openai = openai
        self.retries_done = 0
        self._lock = threading.Lock()

    def replies(self, prompts: list[str], continuations: list[str]) -> list[str | None]:
        messages = [self.rubric.render(p, c) for p, c in zip(prompts, continuations)]
        with ThreadPoolExecutor(self.o.concurrency) as pool:
            return list(pool.map(self._one, messages))

    def _one(self, message: str) -> str | None:
        errors = self._openai
        for attempt in range(self.o.retries + 1):
            if attempt:
                with self._lock:
                    self.retries_done += 1
                time.sleep(self.o.backoff_s * 2 ** (attempt - 1))
            try:
                resp = self.client.chat.completions.create(
                    model=self.model,
                    messages=[{"role": "user", "content": message}],
                    **self.sampling,
                )
                try:
                    content = resp.choices[0].message.content
                except (AttributeError, IndexError, TypeError):
                    raise ValueError(f"not a chat completion: {str(resp)[:80]!r}") from None
                if content is None:
                    raise ValueError("a chat completion without content")
                return content
            except (
                errors.APIConnectionError,
                errors.InternalServerError,
                errors.RateLimitError,
                errors.APIResponseValidationError,
                ValueError,
            ) as err:
                # APITimeoutError is an APIConnectionError.
                why = f"{type(err).__name__}: {self._redact(str(err))[:200]}"
            except errors.APIStatusError as err:
                if past_context(err):
                    # This story's prompt and reply do not fit the server's context: asking
                    # again cannot help, and the other stories are unaffected.
                    log.warning(
                        "teacher: the server refused one story as too long: %s",
                        self._redact(str(err))[:300],
                    )
                    return None
                if err.status_code in (408, 409):
                    why = f"HTTP {err.status_code}"
                else:
                    # 400/401/403/404...: wrong URL, key or model name; retrying cannot help.
                    raise TeacherFailure(
                        f"teacher server {self.o.base_url} refused the request for model "
                        f"'{self.model}': HTTP {err.status_code} {self._redact(str(err))[:200]}",
                        [],
                    ) from None
            log.warning(
                "teacher request failed (attempt %d of %d): %s",
                attempt + 1,
                self.o.retries + 1,
                why,
            )
        return None

    def _redact(self, text: str) -> str:
        """A server's error body with credentials blanked: proxies echo the request's headers."""
        key = self.client.api_key
        if key and len(key) >= 8:
            text = text.replace(key, "[redacted]")
        return redact(text)

    def close(self) -> None:
        self.client.close()


CONTEXT_PARAMS = {"input_tokens", "input_text"}
CONTEXT_WORDS = ("maximum context length", "maximum model length")


def past_context(err) -> bool:
    """An HTTP 400 by which the server refuses a prompt too long for its context: vLLM 0.30
    names the parameter (`input_tokens`, `input_text`) in its error body, and it and other
    OpenAI-compatible servers say "maximum context length" in the message."""
    if err.status_code != 400:
        return False
    body = err.body if isinstance(err.body, dict) else {}
    text = f"{body.get('message', '')} {err.message}".lower()
    return body.get("param") in CONTEXT_PARAMS or any(w in text for w in CONTEXT_WORDS)


# `Authorization: Bearer x`, `"api_key": "x"`, `x-api-key=x`, and OpenAI-style `sk-...` keys.
SECRETS = [
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
