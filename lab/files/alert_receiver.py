"""The on-call side of an Alertmanager webhook, for the tests and the lab's alert drills: it serves HTTPS with the
host's certificate and appends every notification it is sent, as received, to a JSON-lines file with the time it
arrived. GET returns that file. Standard library only (it runs on a bare lab host)."""

from __future__ import annotations

import argparse
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=9999)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--log", required=True, help="JSON-lines file the notifications are appended to")
    args = ap.parse_args()
    open(args.log, "a", encoding="utf-8").close()  # the inbox exists, empty, as soon as the receiver runs

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(size) or b"null")
            except ValueError:
                self.send_error(400, "not JSON")
                return
            with LOCK, open(args.log, "a", encoding="utf-8") as f:
                f.write(json.dumps({"received": time.time(), "path": self.path, "body": body}) + "\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            try:
                with open(args.log, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                data = b""
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_unused) -> None:
            pass

    server = ThreadingHTTPServer(("0.0.0.0", args.port), Handler)  # noqa: S104 (reached from the zones' networks)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(args.cert, args.key)
    # The handshake runs in the request's thread (on first read): a stalled client cannot hold up the others.
    server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.serve_forever()


if __name__ == "__main__":
    main()
