"""Helpers for the browser tests."""

from __future__ import annotations


def watch_csp(page) -> list[str]:
    """A list that collects every Content Security Policy violation the page reports."""
    violations: list[str] = []
    page.on(
        "console",
        lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    return violations
