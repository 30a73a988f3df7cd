"""Teacher behind any OpenAI-compatible chat-completions server (vLLM serve, llama.cpp, Ollama,
hosted APIs). Requests run concurrently; each is retried with exponential backoff (or after the
server's `Retry-After`). Every request has a total deadline and every batch one too, so a server
that trickles, rate-limits or stalls cannot hold a step for hours."""

import email.utils
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from storyrl.config import ConfigError, TeacherConfig
from storyrl.core.redact import credentials_from_env, redact, without_credentials
from storyrl.stories.rubric import Rubric
from storyrl.stories.teacher.core import TeacherFailure

log = logging.getLogger(__name__)


class _PastDeadline(Exception):
    pass


class ReplyTooLong(ValueError):
    """A reply longer than the `max_tokens` asked for allows: the server ignored the limit."""


def reply_limits(max_tokens: int) -> tuple[int, int]:
    """(bytes of the HTTP body, whitespace words of the reply) that no reply of `max_tokens`
    tokens reaches. Tokenizers split words at whitespace, so a word is at least one token; a
    token is a few bytes of text (rarely over 128), and JSON escaping can triple a byte. The
    margins are wide on purpose: only a server that ignores `max_tokens` passes them."""
    return 3 * 128 * max_tokens + 16_384, 2 * max_tokens + 16


def reply_content(body: bytes, max_words: int) -> str:
    """The reply text of a chat completion's JSON body; ValueError if there is none."""
    try:
        content = json.loads(body)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ValueError(f"not a chat completion: {body[:80]!r}") from None
    if content is None:
        raise ValueError("a chat completion without content")
    if not isinstance(content, str):
        raise ValueError(
            f"a chat completion whose content is not text but {type(content).__name__} "
            f"{str(content)[:40]!r}"
        )
    if len(content.split(maxsplit=max_words)) > max_words:
        raise ReplyTooLong(f"more than {max_words} words, starting {content[:40]!r}")
    return content


def retry_after_s(headers) -> float | None:
    """Seconds a `Retry-After` header asks for (a number, or an HTTP date); None if absent."""
    value = (headers or {}).get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class OpenAIBackend:
    name = "openai"

    def __init__(self, cfg: TeacherConfig, rubric: Rubric, seed: int):
        import openai

        self.cfg, self.rubric, self.o = cfg, rubric, cfg.openai
        self.model = cfg.model
        try:
            self.base_url = credentials_from_env(self.o.base_url)
        except KeyError as err:
            raise ConfigError(f"teacher.openai.base_url: {err.args[0]}") from None
        self.server = self.o.server_label or without_credentials(self.base_url)
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
            base_url=self.base_url, api_key=key, timeout=self.o.timeout_s, max_retries=0
        )
        self._openai = openai
        self.retries_done = 0
        self.late = 0
        """Replies of the last batch still missing at its deadline."""
        self.batch_note = ""
        """What the last batch's deadline cut short, for the teacher's failure message."""
        self._lock = threading.Lock()
        self.max_bytes, self.max_words = reply_limits(cfg.max_tokens)

    def replies(self, prompts: list[str], continuations: list[str]) -> list[str | None]:
        messages = [self.rubric.render(p, c) for p, c in zip(prompts, continuations)]
        deadline = time.monotonic() + self.o.batch_deadline_s
        self.late = 0
        with ThreadPoolExecutor(self.o.concurrency) as pool:
            out = list(pool.map(lambda m: self._one(m, deadline), messages))
        self.batch_note = ""
        if self.late:
            self.batch_note = (
                f"{self.late} still missing at "
                f"teacher.openai.batch_deadline_s={self.o.batch_deadline_s:g}"
            )
            log.warning(
                "teacher server %s: %d of %d replies missing after %g s "
                "(teacher.openai.batch_deadline_s); they count as failed calls",
                self.server,
                self.late,
                len(out),
                self.o.batch_deadline_s,
            )
        return out

    def _give_up_late(self) -> None:
        with self._lock:
            self.late += 1

    def _one(self, message: str, deadline: float) -> str | None:
        errors = self._openai
        wait_asked = None  # the server's Retry-After for the next attempt
        for attempt in range(self.o.retries + 1):
            if attempt:
                with self._lock:
                    self.retries_done += 1
                wait = self.o.backoff_s * 2 ** (attempt - 1)
                if wait_asked is not None:
                    wait = max(wait, wait_asked)
                if time.monotonic() + wait >= deadline:
                    self._give_up_late()
                    return None
                time.sleep(wait)
            left = deadline - time.monotonic()
            if left <= 0:
                self._give_up_late()
                return None
            wait_asked = None
            try:
                return self._attempt(message, min(self.o.request_deadline_s, left))
            except ReplyTooLong as err:
                # Asking again would only get another such reply; the batch's other stories
                # are unaffected.
                log.warning(
                    "teacher server %s: a reply longer than teacher.max_tokens=%d allows (%s); "
                    "it counts as a failed call",
                    self.server,
                    self.cfg.max_tokens,
                    err,
                )
                return None
            except _PastDeadline:
                if deadline - time.monotonic() <= 0:
                    self._give_up_late()
                    return None
                why = (
                    f"no complete reply within {self.o.request_deadline_s:g} s "
                    "(teacher.openai.request_deadline_s)"
                )
            except (
                errors.APIConnectionError,
                errors.InternalServerError,
                errors.RateLimitError,
                errors.APIResponseValidationError,
                ValueError,
            ) as err:
                # APITimeoutError is an APIConnectionError.
                why = f"{type(err).__name__}: {self._redact(str(err))[:200]}"
                if isinstance(err, errors.APIStatusError) and err.status_code in (429, 503):
                    wait_asked = retry_after_s(err.response.headers)
                    if wait_asked is not None and wait_asked > self.o.max_retry_after_s:
                        log.warning(
                            "teacher request failed: %s; the server asks to retry after %g s, "
                            "more than teacher.openai.max_retry_after_s=%g: no further attempt",
                            why,
                            wait_asked,
                            self.o.max_retry_after_s,
                        )
                        return None
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
                        f"teacher server {redact(self.base_url)} refused the request for model "
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

    def _attempt(self, message: str, limit_s: float) -> str:
        """One request, given up after `limit_s` seconds in all. The client's own timeout bounds
        each read only; the request runs in a daemon thread that is left to end by itself (the
        client's read timeout, or the server finishing) when the limit passes."""
        box: dict = {}
        done = threading.Event()

        def work():
            try:
                box["reply"] = self._request(message)
            except BaseException as err:  # handed to the caller's thread
                box["error"] = err
            finally:
                done.set()

        threading.Thread(target=work, name="teacher-request", daemon=True).start()
        if not done.wait(limit_s):
            raise _PastDeadline
        if "error" in box:
            raise box["error"]
        return box["reply"]

    def _request(self, message: str) -> str:
        # The body is read piece by piece and given up past the limit: a server that ignores
        # max_tokens cannot make a 6-token reply cost megabytes of memory (and budget words).
        body = bytearray()
        with self.client.chat.completions.with_streaming_response.create(
            model=self.model,
            messages=[{"role": "user", "content": message}],
            **self.sampling,
        ) as resp:
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > self.max_bytes:
                    raise ReplyTooLong(f"a body of more than {self.max_bytes} bytes")
        return reply_content(bytes(body), self.max_words)

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
