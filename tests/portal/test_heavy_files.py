"""Heavy files cannot starve the decoders: over real HTTP to a real gunicorn, an ordinary photo
is accepted within 5 s while four heavy files (PDFs of stroked paths well under the inflation
budget, 7,000 x 7,000 PNGs that pass the sparseness check) are in flight, and each heavy file
is answered, accepted or refused in plain words, within 10 s."""

from __future__ import annotations

import http.cookiejar
import io
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import pytest
from PIL import Image

from tests.portal_helpers import jpeg_bytes
from tests.server_helpers import BIN, free_port, run_cli, server_env
from verifier.portal import admission

ROOT = Path(__file__).resolve().parents[2]
BENIGN_S = 5.0
HEAVY_S = 10.0


def stroked_pdf(strokes: int) -> bytes:
    """A one-page PDF of `strokes` diagonal lines: a few KB that PDFium takes seconds to draw."""
    stream = zlib.compress(b"0 0 m 600 800 l S\n" * strokes, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 5\n0000000000 65535 f \n")
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    out.write(b"trailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def large_png(edge: int) -> bytes:
    """An `edge` x `edge` greyscale PNG with bands of noise: enough bytes per megapixel to pass
    admission, 49 MP to inflate and scale."""
    image = Image.new("L", (edge, edge), 255)
    noise = Image.effect_noise((edge, 60), 80)
    for y in range(0, edge, 600):
        image.paste(noise, (0, y))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


@pytest.fixture
def server(tmp_path):
    """One gunicorn worker (8 threads) with two host decode slots, as a 2-core host has."""
    port = free_port()
    # Each customer comes from an address of their own (X-Forwarded-For, one proxy).
    env = server_env(tmp_path, port, VERIFIER_DECODERS="2", VERIFIER_TRUSTED_PROXIES="1")
    run_cli(env, "migrate")
    run_cli(env, "set-rate", "100", "--reason", "heavy files test")
    key = run_cli(env, "create-api-key", "heavy").strip().splitlines()[-1]
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "--config", str(ROOT / "gunicorn.conf.py"), "--workers", "1",
         "--threads", "8", "--bind", f"127.0.0.1:{port}", "--access-logfile", "/dev/null",
         "wsgi:app"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/readyz", timeout=2).read()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "no gunicorn"
                time.sleep(0.2)
        yield base, key
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


class Customer:
    """One customer's portal session (link opened, CSRF token read), from its own address."""

    def __init__(self, base: str, key: str, number: int) -> None:
        self.base, self.address = base, f"198.51.100.{number}"
        fields = json.loads((ROOT / "bench" / "order.json").read_text())
        fields["external_id"] = f"HEAVY-{number}"
        request = urllib.request.Request(
            base + "/api/v1/orders", data=json.dumps(fields).encode(), method="POST",
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )  # fmt: skip
        link = json.loads(urllib.request.urlopen(request, timeout=30).read())["case"]["upload_url"]
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        opened = urllib.request.Request(link, headers={"X-Forwarded-For": self.address})
        page = self.opener.open(opened, timeout=30).read().decode()
        self.csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    def upload(self, data: bytes, filename: str) -> tuple[int, dict, float]:
        boundary = "heavy-files-boundary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
                f'{self.csrf}\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        request = urllib.request.Request(
            self.base + "/portal/documents/proof_of_address", data=body, method="POST",
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                     "Accept": "application/json", "X-Forwarded-For": self.address},
        )  # fmt: skip
        began = time.monotonic()
        try:
            response = self.opener.open(request, timeout=60)
            status, answer = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, answer = error.code, error.read()
        return status, json.loads(answer or b"{}"), time.monotonic() - began


def test_the_heavy_files_are_heavy_and_ordinary_photos_are_not():
    assert admission.is_heavy(stroked_pdf(10))
    assert admission.is_heavy(large_png(7000))
    assert not admission.is_heavy(large_png(1000))
    assert not admission.is_heavy(jpeg_bytes((4032, 3024)))


@pytest.mark.slow
def test_an_ordinary_photo_gets_through_while_four_heavy_files_are_in_flight(server):
    base, key = server
    heavy = [
        ("strokes-1.pdf", stroked_pdf(30_000)),  # ~15 s of drawing: cut off by the budget
        ("strokes-2.pdf", stroked_pdf(120_000)),
        ("large-1.png", large_png(7000)),
        ("large-2.png", large_png(6900)),
    ]
    customers = [Customer(base, key, number) for number in range(1, 7)]
    benign = jpeg_bytes((1600, 1000))
    # A server in service: its decoders have started (gunicorn.conf.py warms them).
    assert customers[5].upload(benign, "first.jpg")[0] == 201
    answers: dict[str, tuple[int, dict, float]] = {}

    def send(customer: Customer, name: str, data: bytes) -> None:
        answers[name] = customer.upload(data, name)

    threads = [
        threading.Thread(target=send, args=(customer, name, data))
        for customer, (name, data) in zip(customers, heavy, strict=False)
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # the heavy files are being decoded or are waiting for a decoder
    status, answer, seconds = customers[4].upload(benign, "photo.jpg")
    for thread in threads:
        thread.join(timeout=60)

    assert status == 201, answer
    assert seconds < BENIGN_S, f"an ordinary photo took {seconds:.1f} s"
    assert set(answers) == {name for name, _ in heavy}
    codes = [answer.get("error", {}).get("code") for _, answer, _ in answers.values()]
    assert any(code != "decoder_busy" for code in codes), "no heavy file held a decoder"
    for name, (status, answer, seconds) in answers.items():
        assert seconds < HEAVY_S, f"{name} was answered after {seconds:.1f} s"
        if status != 201:
            # Refused, clearly: a calm sentence and a code, never a 500 page.
            assert status in (422, 429, 503), (name, status, answer)
            assert answer["error"]["message"].endswith("."), answer
