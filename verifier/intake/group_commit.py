"""Group commit: the cleared orders of a process's request threads written in shared
transactions.

An order the sampler cleared needs three INSERTs (verifier.intake.orders.write_cleared); what
costs more than they do is everything around them, once per transaction: taking the write lock
(SQLite's is one per database, and a writer waiting for it retries), the commit (on PostgreSQL
a WAL flush) and the audit chain's head, which every new order's event advances. So the first
thread to arrive leads: it writes its own order and every order queued behind it meanwhile in
one transaction, and the next waiting thread then leads the next batch. Alone, a request writes
at once; under load a batch holds as many orders as arrived during the one before it. Each
request still answers only after the commit that holds its order, so nothing is acknowledged
before it is durable.

A failure belongs to the order that caused it: when a batch fails on something one order
could have caused (a constraint, a deadlock or serialisation failure), each order is written
again in a transaction of its own, and only the one at fault sees its error. A failure of the
database itself (down, locked for longer than the busy timeout) is every order's answer at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from verifier.intake.orders import ClearedWrite, write_cleared

# A batch is bounded so no request waits behind an unbounded queue; four workers of four
# threads never queue more than a few.
MAX_BATCH = 64
# PostgreSQL's deadlock and serialisation failures: one order's race, not the database's state.
RETRYABLE_ALONE = ("40P01", "40001")


@dataclass(eq=False)
class _Pending:
    write: ClearedWrite
    head: tuple[int, str]
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    finished: bool = False
    order_id: int | None = None
    error: BaseException | None = None


class GroupCommit:
    """One per app (process): `write()` from any request thread."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._leading = False
        # The newest chain position this process committed: a better hint than a request's
        # when this process wrote last.
        self._head: tuple[int, str] | None = None

    def queued(self) -> int | None:
        """How many orders wait behind the batch being written; None when none is."""
        with self._lock:
            return len(self._queue) if self._leading else None

    def write(self, write: ClearedWrite, head: tuple[int, str]) -> int | None:
        """Write one cleared order, committed before this returns; its id, or None when its
        external id was taken (nothing was written for it). `head` is the audit chain's head
        as the request read it: a hint, corrected when another transaction moved it."""
        item = _Pending(write, head)
        with self._lock:
            self._queue.append(item)
            item.lead = not self._leading
            self._leading = True
        while not item.finished:
            if not item.lead:
                item.done.wait()
                item.done.clear()
            if item.lead and not item.finished:
                self._lead()
        if item.error is not None:
            raise item.error
        return item.order_id

    def _lead(self) -> None:
        with self._lock:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        try:
            self._run(batch)
        finally:
            for item in batch:
                if not item.finished:  # an exception no order caught (the thread is stopping)
                    item.error = item.error or RuntimeError("the batch was abandoned")
                    item.finished = True
                if not item.lead:  # the leader's own is not waited for
                    item.done.set()
            with self._lock:
                if self._queue:
                    # Hand on: the longest waiting thread writes the next batch.
                    successor = self._queue[0]
                    successor.lead = True
                    successor.done.set()
                else:
                    self._leading = False

    def _run(self, batch: list[_Pending]) -> None:
        try:
            ids, head = self._transaction(batch)
        except (IntegrityError, DataError, OperationalError) as exc:
            if len(batch) > 1 and _one_orders_fault(exc):
                for item in batch:
                    self._run([item])
                return
            for item in batch:
                item.error, item.finished = exc, True
            return
        except Exception as exc:
            for item in batch:
                item.error, item.finished = exc, True
            return
        with self._lock:
            if self._head is None or head[0] > self._head[0]:
                self._head = head
        for item, order_id in zip(batch, ids, strict=True):
            item.order_id, item.finished = order_id, True

    def _transaction(self, batch: list[_Pending]) -> tuple[list[int | None], tuple[int, str]]:
        head = max((item.head for item in batch), key=lambda h: h[0])
        known = self._head
        if known is not None and known[0] > head[0]:
            head = known
        ids: list[int | None] = []
        with self._engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE (verifier.db)
            for item in batch:
                order_id, head = write_cleared(conn, item.write, head)
                ids.append(order_id)
        return ids, head


def _one_orders_fault(exc: BaseException) -> bool:
    if isinstance(exc, IntegrityError | DataError):
        return True
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return code in RETRYABLE_ALONE
