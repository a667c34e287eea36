"""A webhook receiver on loopback for the tests: records every POST it gets, answers 200 (or what
`answer` says for a path)."""

from __future__ import annotations

import http.server
import json
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, NamedTuple


class Delivery(NamedTuple):
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Answer = Callable[[str], tuple[int, dict[str, str]]]


@contextmanager
def webhook_receiver(answer: Answer = lambda path: (200, {})) -> Iterator[tuple[str, list[Delivery]]]:
    """Serve until the block ends; yields (its base URL, the deliveries so far, appended as they come)."""
    deliveries: list[Delivery] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server naming)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            deliveries.append(Delivery(self.path, dict(self.headers), body))
            status, headers = answer(self.path)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        # A webapp posts up to 50 webhooks at once; the default backlog of 5 refused connections.
        request_queue_size = 128

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", deliveries
    finally:
        server.shutdown()
