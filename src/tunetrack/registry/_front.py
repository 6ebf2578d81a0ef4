"""The scoring server ``tunetrack serve`` runs: MLflow's scoring app behind a small ASGI guard.

MLflow's app reads any body whole, answers a request without a Content-Type with 500 and echoes
the input in its errors (a 50 MB body gave a 368 MB answer). :class:`Guard` stands in front:

- ``POST /invocations`` needs a Content-Type MLflow reads (else 415 listing them) and a body of
  at most ``max_body`` bytes, refused (413) from its Content-Length before anything is read, or
  as soon as a chunked body passes the limit;
- every error answer is one short JSON line, ``{"error_code": ..., "message": ...}``, with the
  reason on one line and no part of the request in it.

Run it with ``python -m tunetrack.registry._front MODEL_URI --host H --port P``: the model is
downloaded once, then uvicorn serves :func:`create_app` on each worker.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

ACCEPTED = ("application/json", "text/csv", "application/vnd.apache.parquet")
DEFAULT_MAX_BODY = 16 << 20
ENV_MODEL = "TUNETRACK_SERVE_MODEL"  # the downloaded model's local path
ENV_MAX_BODY = "TUNETRACK_SERVE_MAX_BODY"
MESSAGE_CHARS = 200
_KEEP_ERROR_BYTES = 64 << 10  # of an inner error answer, to find its reason; the rest is dropped
_ECHO_WINDOW = 16
_CODES = {400: "BAD_REQUEST", 404: "ENDPOINT_NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
          408: "REQUEST_TIMEOUT", 411: "LENGTH_REQUIRED", 413: "REQUEST_TOO_LARGE",
          415: "UNSUPPORTED_MEDIA_TYPE", 504: "TIMEOUT"}
_USAGE = ('the body is not valid input: send JSON like {"dataframe_split": {"columns": '
          '["image"], "data": [["<base64 image bytes>"]]}}')
_GENERIC = {400: _USAGE, 404: "not found: POST /invocations, GET /ping, /health or /version",
            405: "method not allowed: POST /invocations, GET /ping, /health or /version",
            500: "internal error while scoring this input"}

_QUOTED = re.compile(r"'[^']{61,}'|\"[^\"]{61,}\"")  # long quoted text: likely the input

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def one_line(message: str, body: bytes = b"") -> str:
    """``message`` on one line, at most :data:`MESSAGE_CHARS` characters, cut before any part
    of it that repeats the request ``body``."""
    text = message
    if "\nError: " in text:  # MLflow: "Failed to predict data '<the input>'. \nError: why"
        text = text.rsplit("\nError: ", 1)[1]
    if text.startswith("Failed to enforce schema of data"):  # '<the input>' with schema '...'
        text = "the input does not match the model signature: " + text.rsplit("Error: ", 1)[-1]
    text = _QUOTED.sub("'…'", " ".join(text.split()))
    if body:
        for start in range(0, max(len(text) - _ECHO_WINDOW + 1, 0), _ECHO_WINDOW):
            if text[start:start + _ECHO_WINDOW].encode() in body:
                text = text[:start].rstrip(" '\"(:") + " …"
                break
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS - 1] + "…"


def error_body(status: int, message: str) -> bytes:
    code = _CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR")
    return (json.dumps({"error_code": code, "message": message}) + "\n").encode()


async def reply(send: Send, status: int, message: str) -> None:
    body = error_body(status, message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _reason(status: int, raw: bytes, body: bytes) -> str:
    """The one-line reason of an inner error answer (MLflow's JSON, FastAPI's ``detail``)."""
    if status in (404, 405):
        return _GENERIC[status]
    try:
        parsed = json.loads(raw)
        text = parsed.get("message") or parsed.get("detail") if isinstance(parsed, dict) else None
    except ValueError:  # cut short, or not JSON
        text = raw.decode("utf-8", "replace") if len(raw) < _KEEP_ERROR_BYTES else None
    if not isinstance(text, str) or not text.strip() or status >= 500:
        return _GENERIC.get(status, f"the request was refused (HTTP {status})")
    return one_line(text, body)


class Guard:
    """ASGI middleware: Content-Type and body-size checks before the inner app sees a request,
    and short, one-line, non-echoing error answers after it."""

    def __init__(self, app: ASGIApp, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = b""
        if scope["method"] == "POST":
            read = await self._read(scope, receive, send)
            if read is None:
                return
            body = read
            replayed = False

            async def receive_body() -> Message:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            inner_receive: Receive = receive_body
        else:
            inner_receive = receive
        await self.app(scope, inner_receive, _ErrorFilter(send, body))

    async def _read(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None after answering 4xx (wrong type, too large, bad length)."""
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        given = headers.get(b"content-type", b"").decode("latin-1")
        mime = given.split(";", 1)[0].strip().lower()
        if scope.get("path") == "/invocations" and mime not in ACCEPTED:
            got = f"got {one_line(given)!r}" if given else "none was given"
            await reply(send, 415, f"Content-Type must be one of {', '.join(ACCEPTED)}; {got}")
            return None
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await reply(send, 400, "Content-Length must be a whole number of bytes")
                return None
            if int(length) > self.max_body:
                await reply(send, 413, f"the body has {int(length):,} bytes; the limit is "
                                       f"{self.max_body:,} (tunetrack serve --max-body)")
                return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await reply(send, 413, f"the body passed the limit of {self.max_body:,} bytes "
                                       f"(tunetrack serve --max-body)")
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class _ErrorFilter:
    """Wraps ``send``: answers of 400 and above are held and replaced by a short JSON line."""

    def __init__(self, send: Send, body: bytes) -> None:
        self.send, self.body = send, body
        self.status = 0
        self.held: list[bytes] = []
        self.kept = 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            if self.status < 400:
                await self.send(message)
            return
        if message["type"] != "http.response.body" or self.status < 400:
            await self.send(message)
            return
        chunk = message.get("body", b"")
        if self.kept < _KEEP_ERROR_BYTES:
            self.held.append(chunk[:_KEEP_ERROR_BYTES - self.kept])
            self.kept += len(self.held[-1])
        if not message.get("more_body", False):
            await reply(self.send, self.status, _reason(self.status, b"".join(self.held),
                                                        self.body))


def create_app() -> ASGIApp:
    """The guarded scoring app of the model at ``$TUNETRACK_SERVE_MODEL`` (uvicorn factory)."""
    from mlflow.pyfunc import scoring_server

    model = scoring_server.load_model_with_mlflow_config(os.environ[ENV_MODEL])
    app: ASGIApp = scoring_server.init(model)
    return Guard(app, int(os.environ.get(ENV_MAX_BODY, DEFAULT_MAX_BODY)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tunetrack.registry._front")
    parser.add_argument("model_uri")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY)
    args = parser.parse_args(argv)
    import mlflow
    import uvicorn

    os.environ[ENV_MODEL] = mlflow.artifacts.download_artifacts(artifact_uri=args.model_uri)
    os.environ[ENV_MAX_BODY] = str(args.max_body)
    uvicorn.run("tunetrack.registry._front:create_app", factory=True, host=args.host,
                port=args.port, workers=args.workers, timeout_graceful_shutdown=5,
                h11_max_incomplete_event_size=64 << 10)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
