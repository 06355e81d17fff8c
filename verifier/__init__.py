"""Verifier: fraud-verification order review for online shops.

`create_app` lives in `verifier.app` and is loaded on first use: importing any module of the
package (a decoder process imports only `verifier.portal.decoding`) must not load Flask and
every blueprint, which cost each decoder process about 87 MB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from verifier.app import create_app as create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> object:
    if name == "create_app":
        from verifier.app import create_app

        return create_app
    raise AttributeError(f"module 'verifier' has no attribute {name!r}")
