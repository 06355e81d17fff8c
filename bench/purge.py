"""Purge benchmark: 100,000 due documents destroyed by `purge_due_documents`, against a bare
loop doing the same destruction (unlink the files, one fsync per directory per batch, one
UPDATE per batch), on the same data in the same run, on SQLite and PostgreSQL.

    python -m bench.purge [--documents 100000] [--database-url postgresql+psycopg://…]

Goal: the purge at 50 % of the bare loop's rate or better.
"""

from __future__ import annotations

import argparse
import os
import secrets
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session, sessionmaker

from bench.common import Result, databases, workdir
from bench.seed import NOW, seed
from verifier.core.settings import Settings
from verifier.db import make_engine
from verifier.retention.purge import purge_due_documents

GOAL = 0.5
BATCH = 500
DOCS_PER_CASE = 4
KINDS = ("card_front", "card_back", "photo_id", "proof_of_address")


def add_documents(engine, uploads: Path, documents: int) -> int:
    """Give ended cases DOCS_PER_CASE stored documents each, files included; returns count."""
    cases = documents // DOCS_PER_CASE
    with Session(engine) as session:
        ids = session.scalars(
            text(
                "SELECT id FROM verification_cases WHERE status IN ('approved', 'rejected')"
                " AND decided_at < :due ORDER BY id LIMIT :n"
            ),
            {"due": NOW - timedelta(days=60), "n": cases},
        ).all()
        rows = []
        for case_id in ids:
            for page, kind in enumerate(KINDS, start=1):
                rows.append({
                    "id": secrets.token_hex(16), "case_id": case_id, "kind": kind,
                    "upload_id": secrets.token_hex(16), "page": page, "status": "active",
                    "blob_name": secrets.token_hex(16), "wrapped_key": secrets.token_bytes(61),
                    "key_id": "bench", "content_type": "image/jpeg", "source_type": "image/jpeg",
                    "width": 2048, "height": 1536, "byte_size": 64, "quality_warnings": "[]",
                    "created_at": NOW - timedelta(days=90),
                })  # fmt: skip
        session.execute(
            text(
                "INSERT INTO documents (id, case_id, kind, upload_id, page, status, blob_name,"
                " wrapped_key, key_id, content_type, source_type, width, height, byte_size,"
                " quality_warnings, created_at) VALUES (:id, :case_id, :kind, :upload_id,"
                " :page, :status, :blob_name, :wrapped_key, :key_id, :content_type,"
                " :source_type, :width, :height, :byte_size, :quality_warnings, :created_at)"
            ),
            rows,
        )
        session.commit()
    write_blobs(uploads, [row["blob_name"] for row in rows])
    return len(rows)


def write_blobs(uploads: Path, names: list[str]) -> None:
    for name in names:
        folder = uploads / name[:2]
        folder.mkdir(exist_ok=True)
        (folder / name).write_bytes(b"\0" * 64)


def bare_loop(engine, uploads: Path) -> tuple[int, float]:
    """The floor: the same rows and files destroyed with nothing but the destruction."""
    began = time.perf_counter()
    done = 0
    with Session(engine) as session:
        while True:
            rows = session.execute(
                text(
                    "SELECT id, blob_name FROM documents WHERE status = 'active'"
                    " ORDER BY id LIMIT :n"
                ),
                {"n": BATCH},
            ).all()
            if not rows:
                break
            folders = set()
            for row in rows:
                path = uploads / row.blob_name[:2] / row.blob_name
                path.unlink()
                folders.add(path.parent)
            for folder in folders:
                fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
                os.fsync(fd)
                os.close(fd)
            session.execute(
                text(
                    "UPDATE documents SET status = 'purged', wrapped_key = NULL,"
                    " blob_name = NULL, purged_at = :now WHERE id IN :ids"
                ).bindparams(bindparam("ids", expanding=True)),
                {"now": NOW, "ids": [row.id for row in rows]},
            )
            session.commit()
            done += len(rows)
    return done, time.perf_counter() - began


def restore(engine, uploads: Path) -> None:
    """Put the purged documents back (new names, new keys, new files) for the floor."""
    with Session(engine) as session:
        ids = session.scalars(text("SELECT id FROM documents ORDER BY id")).all()
        names = {doc_id: secrets.token_hex(16) for doc_id in ids}
        session.execute(
            text(
                "UPDATE documents SET status = 'active', blob_name = :name, wrapped_key = :key,"
                " purged_at = NULL, purge_run_id = NULL WHERE id = :id"
            ),
            [{"id": i, "name": n, "key": secrets.token_bytes(61)} for i, n in names.items()],
        )
        session.execute(text("UPDATE verification_cases SET documents_purged_at = NULL"))
        session.commit()
    write_blobs(uploads, list(names.values()))


def measure(database: str, url: str, work: Path, documents: int) -> Result:
    uploads = work / "uploads"
    uploads.mkdir(exist_ok=True)
    # A tenth of orders flagged, 45 % of cases approved or rejected, 84 % of those long enough
    # ago to be due: 28 orders give a little more than one due case.
    seed(url, documents // DOCS_PER_CASE * 28 + 1000)
    engine = make_engine(url)
    count = add_documents(engine, uploads, documents)
    factory = sessionmaker(engine, expire_on_commit=False)
    began = time.perf_counter()
    report = purge_due_documents(factory, uploads, NOW, Settings(), batch=BATCH, actor="bench")
    seconds = time.perf_counter() - began
    assert report.documents_purged == count, (report.documents_purged, count)
    assert not any(uploads.glob("*/*")), "files left after the purge"
    restore(engine, uploads)
    floor_done, floor_seconds = bare_loop(engine, uploads)
    assert floor_done == count
    engine.dispose()
    rate, floor_rate = count / seconds, floor_done / floor_seconds
    ratio = rate / floor_rate
    figure = f"{rate:,.0f} documents/s ({count:,} in {seconds:.1f} s)"
    floor = f"{floor_rate:,.0f} documents/s (bare loop)"
    return Result(f"purge on {database}", figure, floor, ratio, f">= {GOAL:.0%} of the floor",
                  ratio >= GOAL)  # fmt: skip


def run(documents: int, postgres_url: str | None) -> list[Result]:
    results = []
    for database, url in databases(postgres_url):
        print(f"purge on {database}: {documents:,} due documents", flush=True)
        with workdir() as work:
            if url is None:
                result = measure(database, f"sqlite:///{work / 'bench.db'}", work, documents)
            else:
                result = measure(database, url, work, documents)
        result.report()
        results.append(result)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--database-url", default=os.environ.get("VERIFIER_BENCH_DATABASE_URL"))
    args = parser.parse_args()
    results = run(args.documents, args.database_url)
    return 0 if all(r.met for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
