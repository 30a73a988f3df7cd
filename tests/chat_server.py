"""A real OpenAI-compatible chat-completions server on 127.0.0.1 for the teacher tests.

`mode` decides each answer: ok (a reply made by `reply_fn` from the user message), garbage_text
(a valid completion whose text has no numbers), garbage_body (HTTP 200 that is not JSON),
error500, stall (sleeps past the client's timeout), 401. `fail_first` makes the first N requests
of every distinct message fail with HTTP 500 before the mode applies (to exercise retries).
"""

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ChatServer:
    def __init__(self, mode="ok", reply_fn=lambda msg: "2 3 1", stall_s=2.0, fail_first=0):
        self.mode, self.reply_fn, self.stall_s, self.fail_first = mode, reply_fn, stall_s, fail_first
        self.requests: list[dict] = []   # every request: path, JSON body, headers (lower-case names)
        self.per_message = Counter()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                msg = body["messages"][-1]["content"]
                with server.lock:
                    server.requests.append({"path": self.path, "body": body,
                                            "headers": {k.lower(): v for k, v in self.headers.items()}})
                    server.per_message[msg] += 1
                    nth = server.per_message[msg]
                if nth <= server.fail_first or server.mode == "error500":
                    return self._send(500, b'{"error": {"message": "boom"}}')
                if server.mode in ("leaky500", "leaky401"):  # a proxy that echoes what it got
                    auth = self.headers.get("Authorization", "")
                    leak = json.dumps({"error": {"message": f"denied; Authorization: {auth}",
                                                 "request": {"api_key": auth.split()[-1]}}})
                    return self._send(500 if server.mode == "leaky500" else 401, leak.encode())
                if server.mode == "401":
                    return self._send(401, b'{"error": {"message": "bad key"}}')
                if server.mode == "stall":
                    time.sleep(server.stall_s)
                if server.mode == "garbage_body":
                    return self._send(200, b"<html>this is not json", "text/html")
                text = "I cannot grade this." if server.mode == "garbage_text" else server.reply_fn(msg)
                out = {"id": "c1", "object": "chat.completion", "created": 0,
                       "model": body["model"],
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": text}}]}
                self._send(200, json.dumps(out).encode())

            def _send(self, code, payload, ctype="application/json"):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
