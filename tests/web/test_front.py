"""The layout `make serve` runs (nginx in front of gunicorn, scripts/serve.sh) keeps answering
while 40 clients send upload bodies at one byte a second, and closes every one of them within
its total connection deadline although they never stop sending."""

from __future__ import annotations

import contextlib
import http.client
import http.cookiejar
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from tests.server_helpers import BIN, free_port, run_cli

ROOT = Path(__file__).resolve().parents[2]
SLOW = 40
DRIP_SECONDS = 10
# serve.sh reloads nginx every RECYCLE s; a reload's old worker closes what is still open GRACE
# s later (worker_shutdown_timeout), so no connection lives past RECYCLE + GRACE. Production
# uses 60 + 120; shorter here so the test is quick, GRACE still longer than the drip phase.
RECYCLE = 6
GRACE = 12


def _nginx() -> str:
    """nginx, installed through scripts/system-deps.sh when missing: this test never skips."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not found:
        subprocess.run([str(ROOT / "scripts" / "system-deps.sh"), "run"], check=True)
        found = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(found).exists(), "nginx could not be installed"
    return found


@pytest.fixture
def served(tmp_path):
    _nginx()
    port = free_port()
    (tmp_path / "uploads").mkdir()
    env = os.environ | {
        "VERIFIER_INSTANCE_DIR": str(tmp_path / "instance"),
        "VERIFIER_UPLOADS_DIR": str(tmp_path / "uploads"),
        "VERIFIER_LOG_LEVEL": "WARNING",
        "BIN": str(BIN),
        "PORT": str(port),
        "WORKERS": "1",
        "THREADS": "4",
        "GUNICORN_ARGS": "--access-logfile /dev/null",
        "VERIFIER_FRONT_RECYCLE_SECONDS": str(RECYCLE),
        "VERIFIER_FRONT_GRACE_SECONDS": str(GRACE),
    }
    env.pop("VERIFIER_DATABASE_URL", None)
    run_cli(env, "migrate")
    run_cli(env, "set-rate", "100", "--reason", "front test")
    key = run_cli(env, "create-api-key", "front").strip().splitlines()[-1]
    server = subprocess.Popen(
        [str(ROOT / "scripts" / "serve.sh")], env=env, cwd=ROOT, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while _get(port, "/healthz")[0] != 200:
            assert server.poll() is None and time.monotonic() < deadline, "serve.sh did not start"
            time.sleep(0.2)
        yield port, key
    finally:
        os.killpg(server.pid, signal.SIGINT)  # as Ctrl+C does
        server.wait(timeout=40)
        assert not list((tmp_path / "instance" / "front" / "client_body").iterdir())


def _get(port: int, path: str, timeout: float = 2.0) -> tuple[int, float]:
    began = time.monotonic()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
    except OSError:
        status = 0
    return status, time.monotonic() - began


def _slow_socket(port: int) -> socket.socket:
    """An upload whose headers promise a 1 MB body that will come one byte at a time."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        b"POST /portal/documents/card_front HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 1000000\r\n\r\n"
    )
    return sock


def _upload_through_portal(port: int, key: str) -> int:
    base = f"http://127.0.0.1:{port}"
    fields = json.loads((ROOT / "bench" / "order.json").read_text())
    fields["external_id"] = "FRONT-1"
    order = json.dumps(fields).encode()
    request = urllib.request.Request(
        base + "/api/v1/orders", data=order, method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )  # fmt: skip
    link = json.loads(urllib.request.urlopen(request, timeout=30).read())["case"]["upload_url"]
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    page = opener.open(link, timeout=30).read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    image = io.BytesIO()
    Image.effect_noise((800, 500), 60).convert("RGB").save(image, "JPEG")
    boundary = "front-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{csrf}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="card.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + image.getvalue()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    upload = urllib.request.Request(
        base + "/portal/documents/photo_id", data=body, method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                 "Accept": "application/json"},
    )  # fmt: skip
    return opener.open(upload, timeout=30).status


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096, socket.MSG_DONTWAIT) == b"" or True
    except BlockingIOError:
        return False
    except OSError:
        return True


@pytest.mark.slow
def test_slow_bodies_neither_starve_the_server_nor_stay_open(served):
    port, key = served
    slow = [_slow_socket(port) for _ in range(SLOW)]
    opened_at = time.monotonic()
    stop = threading.Event()

    def drip() -> None:  # steadily, a byte a second, until the test ends: never a stall
        while not stop.wait(1.0):
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.send(b"x")

    dripping = threading.Thread(target=drip, daemon=True)
    dripping.start()
    probes: list[tuple[str, int, float]] = []
    upload_status: list[object] = []

    def upload() -> None:
        try:
            upload_status.append(_upload_through_portal(port, key))
        except Exception as error:
            upload_status.append(repr(error))

    try:
        uploader = threading.Thread(target=upload)
        uploader.start()
        # The front reloads (RECYCLE) during this phase: probes and the upload span it.
        ends = opened_at + DRIP_SECONDS
        while time.monotonic() < ends:
            for path in ("/healthz", "/readyz"):
                probes.append((path, *_get(port, path)))
            time.sleep(0.25)
        uploader.join(timeout=30)

        slow_probes = [p for p in probes if p[1] != 200 or p[2] >= 2.0]
        assert len(probes) >= 20 and not slow_probes, slow_probes
        assert upload_status == [201]
        # Every request has at least GRACE s: nobody sending was cut off before that.
        assert not any(_closed(s) for s in slow), "a dripping client was cut off early"

        # Still dripping, never stalled: each is closed by its total deadline all the same.
        while not all(_closed(s) for s in slow):
            waited = time.monotonic() - opened_at
            assert waited < RECYCLE + GRACE + 5, "a client dripping a body was kept open"
            time.sleep(0.5)
        assert _get(port, "/healthz")[0] == 200
    finally:
        stop.set()
        dripping.join()
        for sock in slow:
            sock.close()
