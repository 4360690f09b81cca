"""``python -m tests.stand_in_predict WINDOWS PREDICTIONS``: ``predict`` with the stand-in
model in a process of its own, for the tests that kill it, lock against it or run it on SLURM.

Log lines carry the epoch time (``%(created)``), so a test can measure between two events the
code logs (e.g. the SLURM watchdog starting its clock and the failure it raises).
"""

from __future__ import annotations

import argparse
import json
import logging

LOG_FORMAT = "%(created).3f %(levelname)s %(name)s: %(message)s"


def main() -> None:
    parser = argparse.ArgumentParser(description="predict with the stand-in model")
    parser.add_argument("windows")
    parser.add_argument("predictions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--cluster", type=json.loads, default={"type": "local"})
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    from sptx_pipeline.inference import predict
    from sptx_pipeline.testing import StandInFactory as Factory  # here: torch costs seconds

    summary = predict(
        args.windows,
        args.predictions,
        Factory(seed=args.seed, sleep=args.sleep),
        device="cpu",
        batch_size=args.batch_size,
        cluster=args.cluster,
        progress=False,
    )
    print(json.dumps(summary.as_dict("windows")), flush=True)


if __name__ == "__main__":
    main()
