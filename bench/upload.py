"""Upload benchmark: a 12-megapixel phone JPEG through the full HTTP upload path of a real
gunicorn server, against bare Pillow decode + re-encode of the same file, in the same run.

Run: `python -m bench.upload` (or `make bench`). Goal: ratio at most 1.5x.
"""

from __future__ import annotations

import base64
import http.cookiejar
import io
import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageOps

ROUNDS = 8
GOAL = 1.5


def phone_photo() -> bytes:
    """A 4032x3024 (12.2 MP) JPEG with photo-like texture, as a phone camera writes it."""
    base = Image.effect_noise((1008, 756), 60).convert("RGB").resize((4032, 3024))
    draw = ImageDraw.Draw(base)
    for i in range(0, 3024, 60):
        draw.text((40, i), "4242  CARDHOLDER NAME  VALID 12/29  " * 6, fill=(20, 20, 60))
    base = base.filter(ImageFilter.SMOOTH)
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the phone was held upright
    base.save(buf, "JPEG", quality=92, exif=exif)
    return buf.getvalue()


def bare_pillow(data: bytes) -> float:
    start = time.perf_counter()
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    out = io.BytesIO()
    img.convert("RGB").save(out, "JPEG", quality=88)
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multipart(fields: dict[str, str], file_bytes: bytes) -> tuple[bytes, str]:
    boundary = secrets.token_hex(16)
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n".encode()
        + file_bytes
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    bin_dir = Path(sys.executable).parent
    work = Path(tempfile.mkdtemp(prefix="verifier-bench-"))
    (work / "uploads").mkdir()
    port = free_port()
    env = os.environ | {
        "VERIFIER_INSTANCE_DIR": str(work / "instance"),
        "VERIFIER_UPLOADS_DIR": str(work / "uploads"),
        "VERIFIER_BASE_URL": f"http://127.0.0.1:{port}",
        "VERIFIER_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "VERIFIER_SECRET_KEY": secrets.token_urlsafe(48),
        "VERIFIER_LOG_LEVEL": "WARNING",
    }
    env.pop("VERIFIER_DATABASE_URL", None)
    verifier = [str(bin_dir / "verifier")]
    subprocess.run([*verifier, "migrate"], env=env, check=True, capture_output=True)
    subprocess.run([*verifier, "set-rate", "100", "--reason", "bench"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    created = subprocess.run(
        [*verifier, "create-api-key", "bench"], env=env, check=True, capture_output=True, text=True
    )
    key = created.stdout.strip().splitlines()[-1]
    server = subprocess.Popen(
        [str(bin_dir / "gunicorn"), "--workers", "2", "--threads", "4", "--bind",
         f"127.0.0.1:{port}", "--config", str(root / "gunicorn.conf.py"), "wsgi:app"],
        env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        photo = phone_photo()
        print(f"photo: 4032x3024 JPEG, {len(photo) / 1e6:.1f} MB")
        http_times, pillow_times = [], []
        for i in range(ROUNDS + 1):
            order = json.loads((root / "bench" / "order.json").read_text())
            order["external_id"] = f"BENCH-{i}"
            order["placed_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            req = urllib.request.Request(
                base + "/api/v1/orders", data=json.dumps(order).encode(), method="POST",
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )  # fmt: skip
            link = json.loads(urllib.request.urlopen(req).read())["case"]["upload_url"]
            jar = http.cookiejar.CookieJar()
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
            page = opener.open(link).read().decode()
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            body, ctype = multipart({"csrf_token": csrf}, photo)
            upload = urllib.request.Request(
                base + "/portal/documents/card_front", data=body, method="POST",
                headers={"Content-Type": ctype, "Accept": "application/json",
                         "Referer": base + "/portal/"},
            )  # fmt: skip
            start = time.perf_counter()
            resp = opener.open(upload)
            elapsed = time.perf_counter() - start
            assert resp.status == 201, resp.status
            pillow = bare_pillow(photo)
            if i:  # the first round warms the decoder pool up
                http_times.append(elapsed)
                pillow_times.append(pillow)
        http_median = statistics.median(http_times)
        pillow_median = statistics.median(pillow_times)
        ratio = http_median / pillow_median
        print(f"full HTTP upload path (gunicorn): median {http_median * 1000:.0f} ms")
        print(f"bare Pillow decode + re-encode:   median {pillow_median * 1000:.0f} ms")
        print(f"ratio: {ratio:.2f}x (goal <= {GOAL}x) -> {'met' if ratio <= GOAL else 'NOT met'}")
        return 0
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    raise SystemExit(main())
