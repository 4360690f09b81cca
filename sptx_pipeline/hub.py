"""A UCSC track hub next to the bigWig tracks: ``hub.txt`` in the single-file form.

The hub uses ``useOneFile on``: the hub stanza, one ``genome`` stanza (the assembly name, e.g.
``hg19``) and the track stanzas all live in ``hub.txt``, so one file describes the folder. Per
strand there is a ``multiWig`` container that overlays the splice channels (acceptor, donor,
no-splice where written) and, for SpTransformer, a composite of the 15 tissue-usage tracks.
Every ``bigDataUrl`` is the bigWig's file name, relative to the hub's folder, so the folder
can be copied to any web server that serves byte ranges and still work.

Settings follow the UCSC "Hub Track Database Definition": every data track has ``track``,
``type``, ``bigDataUrl``, ``shortLabel`` (at most 17 characters) and ``longLabel``; track names
are letters, digits and underscores, unique in the hub; containers carry no data and their
children name them in ``parent``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

from .atomic import atomic_path
from .channels import SPLICE_CHANNELS

log = logging.getLogger(__name__)

HUB_FILE = "hub.txt"
SHORT_LABEL_MAX = 17
LONG_LABEL_MAX = 76
DEFAULT_EMAIL = "nobody@example.org"  # hub.txt requires a contact; set ``hub_email``
STRAND_WORD = {"+": "plus", "-": "minus"}
_TRACK_FILE = re.compile(r"^(?P<channel>\w+)\.(?P<strand>plus|minus)\.bw$")

# RGB of each splice channel and of the 15 SpTransformer tissues (tab20-like, distinct hues).
SPLICE_COLORS = {"acceptor": "214,39,40", "donor": "31,119,180", "no_splice": "127,127,127"}
TISSUE_COLORS = [
    "31,119,180", "255,127,14", "44,160,44", "214,39,40", "148,103,189",
    "140,86,75", "227,119,194", "127,127,127", "188,189,34", "23,190,207",
    "174,199,232", "255,152,150", "152,223,138", "197,176,213", "219,219,141",
]  # fmt: skip
SPLICE_DESCRIPTIONS = {
    "acceptor": "acceptor probability",
    "donor": "donor probability",
    "no_splice": "no-splice probability",
}


def model_name(channels: Iterable[str]) -> str:
    """``SpTransformer`` when the tracks include tissue channels, else ``SpliceAI``."""
    return "SpTransformer" if set(channels) - set(SPLICE_CHANNELS) else "SpliceAI"


def track_files(tracks_dir: str | os.PathLike) -> dict[tuple[str, str], str]:
    """``{(channel, strand): file name}`` of the ``<channel>.<plus|minus>.bw`` files here."""
    found = {}
    for path in sorted(Path(tracks_dir).iterdir()):
        match = _TRACK_FILE.match(path.name)
        if match:
            strand = "+" if match["strand"] == "plus" else "-"
            found[(match["channel"], strand)] = path.name
    return found


def _label(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "."


def _stanza(settings: dict[str, str], indent: str = "") -> str:
    return "".join(f"{indent}{key} {value}\n" for key, value in settings.items())


def hub_text(
    files: dict[tuple[str, str], str],
    assembly: str,
    model: str | None = None,
    email: str = DEFAULT_EMAIL,
) -> str:
    """The ``hub.txt`` of ``files`` (``{(channel, strand): relative path}``) on ``assembly``."""
    channels = list(dict.fromkeys(channel for channel, _ in files))
    model = model or model_name(channels)
    splice: list[str] = [c for c in ("acceptor", "donor", "no_splice") if c in channels]
    tissues = [c for c in channels if c not in SPLICE_CHANNELS]
    stanzas = [
        {
            "hub": f"sptx_{model.lower()}",
            "shortLabel": _label(f"{model} splicing", SHORT_LABEL_MAX),
            "longLabel": _label(f"{model} splice-site predictions (sptx-pipeline)", LONG_LABEL_MAX),
            "useOneFile": "on",
            "email": email,
        },
        {"genome": assembly},
    ]
    text = [_stanza(s) for s in stanzas]
    display = {
        "viewLimits": "0:1",
        "autoScale": "off",
        "maxHeightPixels": "100:40:16",
        "visibility": "full",
    }
    for priority, strand in enumerate(("+", "-"), start=1):
        word = STRAND_WORD[strand]
        here = [c for c in splice if (c, strand) in files]
        if here:
            parent = f"{model.lower()}_splice_{word}"
            container = {
                "track": parent,
                "container": "multiWig",
                "type": "bigWig 0 1",
                "shortLabel": _label(f"{model} {strand}", SHORT_LABEL_MAX),
                "longLabel": _label(
                    f"{model} splice-site probabilities, {word} strand: "
                    + ", ".join(c.replace("_", "-") for c in here),
                    LONG_LABEL_MAX,
                ),
                "aggregate": "transparentOverlay",
                "showSubtrackColorOnUi": "on",
                "priority": str(priority),
                **display,
            }
            text.append(_stanza(container))
            for channel in here:
                text.append(
                    _stanza(
                        {
                            "track": f"{model.lower()}_{channel}_{word}",
                            # no-splice (near 1 almost everywhere) hidden until switched on
                            "parent": f"{parent} {'off' if channel == 'no_splice' else 'on'}",
                            "type": "bigWig 0 1",
                            "bigDataUrl": files[(channel, strand)],
                            "shortLabel": _label(f"{channel} {strand}", SHORT_LABEL_MAX),
                            "longLabel": _label(
                                f"{model} {SPLICE_DESCRIPTIONS[channel]}, {word} strand",
                                LONG_LABEL_MAX,
                            ),
                            "color": SPLICE_COLORS[channel],
                        },
                        indent="    ",
                    )
                )
        here = [c for c in tissues if (c, strand) in files]
        if here:
            parent = f"{model.lower()}_tissues_{word}"
            composite = {
                "track": parent,
                "compositeTrack": "on",
                "type": "bigWig 0 1",
                "shortLabel": _label(f"Tissue usage {strand}", SHORT_LABEL_MAX),
                "longLabel": _label(
                    f"{model} splice-site usage in {len(here)} tissues, {word} strand",
                    LONG_LABEL_MAX,
                ),
                "priority": str(priority + 2),
                **display,
                "maxHeightPixels": "60:24:12",
            }
            text.append(_stanza(composite))
            for i, channel in enumerate(here):
                tissue = channel.replace("_", " ")
                text.append(
                    _stanza(
                        {
                            "track": f"{model.lower()}_{channel}_{word}",
                            "parent": f"{parent} on",
                            "type": "bigWig 0 1",
                            "bigDataUrl": files[(channel, strand)],
                            "shortLabel": _label(f"{tissue} {strand}", SHORT_LABEL_MAX),
                            "longLabel": _label(
                                f"{model} splice-site usage in {tissue}, {word} strand",
                                LONG_LABEL_MAX,
                            ),
                            "color": TISSUE_COLORS[i % len(TISSUE_COLORS)],
                        },
                        indent="    ",
                    )
                )
    return "\n".join(text)


def write_hub(
    tracks_dir: str | os.PathLike,
    assembly: str,
    tracks: Iterable[str | os.PathLike] | None = None,
    model: str | None = None,
    email: str | None = None,
) -> Path:
    """Write ``hub.txt`` into ``tracks_dir`` (atomically) and return its path: for the bigWig
    files ``tracks`` (those the tracks stage wrote), or every ``<channel>.<strand>.bw`` there."""
    tracks_dir = Path(tracks_dir)
    files = track_files(tracks_dir)
    if tracks is not None:
        names = {Path(t).name for t in tracks}
        files = {key: name for key, name in files.items() if name in names}
    path = tracks_dir / HUB_FILE
    with atomic_path(path) as tmp:
        Path(tmp).write_text(hub_text(files, assembly, model, email or DEFAULT_EMAIL))
    log.info("wrote %s (%d tracks on %s)", path, len(files), assembly)
    return path


def parse_stanzas(text: str) -> list[dict[str, str]]:
    """The stanzas of a hub file: blank-line separated ``name value`` lines (leading
    whitespace and ``#`` comments ignored), in order."""
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#"):
            continue
        if not line:
            if current:
                stanzas.append(current)
            current = {}
            continue
        key, _, value = line.partition(" ")
        current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas
