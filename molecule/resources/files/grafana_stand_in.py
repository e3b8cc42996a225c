#!/usr/bin/env python3
"""A stand-in for Grafana's login endpoints, for the audit's grafana and default_passwords controls (Grafana itself is
AGPL-licensed and never runs on this project's machines). It answers as Grafana documents them:
  POST /login {"user", "password"}  -> 200 {"message": "Logged in"} or 401 {"message": "Invalid username or password"}
  GET  /login/<provider>            -> 302 to the identity provider when that OAuth provider is enabled, else /login
With --config it takes the admin password and the OAuth providers from a grafana.ini as the grafana role renders it
([security] admin_password, [auth.<provider>] enabled = true); otherwise from --admin-password and --oauth.
    grafana_stand_in.py --port 3000 --cert host.crt --key host.key (--config grafana.ini | --admin-password admin)
"""

from __future__ import annotations

import argparse
import configparser
import json
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def settings(args) -> tuple[str, set[str]]:
    if not args.config:
        return args.admin_password, set(filter(None, args.oauth.split(",")))
    ini = configparser.RawConfigParser(strict=False)
    ini.read(args.config)
    password = ini.get("security", "admin_password", fallback="admin")
    oauth = {
        s.split(".", 1)[1]
        for s in ini.sections()
        if s.startswith("auth.") and ini.get(s, "enabled", fallback="false").lower() == "true"
    }
    return password, oauth


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--config")
    p.add_argument("--admin-password", default="admin")
    p.add_argument("--oauth", default="")
    args = p.parse_args()
    password, oauth = settings(args)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            except ValueError:
                body = {}
            ok = self.path == "/login" and body == {"user": "admin", "password": password}
            self.send_response(200 if ok else 401)
            self.end_headers()
            self.wfile.write(json.dumps({"message": "Logged in" if ok else "Invalid username or password"}).encode())

        def do_GET(self):
            name = self.path.removeprefix("/login/").split("?")[0]
            self.send_response(302)
            to = f"https://idp.example/authorize?client_id=grafana&provider={name}" if name in oauth else "/login"
            self.send_header("location", to)
            self.end_headers()

    server = ThreadingHTTPServer(("0.0.0.0", args.port), Handler)  # noqa: S104 - Grafana listens on every address
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
