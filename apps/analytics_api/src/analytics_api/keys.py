"""API keys, stored hashed: a JSON file {"<name>": "sha256:<hex of the key>"} with one entry per key, so keys can be
rotated by adding the new one before removing the old. `analytics-api-key NAME` prints a new key and its entry."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sys
from pathlib import Path

HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
MIN_KEY_LENGTH = 24


class KeyStore:
    def __init__(self, entries: dict[str, str]):
        if not entries:
            raise ValueError("no API keys are configured")
        for name, digest in entries.items():
            if not HASH_RE.match(str(digest)):
                raise ValueError(f"key '{name}' is not stored as sha256:<64 hex digits>")
        self._digests = [(name, bytes.fromhex(d.split(":", 1)[1])) for name, d in entries.items()]

    @classmethod
    def from_file(cls, path: Path) -> KeyStore:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: {e}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: must be a JSON object of name -> sha256:<hex>")
        return cls(data)

    def identify(self, presented: str | None) -> str | None:
        """The name of the key `presented` is, or None. Compares every entry in constant time."""
        if not presented or len(presented) < MIN_KEY_LENGTH or len(presented) > 256:
            return None
        digest = hashlib.sha256(presented.encode("utf-8", "replace")).digest()
        found = None
        for name, stored in self._digests:
            if hmac.compare_digest(digest, stored) and found is None:
                found = name
        return found


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def main() -> None:
    if len(sys.argv) != 2 or not re.match(r"^[A-Za-z0-9_.-]{1,64}$", sys.argv[1]):
        print("usage: analytics-api-key NAME   (prints a new key and the entry for the keys file)", file=sys.stderr)
        raise SystemExit(2)
    key = secrets.token_urlsafe(32)
    print(f"key:   {key}")
    print(f'entry: "{sys.argv[1]}": "{hash_key(key)}"')
