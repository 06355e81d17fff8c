"""Helpers for tests that start real servers: a free port and the `verifier` command."""

from __future__ import annotations

import os
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


def server_env(work: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment of a throw-away SQLite installation under `work` served on `port`."""
    (work / "uploads").mkdir(exist_ok=True)
    env = (
        os.environ
        | {
            "VERIFIER_INSTANCE_DIR": str(work / "instance"),
            "VERIFIER_UPLOADS_DIR": str(work / "uploads"),
            "VERIFIER_BASE_URL": f"http://127.0.0.1:{port}",
            "VERIFIER_LOG_LEVEL": "WARNING",
        }
        | extra
    )
    env.pop("VERIFIER_DATABASE_URL", None)
    return env


def process_running(pid: int) -> bool:
    """Alive and not a zombie (a killed orphan may wait to be reaped by init)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")
