"""Checksums and provenance records stored with every result."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from . import __version__


def sha256_file(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """Streaming SHA-256 of a file (directories: of their files, in sorted order)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as handle:
            while chunk := handle.read(block):
                digest.update(chunk)
    return digest.hexdigest()


def weights_provenance(
    model: str, source: str, folder: Path, files: list[str] | tuple[str, ...]
) -> dict[str, Any]:
    """The provenance of a model read from a folder of weight files (SpliceAI, Pangolin):
    ``sha256`` is one checksum over the files, the sha256 of their ``sha256  name`` lines."""
    lines = "".join(f"{sha256_file(folder / name)}  {name}\n" for name in files)
    return {
        "model": model,
        "source": source,
        "directory": str(folder.resolve()),
        "files": list(files),
        "sha256": hashlib.sha256(lines.encode()).hexdigest(),
    }


def package_provenance() -> dict[str, Any]:
    return {"package": "sptx-pipeline", "version": __version__}
