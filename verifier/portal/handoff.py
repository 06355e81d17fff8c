"""Upload bytes handed to a decoder process once, in memory: no pickled copies through a pipe.

The web worker writes the upload to a memfd (anonymous memory: never a file on any disk,
gone when its last descriptor closes), seals it against change, and sends its descriptor
over a Unix socket (SCM_RIGHTS) to the one decoder process of a lane, tagged with a random
ticket that travels with the job. The decoder takes the descriptor whose tag matches its
job, reads the bytes and closes it; a descriptor left over from a job that never ran (its
process died first) is discarded unread, so no job can ever read another job's file. Where
Linux's memfd or fd passing is missing, the pool pickles the bytes as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

_SEALS = (
    getattr(fcntl, "F_SEAL_SEAL", 0)
    | getattr(fcntl, "F_SEAL_SHRINK", 0)
    | getattr(fcntl, "F_SEAL_GROW", 0)
    | getattr(fcntl, "F_SEAL_WRITE", 0)
)
_TOKEN_BYTES = 16
# The decoder waits at most this long for its job's descriptor (sent before the job itself).
RECEIVE_TIMEOUT_S = 5.0

# The decoder's end of its lane's socket, set once by `install` in the decoder process.
_channel: socket.socket | None = None


def available() -> bool:
    """Whether this system can hand bytes over as a memfd (Linux); else they are pickled."""
    return (
        hasattr(os, "memfd_create")
        and hasattr(socket, "send_fds")
        and hasattr(socket, "AF_UNIX")
        and hasattr(fcntl, "F_ADD_SEALS")
    )


@dataclass(frozen=True)
class Ticket:
    """What travels with the job: the tag of its descriptor and the size to expect."""

    token: bytes
    size: int


class Payload:
    """One upload in a sealed memfd; close it once its job has finished (or failed)."""

    def __init__(self, data: bytes) -> None:
        self.ticket = Ticket(secrets.token_bytes(_TOKEN_BYTES), len(data))
        self.fd = os.memfd_create("upload", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]
            fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, _SEALS)
        except BaseException:
            os.close(self.fd)
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Channel:
    """A lane's Unix socket pair: the web worker keeps `ours`, the decoder gets `theirs`."""

    def __init__(self) -> None:
        # SEQPACKET keeps each descriptor with its own tag, in the order sent.
        self.ours, self.theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.ours.settimeout(RECEIVE_TIMEOUT_S)

    def send(self, payload: Payload) -> None:
        """Pass the payload's descriptor (the kernel holds a reference while it is in flight)."""
        socket.send_fds(self.ours, [payload.ticket.token], [payload.fd])

    def close(self) -> None:
        # Descriptors still in flight are released by the kernel with the socket.
        self.ours.close()
        self.theirs.close()


def install(channel: socket.socket | None) -> None:
    """In the decoder process: the socket its lane's descriptors come in on."""
    global _channel
    _channel = channel


def receive(ticket: Ticket) -> bytes:
    """In the decoder process: the bytes of the job's descriptor; stale descriptors discarded."""
    if _channel is None:
        raise RuntimeError("no hand-off channel in this process")
    _channel.settimeout(RECEIVE_TIMEOUT_S)
    while True:
        try:
            message, fds, flags, _ = socket.recv_fds(_channel, _TOKEN_BYTES, 1)
        except TimeoutError:
            # Not the pool's decode timeout: this job's upload never arrived.
            raise RuntimeError("the handed-over upload did not arrive") from None
        try:
            if not message and not fds:
                raise RuntimeError("the hand-off channel closed")
            if message == ticket.token and len(fds) == 1 and not flags & socket.MSG_CTRUNC:
                return _read_all(fds[0], ticket.size)
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _read_all(fd: int, size: int) -> bytes:
    if os.fstat(fd).st_size != size:
        raise RuntimeError("the handed-over upload has the wrong size")
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            raise RuntimeError("the handed-over upload ended early")
        chunks.append(chunk)
        offset += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def run(fn: Callable[..., T], ticket: Ticket, *args: Any) -> T:
    """Decoder entry point: `fn(data, *args)` on the bytes handed over for `ticket`."""
    return fn(receive(ticket), *args)


def digest_for_test(data: bytes) -> tuple[int, str]:
    """Test hook: what the decoder received (its length and SHA-256)."""
    import hashlib

    return len(data), hashlib.sha256(data).hexdigest()
