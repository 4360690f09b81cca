"""Make docs/example_region.png: `sptx plot` on the synthetic run of the test suite.

The values are random (a few strong sites over a near-zero background, random tissue usage), not
model output; the picture shows what the plot looks like. Run from the repository root:

    PYTHONPATH=. python docs/make_example_plot.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from sptx_pipeline.merge import merge  # noqa: E402
from sptx_pipeline.plot import plot_region  # noqa: E402
from tests.results_fixtures import write_inputs  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        write_inputs(out, seed=3, peaks=True)
        merge(
            out / "windows.parquet",
            out / "predictions.zarr",
            out / "regions.parquet",
            out / "genes.parquet",
            out / "scores",
            out / "sites.parquet",
            sites_min_score=0.2,
            provenance={"gtf": str(out / "genes.gtf")},
        )
        plot_region(out, "chrA:100-700", ROOT / "docs" / "example_region.png", both_strands=True)


if __name__ == "__main__":
    main()
