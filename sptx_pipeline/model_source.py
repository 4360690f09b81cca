"""Model sources, parsed once and without torch (the workflow's Snakefile parses them too).

A source is ``spliceai`` / ``spliceai:<dir>`` (SpliceAI-10k), ``pangolin`` / ``pangolin:<dir>``
(Pangolin) or anything else, which is an SpTransformer hub id, local directory or ``.ckpt``
file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

Family = Literal["sptransformer", "spliceai", "pangolin"]


def parse_source(source: str | os.PathLike) -> tuple[Family, str | None]:
    """``(family, argument)``: ``spliceai[:dir]`` -> ``("spliceai", dir or None)``, likewise
    ``pangolin[:dir]``; anything else -> ``("sptransformer", source)``."""
    text = str(source)
    if text == "spliceai" or text.startswith("spliceai:"):
        return "spliceai", text.partition(":")[2] or None
    if text == "pangolin" or text.startswith("pangolin:"):
        return "pangolin", text.partition(":")[2] or None
    return "sptransformer", text


def local_model_files(source: str) -> list[str]:
    """The model's file or directory when ``source`` names a local path (``spliceai:DIR``,
    ``pangolin:DIR`` too),
    so Snakemake re-runs what depends on the model when it changes; hub ids have none."""
    _, argument = parse_source(source)
    return [argument] if argument and Path(argument).exists() else []
