"""Reading and parsing request bodies: a size limit enforced on the declared length and on the stream, strict UTF-8
and strict JSON (no NaN or Infinity, no nesting deeper than Python parses): every malformed body is a 4xx."""

from __future__ import annotations

import json

from starlette.requests import Request

from analytics_api.problems import HTTPProblem


async def read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_large = int(declared) > max_bytes
        except ValueError:
            raise HTTPProblem(400, "malformed Content-Length header") from None
        if too_large:
            raise HTTPProblem(413, f"request body larger than {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise HTTPProblem(413, f"request body larger than {max_bytes} bytes")
    return bytes(body)


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


def parse_json(body: bytes):
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPProblem(400, "request body is not valid UTF-8") from None
    try:
        return json.loads(text, parse_constant=_not_json)
    except json.JSONDecodeError as e:
        raise HTTPProblem(400, f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise HTTPProblem(400, "malformed JSON: nested too deep") from None
    except ValueError as e:  # NaN or Infinity, or an integer longer than Python converts (4300 digits)
        raise HTTPProblem(400, f"malformed JSON: {str(e).split(';', maxsplit=1)[0]}") from None
