"""Upload benchmark: a 12-megapixel phone JPEG through the full HTTP upload path of a real
gunicorn server, against Pillow doing the same work on the same file, in the same run.

    python -m bench.upload [--rounds 8] [--kind photo_id|card_front|...] [--profile]

The floor does what the pipeline must do to that photo for that slot: decode at half scale
(libjpeg's draft mode, 4032 -> 2016 px, within the 2048 px target), fit to 2048 px, turn it
upright, cover card numbers (the same `cardmask.mask_page` OCR the decoder runs, for the same
slot), encode a JPEG at the pipeline's quality. The ratio is then the pipeline's own overhead
(sniffing, process pool, quality checks, encryption, the database, HTTP), not a difference in
work. Each round runs the floor and then the upload, and the ratio is the median of the
rounds' own ratios, so load from other work hits both alike. Goal <= 1.5x. `--profile`
profiles the upload in-process (cProfile of the web side; the decoder timed apart).
"""

from __future__ import annotations

import argparse
import http.cookiejar
import io
import json
import re
import secrets
import statistics
import time
import urllib.request
from dataclasses import replace
from typing import Any

from PIL import Image, ImageDraw, ImageFilter

from bench.common import (
    Result,
    app_environment,
    free_port,
    gunicorn,
    order_json,
    peak_memory,
    verifier_cli,
    workdir,
)
from verifier.models import DOCUMENT_KINDS
from verifier.portal import cardmask
from verifier.portal.decoding import DEFAULT_LIMITS

GOAL = 1.5
# A photo ID: the slot most uploads go to; --kind card_front measures a card slot.
DEFAULT_KIND = "photo_id"
CARD_KINDS = ("card_front", "card_back")


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


def same_work_in_pillow(data: bytes, kind: str) -> float:
    """Seconds for the pipeline's pixel work done bare, in this process: the same half-scale
    draft decode, fit to max_edge, upright, the same card-masking OCR for `kind`, and a JPEG
    at the same quality."""
    start = time.perf_counter()
    image = Image.open(io.BytesIO(data))
    edge = int(DEFAULT_LIMITS.max_edge * 0.9)
    image.draft("RGB", (edge, edge * image.height // image.width))
    image.load()
    if max(image.size) > DEFAULT_LIMITS.max_edge:
        image.thumbnail((DEFAULT_LIMITS.max_edge, DEFAULT_LIMITS.max_edge))
    upright = image.transpose(Image.Transpose.ROTATE_270)
    cardmask.mask_page(upright, kind)
    out = io.BytesIO()
    upright.save(out, "JPEG", quality=DEFAULT_LIMITS.jpeg_quality, optimize=True)
    return time.perf_counter() - start


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


def run(rounds: int, kind: str = DEFAULT_KIND) -> Result:
    with workdir() as work:
        port = free_port()
        env = app_environment(work, port, None)
        verifier_cli(env, "migrate")
        verifier_cli(env, "set-rate", "100", "--reason", "bench")
        key = verifier_cli(env, "create-api-key", "bench").strip().splitlines()[-1]
        base = f"http://127.0.0.1:{port}"
        photo = phone_photo()
        print(f"upload: 4032x3024 JPEG of {len(photo) / 1e6:.1f} MB to {kind}, {rounds} rounds",
              flush=True)  # fmt: skip
        http_times, floor_times, ratios = [], [], []
        with (
            gunicorn("wsgi:app", env, port, workers=2, threads=4) as server,
            peak_memory(server.pid) as peak,
        ):
            for i in range(rounds + 1):
                opener, csrf = _portal_session(base, key, f"BENCH-{i}")
                fields = {"csrf_token": csrf} | ({"cover": "pending"} if kind in CARD_KINDS else {})
                body, ctype = multipart(fields, photo)
                upload = urllib.request.Request(
                    base + f"/portal/documents/{kind}", data=body, method="POST",
                    headers={"Content-Type": ctype, "Accept": "application/json",
                             "Referer": base + "/portal/"},
                )  # fmt: skip
                # Floor and pipeline back to back in every round, so load hits both alike.
                floor = same_work_in_pillow(photo, kind)
                start = time.perf_counter()
                resp = opener.open(upload)
                elapsed = time.perf_counter() - start
                assert resp.status == 201, resp.status
                if i:  # the first round warms the worker up
                    http_times.append(elapsed)
                    floor_times.append(floor)
                    ratios.append(elapsed / floor)
            peak_mb = peak()
    http_ms = statistics.median(http_times) * 1000
    floor_ms = statistics.median(floor_times) * 1000
    ratio = statistics.median(ratios)
    return Result(f"upload 12 MP ({kind})", f"median {http_ms:.0f} ms (full HTTP path)",
                  f"median {floor_ms:.0f} ms (same work in Pillow)", ratio, f"<= {GOAL}x",
                  ratio <= GOAL, peak_mb, ratio_is_cost=True,
                  notes=["ratio: the median of the rounds' own ratios"])  # fmt: skip


def _portal_session(base: str, key: str, external_id: str) -> tuple[Any, str]:
    """A new order's upload link opened: the cookie-holding opener and its CSRF token."""
    req = urllib.request.Request(
        base + "/api/v1/orders", data=order_json(external_id), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )  # fmt: skip
    link = json.loads(urllib.request.urlopen(req).read())["case"]["upload_url"]
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(link).read().decode()
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None
    return opener, match.group(1)


def profile(rounds: int, kind: str = DEFAULT_KIND) -> None:
    """cProfile the web worker's side of `rounds` uploads, in-process (Flask's test client, the
    real decoder pool), and time the decoder's own share apart: where the overhead goes."""
    import cProfile
    import pstats

    from verifier.app import create_app
    from verifier.portal import decoding, documents

    photo = phone_photo()
    with workdir() as work:
        env = app_environment(work, free_port(), None)
        verifier_cli(env, "migrate")
        verifier_cli(env, "set-rate", "100", "--reason", "bench")
        key = verifier_cli(env, "create-api-key", "bench").strip().splitlines()[-1]
        app = create_app({"ENVIRON": env})
        client = app.test_client()
        limits = replace(DEFAULT_LIMITS, document_kind=kind)
        pool = documents.get_default_pool()
        pool.warm()

        def one(i: int) -> float:
            resp = client.post("/api/v1/orders", data=order_json(f"PROF-{i}"),
                               headers={"Authorization": f"Bearer {key}",
                                        "Content-Type": "application/json"})  # fmt: skip
            link = resp.get_json()["case"]["upload_url"]
            page = client.get(link[link.index("/u/") :], follow_redirects=True).text
            match = re.search(r'name="csrf_token" value="([^"]+)"', page)
            assert match is not None
            fields = {"csrf_token": match.group(1)}
            fields |= {"cover": "pending"} if kind in CARD_KINDS else {}
            body, ctype = multipart(fields, photo)
            start = time.perf_counter()
            resp = client.post(f"/portal/documents/{kind}", data=body, content_type=ctype,
                               headers={"Accept": "application/json",
                                        "Referer": "http://127.0.0.1/portal/"})  # fmt: skip
            assert resp.status_code == 201, resp.status_code
            return time.perf_counter() - start

        one(0)
        profiler = cProfile.Profile()
        profiler.enable()
        total = statistics.median(one(i) for i in range(1, rounds + 1))
        profiler.disable()
        in_pool = statistics.median(_timed(pool.process, photo, limits) for _ in range(rounds))
        bare = statistics.median(
            _timed(decoding.decode_upload, photo, limits) for _ in range(rounds)
        )  # fmt: skip
        floor = statistics.median(same_work_in_pillow(photo, kind) for _ in range(rounds))
        documents.shutdown()
    print(f"median ms: request {total * 1e3:.0f}, pool.process {in_pool * 1e3:.0f}, "
          f"decode_upload in-process {bare * 1e3:.0f}, floor {floor * 1e3:.0f}")  # fmt: skip
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)


def _timed(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--kind", choices=DOCUMENT_KINDS, default=DEFAULT_KIND)
    parser.add_argument("--profile", action="store_true",
                        help="profile the upload in-process instead of measuring it")  # fmt: skip
    args = parser.parse_args()
    if args.profile:
        profile(args.rounds, args.kind)
        return 0
    result = run(args.rounds, args.kind)
    result.report()
    return 0 if result.met else 1


if __name__ == "__main__":
    raise SystemExit(main())
