"""A real OpenAI-compatible chat-completions server on 127.0.0.1 for the teacher tests.

`mode` decides each answer: ok (a reply made by `reply_fn` from the user message), garbage_text
(a valid completion whose text has no numbers), garbage_body (HTTP 200 that is not JSON),
error500, stall (sleeps past the client's timeout), 401, trickle (a valid completion sent one
byte every `trickle_s`, so that no single read times out), 429 (rate-limited, with a
`Retry-After: <retry_after>` header unless that is None). `fail_first` makes the first N requests
of every distinct message fail with HTTP 500 before the mode applies (to exercise retries).
`max_chars`: a user message longer than that is refused as vLLM 0.30's server refuses a prompt
past its context (HTTP 400, `context_length_body`). `GET /v1/models` answers as vLLM's does
(what an RL pack waits for before it starts its runs).

Run as a script (`python tests/chat_server.py --port N [--log FILE]`) it serves `seeded_reply`,
which depends on nothing but the request, as an RL pack's teacher server command
(tests/rl/test_rl_share.py); `--log` appends each request's JSON body as one line.
"""

import argparse
import hashlib
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def seeded_reply(body: dict) -> str:
    """Three scores 0..3 drawn from the message, the seed and the temperature: a stand-in for
    a teacher whose seeded sampling gives one reply per request, whatever else it serves."""
    key = json.dumps([body["messages"][-1]["content"], body.get("seed"), body.get("temperature")])
    digest = hashlib.sha256(key.encode()).digest()
    return " ".join(str(b % 4) for b in digest[:3])


def context_length_body(n_tokens: int, max_model_len: int, max_tokens: int) -> bytes:
    """vLLM 0.30's answer to a chat request whose prompt leaves no room for `max_tokens`:
    the VLLMValidationError of its renderer (renderers/params.py, `_token_len_check`) as its
    ErrorResponse (entrypoints/serve/exception_handling); tests/stories/test_vllm_real.py builds it
    with vLLM's own code and compares."""
    message = (
        f"This model's maximum context length is {max_model_len} tokens. However, you "
        f"requested {max_tokens} output tokens and your prompt contains {n_tokens} input "
        f"tokens, for a total of {n_tokens + max_tokens} tokens. Please reduce the length of "
        "the input prompt or the number of requested output tokens. "
        f"(parameter=input_tokens, value={n_tokens})"
    )
    error = {"message": message, "type": "BadRequestError", "param": "input_tokens", "code": 400}
    return json.dumps({"error": error}).encode()


class ChatServer:
    def __init__(
        self,
        mode="ok",
        reply_fn=lambda msg: "2 3 1",
        stall_s=2.0,
        fail_first=0,
        port=0,
        body_reply_fn=None,
        log_path=None,
        trickle_s=0.1,
        retry_after=None,
        max_chars=None,
    ):
        """`body_reply_fn(body)`, if given, replaces `reply_fn(message)`: a reply from the whole
        request (its seed and sampling settings too)."""
        self.mode, self.reply_fn, self.stall_s, self.fail_first = (
            mode,
            reply_fn,
            stall_s,
            fail_first,
        )
        self.body_reply_fn, self.log_path, self.max_chars = body_reply_fn, log_path, max_chars
        self.trickle_s, self.retry_after = trickle_s, retry_after
        self.requests: list[dict] = []  # every request: path, JSON body, headers (lower-case names)
        self.per_message = Counter()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                if self.path.rstrip("/") != "/v1/models":
                    return self._send(404, b'{"error": {"message": "not found"}}')
                self._send(200, json.dumps({"object": "list", "data": []}).encode())

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                msg = body["messages"][-1]["content"]
                with server.lock:
                    server.requests.append(
                        {
                            "path": self.path,
                            "body": body,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "t": time.monotonic(),
                        }
                    )
                    if server.log_path:
                        with open(server.log_path, "a") as f:
                            f.write(json.dumps(body) + "\n")
                    server.per_message[msg] += 1
                    nth = server.per_message[msg]
                if server.max_chars is not None and len(msg) > server.max_chars:
                    return self._send(
                        400, context_length_body(len(msg), server.max_chars, body["max_tokens"])
                    )
                if nth <= server.fail_first or server.mode == "error500":
                    return self._send(500, b'{"error": {"message": "boom"}}')
                if server.mode in ("leaky500", "leaky401"):  # a proxy that echoes what it got
                    auth = self.headers.get("Authorization", "")
                    leak = json.dumps(
                        {
                            "error": {
                                "message": f"denied; Authorization: {auth}",
                                "request": {"api_key": auth.split()[-1]},
                            }
                        }
                    )
                    return self._send(500 if server.mode == "leaky500" else 401, leak.encode())
                if server.mode == "429":
                    extra = (
                        {} if server.retry_after is None else {"Retry-After": server.retry_after}
                    )
                    return self._send(429, b'{"error": {"message": "slow down"}}', headers=extra)
                if server.mode == "401":
                    return self._send(401, b'{"error": {"message": "bad key"}}')
                if server.mode == "stall":
                    time.sleep(server.stall_s)
                if server.mode == "garbage_body":
                    return self._send(200, b"<html>this is not json", "text/html")
                text = (
                    "I cannot grade this."
                    if server.mode == "garbage_text"
                    else server.body_reply_fn(body)
                    if server.body_reply_fn
                    else server.reply_fn(msg)
                )
                out = {
                    "id": "c1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": text},
                        }
                    ],
                }
                self._send(200, json.dumps(out).encode(), trickle=server.mode == "trickle")

            def _send(self, code, payload, ctype="application/json", headers=None, trickle=False):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, str(v))
                    self.end_headers()
                    if not trickle:
                        self.wfile.write(payload)
                        return
                    for i in range(len(payload)):
                        self.wfile.write(payload[i : i + 1])
                        self.wfile.flush()
                        time.sleep(server.trickle_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def main() -> None:
    p = argparse.ArgumentParser(description="a deterministic chat-completions server on 127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--log", help="append each request's JSON body here, one per line")
    args = p.parse_args()
    srv = ChatServer(port=args.port, body_reply_fn=seeded_reply, log_path=args.log)
    try:
        threading.Event().wait()  # until a signal ends the process
    finally:
        srv.close()


if __name__ == "__main__":
    main()
