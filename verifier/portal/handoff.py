"""Jobs handed to a host decoder over a Unix socket; the upload itself once, in memory.

The web worker writes the upload to a memfd (anonymous memory: never a file on any disk,
gone when its last descriptor closes), seals it against change, and passes its descriptor
(SCM_RIGHTS) with the job on a connection of its own to the decoder it holds the slot of
(verifier.portal.supervisor). The decoder reads the bytes, closes the descriptor and sends
the result back on the same connection. One connection carries one job, so a descriptor can
only ever be read by the job it came with: a job that never ran (its decoder died first)
takes its descriptor with it when the connection closes. Messages are pickles framed by
their length.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import pickle
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

_SEALS = (
    getattr(fcntl, "F_SEAL_SEAL", 0)
    | getattr(fcntl, "F_SEAL_SHRINK", 0)
    | getattr(fcntl, "F_SEAL_GROW", 0)
    | getattr(fcntl, "F_SEAL_WRITE", 0)
)
_HEADER = struct.Struct("!Q")
# The decoder waits at most this long for a job once a client has connected.
RECEIVE_TIMEOUT_S = 5.0
# A message larger than this is refused unread (results are a few clean JPEG pages).
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


def available() -> bool:
    """Whether this system can hand bytes over as a memfd (Linux); else they travel inline."""
    return (
        hasattr(os, "memfd_create")
        and hasattr(socket, "send_fds")
        and hasattr(socket, "AF_UNIX")
        and hasattr(fcntl, "F_ADD_SEALS")
    )


class Payload:
    """One upload in a sealed memfd; close it once its job has finished (or failed)."""

    def __init__(self, data: bytes) -> None:
        self.size = len(data)
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


@dataclass(frozen=True)
class Job:
    """`fn(data, *args)` (or `fn(*args)` without an upload) within `timeout` seconds of wall
    clock; `size` is the handed-over upload's, `data` the upload itself where no memfd."""

    fn: Any
    args: tuple[Any, ...]
    timeout: float
    size: int | None = None
    data: bytes | None = None


def send_message(sock: socket.socket, message: object, fd: int | None = None) -> None:
    """Send one framed pickle, with `fd` passed alongside its first byte."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    frame = memoryview(_HEADER.pack(len(body)) + body)
    sent = socket.send_fds(sock, [frame], [fd]) if fd is not None else sock.send(frame)
    if sent < len(frame):  # (sendall even of nothing fails once a quick peer has closed)
        sock.sendall(frame[sent:])


def receive_message(
    sock: socket.socket, deadline: float, *, from_decoder: bool = False
) -> tuple[Any, list[int]]:
    """One framed pickle and the descriptors that came with it (the caller closes them).

    ``from_decoder``: the sender has parsed hostile bytes and may be subverted, so only the
    types an outcome is made of are rebuilt (`_Outcomes`), never an arbitrary callable.
    Raises EOFError when the peer closed (or died) first, TimeoutError past `deadline`."""
    fds: list[int] = []
    try:
        _settimeout(sock, deadline)
        chunk, fds, flags, _ = socket.recv_fds(sock, 64 * 1024, 1)
        if flags & socket.MSG_CTRUNC:
            raise EOFError("a descriptor was cut off")
        buffer = bytearray(chunk)
        while len(buffer) < _HEADER.size:
            buffer += _recv(sock, deadline)
        (size,) = _HEADER.unpack_from(buffer)
        if size > MAX_MESSAGE_BYTES:
            raise EOFError("message too large")
        while len(buffer) < _HEADER.size + size:
            buffer += _recv(sock, deadline, _HEADER.size + size - len(buffer))
        body = io.BytesIO(memoryview(buffer)[_HEADER.size :])
        if from_decoder:
            return _Outcomes(body).load(), fds
        # A job from a web worker of the same host, over a 0600 socket in a 0700 directory.
        return pickle.load(body), fds  # noqa: S301
    except BaseException:
        close_all(fds)
        raise


class _Outcomes(pickle.Unpickler):
    """Unpickles what a decoder sends back: builtin values and exceptions, the pipeline's
    results and the app's errors; anything else is refused."""

    _TYPES = frozenset({"bool", "bytes", "bytearray", "dict", "float", "frozenset", "int",
                        "list", "set", "str", "tuple"})  # fmt: skip
    _MODULES = {
        "verifier.portal.decoding": {"ProcessedUpload", "ProcessedImage", "QualityWarning"},
        "verifier.errors": None,  # every class there is an exception
    }

    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins":
            import builtins

            found = getattr(builtins, name, None)
            if name in self._TYPES or (
                isinstance(found, type) and issubclass(found, BaseException)
            ):
                return found
        elif module in self._MODULES and (
            self._MODULES[module] is None or name in self._MODULES[module]  # type: ignore[operator]
        ):
            found = super().find_class(module, name)
            if isinstance(found, type):
                return found
        raise pickle.UnpicklingError(f"a decoder sent {module}.{name}")


def _recv(sock: socket.socket, deadline: float, wanted: int = 64 * 1024) -> bytes:
    _settimeout(sock, deadline)
    chunk = sock.recv(min(wanted, 4 * 1024 * 1024))
    if not chunk:
        raise EOFError("the connection closed")
    return chunk


def _settimeout(sock: socket.socket, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("no answer in time")
    sock.settimeout(remaining)


def read_payload(fds: list[int], size: int) -> bytes:
    """In the decoder: the bytes of the one descriptor that came with the job."""
    if len(fds) != 1:
        raise RuntimeError("the handed-over upload did not arrive")
    fd = fds[0]
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


def close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def digest_for_test(data: bytes) -> tuple[int, str]:
    """Test hook: what the decoder received (its length and SHA-256)."""
    import hashlib

    return len(data), hashlib.sha256(data).hexdigest()
