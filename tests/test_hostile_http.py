"""Hostile HTTP bodies and client paths at the scoring server: a short 4xx line for each.

The guard is driven in-process through ASGI (no network); one subprocess test serves a stub
pyfunc for real and stops it with SIGTERM.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tunetrack.registry._front import Guard
from tunetrack.registry._pyfunc import admitted

LIMIT = 1000
ECHO = "SECRET-PAYLOAD-" * 40


async def _inner(scope: Any, receive: Any, send: Any) -> None:
    """Stands in for MLflow's app: 200 for ``{"ok": ...}``, else an error echoing the input."""
    if scope["path"] != "/invocations":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b'{"detail":"Not Found"}'})
        return
    body = (await receive())["body"]
    if body.startswith(b'{"ok"'):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"predictions": []}'})
        return
    text = body.decode("utf-8", "replace")
    message = json.dumps({"error_code": "BAD_REQUEST",
                          "message": f"Failed to predict data '{text}'. \nError: row 0: bad"})
    await send({"type": "http.response.start", "status": 400, "headers": []})
    for i in range(0, len(message), 4096):  # streamed, as large answers are
        await send({"type": "http.response.body", "body": message[i:i + 4096].encode(),
                    "more_body": i + 4096 < len(message)})


def _call(method: str, path: str, headers: dict[str, str], chunks: list[bytes]
          ) -> tuple[int, dict[str, Any], int]:
    """(status, JSON answer, chunks the app asked for) of one request through the guard."""
    sent: list[dict[str, Any]] = []
    pulled = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled >= len(chunks):
            return {"type": "http.disconnect"}
        pulled += 1
        return {"type": "http.request", "body": chunks[pulled - 1],
                "more_body": pulled < len(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path,
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    asyncio.run(Guard(_inner, LIMIT)(scope, receive, send))
    status = sent[0]["status"]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert len(body) < 600, body[:200]
    return status, json.loads(body), pulled


JSON = {"Content-Type": "application/json"}
# (name, method, path, headers, body chunks, status, message regex)
HTTP_CASES = [
    ("no-content-type", "POST", "/invocations", {}, [b'{"ok": 1}'], 415,
     r"^Content-Type must be one of application/json, text/csv, "
     r"application/vnd.apache.parquet; none was given$"),
    ("image-content-type", "POST", "/invocations", {"Content-Type": "image/png"}, [b"\x89PNG"],
     415, r"; got 'image/png'$"),
    ("form-content-type", "POST", "/invocations",
     {"Content-Type": "multipart/form-data; boundary=x"}, [b"--x"], 415, r"got 'multipart"),
    ("huge-content-length", "POST", "/invocations", {**JSON, "Content-Length": "52428800"},
     [b"x" * 100] * 3, 413, r"^the body has 52,428,800 bytes; the limit is 1,000 "),
    ("chunked-over-limit", "POST", "/invocations", JSON, [b"x" * 400] * 10, 413,
     r"^the body passed the limit of 1,000 bytes"),
    ("bad-content-length", "POST", "/invocations", {**JSON, "Content-Length": "-5"}, [b"x"], 400,
     r"^Content-Length must be a whole number of bytes$"),
    ("echoing-error", "POST", "/invocations", JSON, [ECHO[:900].encode()], 400, r"^row 0: bad$"),
    ("binary-body", "POST", "/invocations", JSON, [bytes(range(256)) * 3], 400, r"^row 0: bad$"),
    ("unknown-path", "GET", "/etc/passwd", {}, [b""], 404, r"^not found: POST /invocations"),
]


@pytest.mark.parametrize("name, method, path, headers, chunks, status, message", HTTP_CASES,
                         ids=[c[0] for c in HTTP_CASES])
def test_hostile_request_gets_a_short_4xx(name: str, method: str, path: str,
                                          headers: dict[str, str], chunks: list[bytes],
                                          status: int, message: str) -> None:
    import re

    got, answer, _ = _call(method, path, headers, chunks)
    assert got == status
    assert set(answer) == {"error_code", "message"}
    assert "\n" not in answer["message"] and "SECRET" not in answer["message"]
    assert re.search(message, answer["message"]), answer


def test_a_declared_large_body_is_refused_before_it_is_read() -> None:
    _, _, pulled = _call("POST", "/invocations", {**JSON, "Content-Length": "52428800"},
                         [b"x"] * 50)
    assert pulled == 0
    _, _, pulled = _call("POST", "/invocations", JSON, [b"x" * 400] * 50)
    assert pulled == 3  # stopped at the chunk that passed the limit


def test_a_good_request_passes_through() -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b'{"ok": 1}', "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/invocations",
             "headers": [(b"content-type", b"application/json; charset=utf-8")]}
    asyncio.run(Guard(_inner, LIMIT)(scope, receive, send))
    assert sent[0]["status"] == 200 and sent[1]["body"] == b'{"predictions": []}'


# -- client paths ----------------------------------------------------------------------------
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()


def test_paths_are_refused_unless_allowed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"x")
    cells, errors = admitted([PNG, f"data:image/png;base64,{PNG}", str(secret), "/etc/passwd",
                              "", 7], None)
    assert cells == [base64.b64decode(PNG)] * 2
    paths_off = "neither base64-encoded image bytes nor a file path (paths are off: " \
                "tunetrack serve --allow-paths DIR)"
    assert errors == [f"row 2: {paths_off}", f"row 3: {paths_off}",
                      "row 4: expected base64 image bytes, got an empty string",
                      "row 5: expected base64 image bytes, got int"]


def test_allowed_paths_are_confined_to_the_folder(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "a.png").write_bytes(b"x")
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"x")
    (allowed / "link.png").symlink_to(outside)
    cells, errors = admitted(["a.png", str(allowed / "a.png"), "../outside.png", str(outside),
                              "link.png", "missing.png"], str(allowed))
    assert cells == [str(allowed / "a.png")] * 2
    # outside, through a link, or missing: the same words, so existence is not revealed
    assert [e.split(": ", 1)[1] for e in errors] == \
        [f"neither base64-encoded image bytes nor a file inside {allowed}"] * 4


# -- the real server -------------------------------------------------------------------------
STUB = """\
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class Stub(PythonModel):
    def predict(self, context, model_input, params=None):
        import pandas as pd

        return pd.DataFrame({"class": ["x"] * len(model_input),
                             "probability": [1.0] * len(model_input)})


set_model(Stub())
"""


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _declare_only(port: int, length: int) -> tuple[int, dict[str, Any]]:
    """POST headers that announce ``length`` bytes, send none of them, and read the answer:
    the server must refuse from the Content-Length alone, before reading a body. (Sending the
    body too races the server closing the connection after its 413: a broken pipe.)"""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest("POST", "/invocations")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.mark.slow
def test_serve_refuses_hostile_bodies_and_dies_with_its_group_on_sigterm(tmp_path: Path):
    import mlflow

    from .localhttp import free_port

    (tmp_path / "stub.py").write_text(STUB)
    mlflow.pyfunc.save_model(str(tmp_path / "model"), python_model=str(tmp_path / "stub.py"),
                             pip_requirements=["mlflow"])
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm' / 'mlflow.db'}"}
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tunetrack.cli", "serve", str(tmp_path / "model"), "--port",
         str(port), "--max-body-mb", "0.5"], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-2000:]
                time.sleep(0.5)
        good = json.dumps({"dataframe_split": {"columns": ["image"], "data": [[PNG]]}}).encode()
        assert _post(f"{base}/invocations", good, JSON)[0] == 200
        status, answer = _post(f"{base}/invocations", good, {})
        assert status == 415 and "got 'application/x-www-form-urlencoded'" in answer["message"]
        status, answer = _declare_only(port, 3 << 20)
        assert status == 413 and answer["message"].startswith("the body has 3,145,728 bytes")
        status, answer = _post(f"{base}/invocations", b"{" + ECHO.encode(), JSON)
        assert status == 400 and "SECRET" not in answer["message"], answer
        front = [int(p) for p in subprocess.run(["pgrep", "-f", f"_front .* --port {port}"],
                                                capture_output=True, text=True).stdout.split()]
        assert len(front) == 1
        pgid = os.getpgid(front[0])
        assert pgid != os.getpgid(process.pid)  # the server has a group of its own
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 15
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _group_alive(pgid), "the server's group outlived tunetrack serve"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
