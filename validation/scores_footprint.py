"""Bytes per position and channel of a run's ``scores/``, as written and re-encoded per channel.

Usage: ``python validation/scores_footprint.py OUTDIR [OUTDIR ...]``

For each outdir: the size of ``scores/`` over (positions x channels), and, per channel, the size
of a one-column file (``pos`` left out) written with the pipeline's own writer settings
(``results.parquet_writer``, dictionary encoding as for float16 predictions) after rounding to
float16, which is what ``output_dtype: float16`` (the default) stores. So a run made with
``output_dtype: float32`` is priced as the default would store it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from sptx_pipeline.results import parquet_writer


def channel_bytes(values: np.ndarray, name: str) -> int:
    """Size of one float16-rounded column in a Parquet file of the pipeline's settings."""
    schema = pa.schema([pa.field(name, pa.float32(), nullable=False)])
    rounded = values.astype(np.float16).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "one.parquet"
        with parquet_writer(path, schema, "dictionary") as writer:
            writer.write_table(pa.table({name: rounded}, schema=schema))
        return path.stat().st_size


def main() -> None:
    for outdir in map(Path, sys.argv[1:]):
        files = list((outdir / "scores").rglob("*.parquet"))
        frame = pd.read_parquet(outdir / "scores")
        channels = [c for c in frame.columns if c not in ("pos", "chrom", "strand")]
        total = sum(f.stat().st_size for f in files)
        print(f"{outdir}: {len(frame)} positions x {len(channels)} channels, {total} bytes")
        print(f"  scores/ as written: {total / len(frame) / len(channels):.3f} B/position/channel")
        for name in channels:
            size = sum(
                channel_bytes(group[name].to_numpy(np.float32), name)
                for _, group in frame.groupby(["chrom", "strand"], observed=True)
            )
            print(f"  {name:16s} {size / len(frame):.3f} B/position (float16, one column)")


if __name__ == "__main__":
    main()
