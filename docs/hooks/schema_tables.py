"""MkDocs hook: the config key tables of docs/configuration.md, rendered from the config schema.

``workflow/schemas/config.schema.yaml`` is the one source of every config key, its default, its
allowed values and its meaning (the ``description`` fields). A page asks for a table with a
marker line; the hook replaces it at build time:

- ``<!-- schema:config-keys -->``: one row per top-level key (key, default, allowed, meaning);
- ``<!-- schema:cluster-types -->``: one row per ``cluster.type`` (what it starts, its options).

A key without a description is an error, so a new key cannot reach the docs undocumented.
``tests/test_docs.py`` imports this file to check the same without building the site.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
CONFIG_MARKER = "<!-- schema:config-keys -->"
CLUSTER_MARKER = "<!-- schema:cluster-types -->"


def load_schema(path: Path = SCHEMA) -> dict[str, Any]:
    """The config schema as a mapping."""
    return yaml.safe_load(path.read_text())


def _inline(value: Any) -> str:
    """A default as it would be written in the YAML config, on one line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_inline(v)}" for k, v in value.items()) + "}"
    return str(value)


def _cell(text: str) -> str:
    """Table-safe text: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _allowed(spec: dict[str, Any]) -> str:
    """The values a key accepts, from its ``enum``/``type``/bounds."""
    if "enum" in spec:
        return ", ".join(f"`{_inline(v)}`" for v in spec["enum"])
    kinds = spec.get("type", "")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    names = {"array": "list", "object": "mapping", "number": "number", "null": "`null`"}
    words = [names.get(kind, kind) for kind in kinds if kind]
    if spec.get("items", {}).get("type") == "string" and "list" in words:
        words[words.index("list")] = "list of strings"
    text = " or ".join(words)
    low, high = spec.get("minimum"), spec.get("maximum")
    if low is not None and high is not None:
        text += f", {low}-{high}"
    elif low is not None:
        text += f", >= {low}"
    return text


def missing_descriptions(schema: dict[str, Any]) -> list[str]:
    """Keys (and cluster types) that have no ``description`` in the schema."""
    missing = [key for key, spec in schema["properties"].items() if not spec.get("description")]
    for branch in schema["properties"].get("cluster", {}).get("oneOf", []):
        if not branch.get("description"):
            missing.append("cluster.type=" + branch["properties"]["type"]["const"])
    return missing


def config_table(schema: dict[str, Any]) -> str:
    """The Markdown table of every top-level config key."""
    missing = missing_descriptions(schema)
    if missing:
        raise ValueError(f"config keys without a description in {SCHEMA.name}: {missing}")
    required = set(schema.get("required", []))
    rows = ["| key | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    for key, spec in schema["properties"].items():
        default = "(required)" if key in required else f"`{_inline(spec.get('default'))}`"
        rows.append(
            f"| `{key}` | {default} | {_cell(_allowed(spec))} | {_cell(spec['description'])} |"
        )
    return "\n".join(rows)


def cluster_table(schema: dict[str, Any]) -> str:
    """The Markdown table of the ``cluster`` types and the options each accepts."""
    rows = ["| `cluster.type` | what it starts | options |", "| --- | --- | --- |"]
    spec = schema["properties"]["cluster"]
    default = spec["properties"]["type"].get("default")
    for branch in spec["oneOf"]:
        kind = branch["properties"]["type"]["const"]
        names = sorted(name for name in branch["properties"] if name != "type")
        options = ", ".join(f"`{name}`" for name in names)
        name = f"`{kind}` (default)" if kind == default else f"`{kind}`"
        rows.append(f"| {name} | {_cell(branch['description'])} | {options} |")
    return "\n".join(rows)


def render(markdown: str, schema: dict[str, Any] | None = None) -> str:
    """``markdown`` with every schema marker replaced by its table."""
    if CONFIG_MARKER not in markdown and CLUSTER_MARKER not in markdown:
        return markdown
    schema = schema or load_schema()
    markdown = markdown.replace(CONFIG_MARKER, config_table(schema))
    return markdown.replace(CLUSTER_MARKER, cluster_table(schema))


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: render the schema tables into the pages that ask for them."""
    return render(markdown)


if __name__ == "__main__":  # print the tables, e.g. to review a schema change
    loaded = load_schema()
    print(config_table(loaded), "", cluster_table(loaded), sep="\n")
    print(json.dumps(missing_descriptions(loaded)))
