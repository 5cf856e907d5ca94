# SPDX-License-Identifier: MPL-2.0
"""File helpers shared by the model tools (no torch import: quantize.py runs
without it)."""

from __future__ import annotations

import hashlib


def sha256(path: str) -> str:
    """Hex SHA-256 of the file at `path`, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
