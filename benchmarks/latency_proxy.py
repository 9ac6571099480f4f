"""A reverse proxy in front of moto that makes it answer like a distant AWS: latency, throttling, paging.

Run as `python -m benchmarks.latency_proxy UPSTREAM`, in a process of its own so that its CPU is not the
bot's: it prints one JSON line with its URL, then reads one JSON command a line on stdin and answers each
with one JSON line (`{"set": {...}}` changes the settings below; `{"counts": true}` answers the calls
seen so far, by operation and outcome, and forgets them). It stops when stdin closes.

- `delay`: seconds slept before every AWS call is forwarded (a real endpoint is tens of ms away; moto
  on loopback answers in about one).
- `throttle`: the share of calls answered with AWS's throttling error (IAM: `Throttling`, KMS:
  `ThrottlingException`, shaped by tests/support/chaos_proxy.error_answer) instead of being forwarded.
- `page_size`: moto answers `GetAccountAuthorizationDetails` in one page however many users there are;
  IAM pages it, "MaxItems ... defaults to 100" (IAM API Reference, GetAccountAuthorizationDetails,
  Request Parameters: https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetAccountAuthorizationDetails.html).
  With `page_size` set, the proxy reads moto's one answer and hands it out in pages of that many users
  (or the request's MaxItems), with `IsTruncated` and `Marker`, as IAM does.

Only 127.0.0.1 is bound and only the upstream (a loopback moto) is contacted.
"""

from __future__ import annotations

import http.client
import json
import random
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.chaos_proxy import error_answer, identify, is_json_protocol

IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"
DETAILS = "GetAccountAuthorizationDetails"


class Proxy:
    """The settings, the counts and the pages held back, shared by the handler threads."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(f"upstream must be a loopback moto, not {upstream!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.settings: dict[str, Any] = {"delay": 0.0, "throttle": 0.0, "page_size": 0}
        self.counts: Counter[str] = Counter()
        self.pages: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.random = random.Random(0)
        self.local = threading.local()

    def forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """The request sent on to moto over this thread's kept-alive connection."""
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("connection", "content-length")}
        try:
            connection.request(handler.command, handler.path, body=body, headers=headers)
            response = connection.getresponse()
        except (OSError, http.client.HTTPException):
            connection.close()
            connection.connect()
            connection.request(handler.command, handler.path, body=body, headers=headers)
            response = connection.getresponse()
        return response.status, response.getheaders(), response.read()

    def paged(self, form: dict[str, list[str]], status: int, body: bytes) -> bytes:
        """moto's one answer cut into IAM's pages: the first page now, the rest kept under their markers."""
        if status != 200:
            return body
        size = int(form.get("MaxItems", [0])[0] or self.settings["page_size"])
        ET.register_namespace("", IAM_NS)
        root = ET.fromstring(body)
        result = root.find(f"{{{IAM_NS}}}GetAccountAuthorizationDetailsResult")
        assert result is not None
        users = result.find(f"{{{IAM_NS}}}UserDetailList")
        truncated = result.find(f"{{{IAM_NS}}}IsTruncated")
        assert users is not None and truncated is not None
        members = list(users)
        chunks = [members[i : i + size] for i in range(0, len(members), size)] or [[]]
        pages: list[bytes] = []
        with self.lock:
            base = len(self.pages)
            for index, chunk in enumerate(chunks):
                users[:] = chunk
                last = index == len(chunks) - 1
                truncated.text = "false" if last else "true"
                marker = result.find(f"{{{IAM_NS}}}Marker")
                if marker is not None:
                    result.remove(marker)
                if not last:
                    ET.SubElement(result, f"{{{IAM_NS}}}Marker").text = f"page-{base}-{index + 1}"
                pages.append(ET.tostring(root, encoding="utf-8"))
            for index, page in enumerate(pages[1:], start=1):
                self.pages[f"page-{base}-{index}"] = page
        return pages[0]


class Handler(BaseHTTPRequestHandler):
    """One client connection; HTTP/1.1 so that botocore keeps it alive, as it would with AWS."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.handle_one()

    do_POST = do_PUT = do_DELETE = do_GET

    def handle_one(self) -> None:
        proxy = self.server.proxy
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/moto-api"):
            self.answer(*proxy.forward(self, body))
            return
        service, operation = identify(dict(self.headers.items()), body, self.path)
        settings = dict(proxy.settings)
        if settings["delay"]:
            time.sleep(settings["delay"])
        with proxy.lock:
            throttled = proxy.random.random() < settings["throttle"]
            proxy.counts[f"{operation} {'throttled' if throttled else 'sent'}"] += 1
        if throttled:
            status, error_headers, data = error_answer(
                is_json_protocol(service, dict(self.headers.items())), service, "throttle",
                code=None, status=None, request_id="latency-proxy",
            )  # fmt: skip
            self.answer(status, list(error_headers.items()), data)
            return
        form = parse_qs(body.decode()) if operation == DETAILS else {}
        if operation == DETAILS and settings["page_size"] and "Marker" in form:
            with proxy.lock:
                page = proxy.pages.pop(form["Marker"][0])
            self.answer(200, [("Content-Type", "text/xml")], page)
            return
        status, headers, data = proxy.forward(self, body)
        if operation == DETAILS and settings["page_size"]:
            data = proxy.paged(form, status, data)
        self.answer(status, headers, data)

    def answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("connection", "content-length", "transfer-encoding", "date", "server"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: Proxy


def main() -> None:
    """Serve until stdin closes, answering the commands read from it."""
    server = Server(("127.0.0.1", 0), Handler)
    server.proxy = proxy = Proxy(sys.argv[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"url": f"http://127.0.0.1:{server.server_address[1]}"}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if "set" in command:
            with proxy.lock:
                proxy.settings.update(command["set"])
            print(json.dumps({"settings": proxy.settings}), flush=True)
        elif "counts" in command:
            with proxy.lock:
                counts, proxy.counts = dict(proxy.counts), Counter()
            print(json.dumps({"counts": counts}), flush=True)
    server.shutdown()


if __name__ == "__main__":
    main()
