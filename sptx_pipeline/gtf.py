"""GTF text, once: the attribute column's grammar and how a line is checked and read.

An attribute is ``key "quoted value"`` or ``key bare_value``, pairs separated by ``;``; a key may
repeat (``tag``). Every reader of GTF attributes (the genes stage's validation, canonical
transcripts, the plot's exons) goes through this module.
"""

from __future__ import annotations

import re
from collections import defaultdict

FIELDS = ("chrom", "source", "feature", "start", "end", "score", "strand", "frame", "attributes")
_PAIR = r'[A-Za-z_][\w.]*[ \t]+(?:"[^"]*"|[^;"\s]+)'
_ATTRIBUTE_COLUMN = re.compile(rf"\s*(?:{_PAIR}\s*;\s*)*(?:{_PAIR}\s*)?")
_ATTRIBUTE = re.compile(r'([A-Za-z_][\w.]*)[ \t]+(?:"([^"]*)"|([^;"\s]+))')


def check_fields(fields: list[str]) -> None:
    """Raise ``ValueError`` saying what is wrong with one GTF line split at tabs."""
    if len(fields) != len(FIELDS):
        raise ValueError(f"expected 9 tab-separated fields, found {len(fields)}")
    if not (fields[3].isdigit() and fields[4].isdigit()):
        raise ValueError(
            f"start and end must be positive integers, got {fields[3]!r}, {fields[4]!r}"
        )
    if not 1 <= int(fields[3]) <= int(fields[4]):
        raise ValueError(f"start {fields[3]} must be >= 1 and <= end {fields[4]}")
    if fields[6] not in ("+", "-", "."):
        raise ValueError(f"strand must be +, - or ., got {fields[6]!r}")
    if _ATTRIBUTE_COLUMN.fullmatch(fields[8]) is None:
        raise ValueError(f"cannot parse attributes {fields[8][:60]!r}")


def attributes(text: str) -> dict[str, list[str]]:
    """Every value of every key of an attribute column, in order (``tag`` may repeat)."""
    found: dict[str, list[str]] = defaultdict(list)
    for key, quoted, bare in _ATTRIBUTE.findall(text):
        found[key].append(quoted or bare)
    return found


def first(values: dict[str, list[str]], *keys: str, default: str = "") -> str:
    """The first value of the first of ``keys`` present (e.g. ``transcript_id``, ``gene_id``)."""
    for key in keys:
        if values.get(key):
            return values[key][0]
    return default
