"""Database engine and one session per request or command; `verifier migrate` applies Alembic."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
BUSY_TIMEOUT_S = 30  # how long a SQLite writer waits for the write lock
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# An execution option: this connection's transactions only read (SQLite begins them deferred).
READS_ONLY = "verifier_reads_only"


def make_engine(url: str, *, immediate: bool = True, **engine_options) -> Engine:
    """Create an engine: SQLite gets foreign keys, WAL, a busy timeout and BEGIN IMMEDIATE.

    `immediate=False` keeps SQLite's deferred transactions, for read-mostly observers (tests).
    """
    if url.startswith("sqlite"):
        # Pooled like any database: opening and closing a connection (and its WAL state) on
        # every request cost more than the request's own queries. A pooled connection is used
        # by one thread at a time, so sharing it between the pool's threads is safe.
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=8,
            max_overflow=16,
            **engine_options,
        )
        _configure_sqlite(engine, "BEGIN IMMEDIATE" if immediate else "BEGIN")
        return engine
    return create_engine(url, pool_pre_ping=True, **engine_options)


def _configure_sqlite(engine: Engine, begin: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see "begin" below).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # A deferred transaction that reads and then writes can fail at once with "database
        # is locked" when another writer got there first; taking the write lock up front makes
        # concurrent writers queue for it instead. A reader's transaction (READS_ONLY) takes
        # no lock: in WAL mode it reads a snapshot while a writer writes.
        if begin == "BEGIN" or conn.get_execution_options().get(READS_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.info["lock_waited"] = _begin_immediate(conn.connection.dbapi_connection)


def _begin_immediate(dbapi_conn: Any) -> bool:
    """BEGIN IMMEDIATE, waiting for the write lock in short steps; True if it had to wait.

    SQLite's own busy handler sleeps 1, 2, 5, 10 … 100 ms between tries, so under steady
    contention a writer often sleeps long after the lock came free (a p99 near a second at
    16 clients). Trying again after 50 µs, doubling to 2 ms, hands the lock on at once.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    pause = 0.00005
    dbapi_conn.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                dbapi_conn.execute("BEGIN IMMEDIATE")
                return pause > 0.00005
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.002)
    finally:
        dbapi_conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")


def init_app(app: Flask) -> None:
    """Attach the engine and session factory to the app and close the session on teardown."""
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["verifier.engine"] = engine
    app.extensions["verifier.sessionmaker"] = sessionmaker(engine, expire_on_commit=False)
    # SQLite: the same pool and events, its transactions taking no write lock. PostgreSQL
    # takes no lock to read, so there the request's one session serves (get_read_session).
    if engine.dialect.name == "sqlite":
        readers = engine.execution_options(**{READS_ONLY: True})
        app.extensions["verifier.read_sessionmaker"] = sessionmaker(readers, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def get_engine(app: Flask | None = None) -> Engine:
    return (app or current_app).extensions["verifier.engine"]


def new_session(app: Flask | None = None) -> Session:
    """A fresh session the caller owns (workers, threads, CLI loops)."""
    return (app or current_app).extensions["verifier.sessionmaker"]()


def get_session() -> Session:
    """The session of the current request or command, created on first use."""
    if "db_session" not in g:
        g.db_session = new_session()
    return g.db_session


def get_read_session() -> Session:
    """The current request's session for reads that must not wait for (or hold) SQLite's write
    lock, created on first use; it must not write. End its transaction (commit) once read.
    On PostgreSQL it is the request's session (`get_session`)."""
    if "verifier.read_sessionmaker" not in current_app.extensions:
        return get_session()
    if "db_read_session" not in g:
        g.db_read_session = current_app.extensions["verifier.read_sessionmaker"]()
    return g.db_read_session


def _close_session(exc: BaseException | None) -> None:
    for name in ("db_session", "db_read_session"):
        _close(g.pop(name, None))


def _close(session: Session | None) -> None:
    if session is not None:
        # Whatever the view did not commit is rolled back: one transaction per request.
        try:
            session.rollback()
        except SQLAlchemyError:
            # The connection died with the database; the pool replaces it on next use.
            log.warning("rollback failed at the end of a request; connection discarded")
        session.close()


def alembic_config(database_url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def migrate(database_url: str, revision: str = "head") -> None:
    """Apply Alembic migrations up to `revision`, creating the SQLite folder if needed."""
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)
