"""The UCSC track hub of the tracks stage, checked against the track-hub specification.

The rules checked here are restated from UCSC's "Hub Track Database Definition" and track-hub
help, independently of ``sptx_pipeline.hub``: the hub stanza needs ``hub``, ``shortLabel``,
``longLabel``, ``email`` and (single-file form) ``useOneFile on``; the next stanza is
``genome <assembly>``; every data track needs ``track``, ``type``, ``bigDataUrl``,
``shortLabel``, ``longLabel``; ``shortLabel`` is at most 17 characters and ``longLabel`` at most
76 (the spec's recommended maximum); track names are letters, digits and ``_``, unique;
a ``multiWig`` container or composite has no ``bigDataUrl`` and children name it in ``parent``.
Every ``bigDataUrl`` is resolved against the hub's folder to a readable bigWig whose values are
those of the channel and strand its labels name.
"""

from __future__ import annotations

import re
import shutil
import urllib.parse
from pathlib import Path

import numpy as np
import pandas as pd
import pybigtools
import pytest

from sptx_pipeline.cli import main
from sptx_pipeline.tracks import write_tracks
from tests.results_fixtures import SPLICEAI_CHANNELS, build_run

TRACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
DATA_REQUIRED = {"track", "type", "bigDataUrl", "shortLabel", "longLabel"}
CONTAINER_REQUIRED = {"track", "type", "shortLabel", "longLabel"}


def stanzas(path: Path) -> list[dict[str, str]]:
    """Blank-line separated stanzas of ``name value`` lines (indentation ignored)."""
    out, current = [], {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line:
            if current:
                out.append(current)
            current = {}
        elif not line.startswith("#"):
            name, _, value = line.partition(" ")
            assert name not in current, f"setting {name} twice in one stanza: {raw!r}"
            current[name] = value
    if current:
        out.append(current)
    return out


@pytest.fixture(scope="module", params=["sptransformer", "spliceai"])
def hub(request, tmp_path_factory):
    """A copy of the tracks folder (hub + bigWigs) somewhere else, and the run."""
    channels = None if request.param == "sptransformer" else SPLICEAI_CHANNELS
    kwargs = {"channels": channels} if channels else {}
    run = build_run(tmp_path_factory.mktemp(request.param), **kwargs)
    tracks = run.outdir / "tracks"
    write_tracks(run.scores, run.outdir / "genome.fa", tracks, assembly="hg19")
    served = tmp_path_factory.mktemp("served") / "hub"
    shutil.copytree(tracks, served)  # the folder copied to a web server must still work
    return served, run


def test_hub_stanza_and_genome(hub):
    folder, _ = hub
    first, genome, *_ = stanzas(folder / "hub.txt")
    assert {"hub", "shortLabel", "longLabel", "email", "useOneFile"} <= set(first)
    assert first["useOneFile"] == "on"
    assert TRACK_NAME.match(first["hub"])
    assert len(first["shortLabel"]) <= 17 and len(first["longLabel"]) <= 76
    assert "@" in first["email"]
    assert genome == {"genome": "hg19"}


def _expected_channel(track: dict[str, str], channels: list[str]) -> tuple[str, str]:
    """Channel and strand named by a track's long label (``... acceptor probability, plus
    strand`` / ``... usage in small intestine, minus strand``)."""
    found = re.search(
        r"(?:usage in (.+)|(\S+) probability), (plus|minus) strand$", track["longLabel"]
    )
    assert found, track["longLabel"]
    named = (found[1] or found[2]).replace(" ", "_").replace("-", "_")
    assert named in channels, track["longLabel"]
    return named, {"plus": "+", "minus": "-"}[found[3]]


def test_every_track_follows_the_spec_and_resolves_to_its_bigwig(hub):
    folder, run = hub
    all_stanzas = stanzas(folder / "hub.txt")
    tracks = all_stanzas[2:]
    names = [t.get("track") for t in tracks]
    assert len(names) == len(set(names)), "track names must be unique"
    containers = {t["track"]: t for t in tracks if "bigDataUrl" not in t}
    data = [t for t in tracks if "bigDataUrl" in t]
    scores = pd.read_parquet(run.scores)
    scores["strand"] = scores["strand"].map({"plus": "+", "minus": "-"})
    seen = set()
    for track in tracks:
        assert TRACK_NAME.match(track["track"]), track["track"]
        assert len(track["shortLabel"]) <= 17, track["shortLabel"]
        assert len(track["longLabel"]) <= 76, track["longLabel"]
        assert track["type"].split()[0] == "bigWig"
    for name, container in containers.items():
        assert CONTAINER_REQUIRED <= set(container), name
        assert container.get("container") == "multiWig" or container.get("compositeTrack") == "on"
        assert container["viewLimits"] == "0:1" and container["autoScale"] == "off"
        assert "maxHeightPixels" in container
    for track in data:
        assert DATA_REQUIRED <= set(track), track
        assert track["parent"].split()[0] in containers
        url = track["bigDataUrl"]
        parsed = urllib.parse.urlparse(url)
        assert not parsed.scheme and not url.startswith("/") and ".." not in url.split("/")
        path = folder / urllib.parse.unquote(url)
        assert path.is_file(), url
        channel, strand = _expected_channel(track, run.channels)
        seen.add((channel, strand))
        with pybigtools.open(str(path)) as reader:  # readable, with the labelled values
            for chrom, size in reader.chroms().items():
                part = scores[(scores.chrom == chrom) & (scores.strand == strand)]
                values = np.asarray(reader.values(chrom, 0, size, fillna=0))
                want = np.zeros(size)
                want[part.pos.to_numpy() - 1] = part[channel].to_numpy()
                assert np.abs(values - want).max() <= 2**-11 + 1e-7, (url, chrom)
    assert seen == {(c, s) for c in run.channels for s in "+-"}  # every bigWig, once
    assert len(data) == len(list(folder.glob("*.bw")))


def test_cli_writes_the_hub_only_with_an_assembly(tmp_path):
    run = build_run(tmp_path / "run", channels=SPLICEAI_CHANNELS)
    common = ["tracks", "--scores", str(run.scores), "--fasta", str(run.outdir / "genome.fa")]
    assert main([*common, "--out", str(tmp_path / "plain"), "--channels", "acceptor"]) == 0
    assert not (tmp_path / "plain" / "hub.txt").exists()
    out = tmp_path / "hub"
    args = ["--out", str(out), "--channels", "acceptor", "--assembly", "hg38"]
    assert main([*common, *args, "--hub-email", "me@lab.org"]) == 0
    first, genome, *tracks = stanzas(out / "hub.txt")
    assert first["email"] == "me@lab.org" and genome["genome"] == "hg38"
    assert sorted(t["bigDataUrl"] for t in tracks if "bigDataUrl" in t) == [
        "acceptor.minus.bw",
        "acceptor.plus.bw",
    ]
