"""Helpers for tests that start real servers: a free port and the `verifier` command."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A loopback port nobody is listening on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(env: dict[str, str], *args: str) -> str:
    """Run `verifier ARGS` with ENV and return what it printed (failing the test on error)."""
    return subprocess.run(
        [str(BIN / "verifier"), *args], env=env, check=True, capture_output=True, text=True
    ).stdout
