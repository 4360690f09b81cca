"""The documentation against the code: every ``sptx``/``snakemake`` command the README and the
docs pages show names a subcommand, options and config keys that exist; the config key table is
rendered from the schema, where every key has a description; the site builds with
``mkdocs build --strict``.

The commands are checked with the parsers that will read them (``sptx_pipeline.cli.build_parser``
and Snakemake's own), the config keys with the schema, profile paths on disk: a renamed option, a
removed key or a moved profile fails here instead of in a reader's terminal. (The query and plot
examples are run on real results by ``tests/test_workflow_run.py``, the crash re-run commands by
``tests/test_crash_rerun.py``.)
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from sptx_pipeline.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", REPO / "DESIGN.md", *sorted(DOCS.glob("*.md"))]
SHELLS = ("bash", "sh", "shell", "console", "")
PLACEHOLDER = re.compile(r"^\[|\]$")  # optional parts written as [--option value]


def _hook():
    """docs/hooks/schema_tables.py, the MkDocs hook that renders the config key tables."""
    spec = importlib.util.spec_from_file_location(
        "schema_tables", DOCS / "hooks" / "schema_tables.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCHEMA_TABLES = _hook()
SCHEMA = SCHEMA_TABLES.load_schema()


def _fenced_lines(text: str) -> list[str]:
    """The lines of every shell code block, continuation lines joined."""
    lines: list[str] = []
    for language, code in re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        if language in SHELLS:
            joined = code.replace("\\\n", " ").splitlines()
            lines.extend(line.removeprefix("$ ") for line in joined)  # console prompts
    return lines


def _inline_spans(text: str) -> list[str]:
    """Inline code spans outside code blocks, e.g. `sptx predict --threads N`."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.findall(r"`([^`\n]+)`", prose)


def _commands(line: str) -> list[list[str]]:
    """The sptx/snakemake commands of one shell line (``&&``-chained, comments dropped, leading
    ``VAR=value`` assignments skipped)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:  # not shell (an unbalanced quote in prose)
        return []
    found, current = [], []
    for word in [*words, "&&"]:
        if word in ("&&", "||", ";", "&", "|"):
            while current and re.match(r"^[A-Z_]+=", current[0]):
                current.pop(0)
            if current and current[0] in ("sptx", "snakemake"):
                found.append(current)
            current = []
        else:
            current.append(word)
    return found


def documented_commands() -> list[tuple[str, bool, list[str]]]:
    """``(page, fenced, words)`` of every sptx/snakemake command of the README and docs/."""
    out = []
    for page in PAGES:
        text = page.read_text()
        for fenced, lines in ((True, _fenced_lines(text)), (False, _inline_spans(text))):
            for line in lines:
                for words in _commands(line):
                    out.append((page.name, fenced, words))
    return out


@cache
def _snakemake_parser() -> argparse.ArgumentParser:
    from snakemake.cli import get_argument_parser

    return get_argument_parser()


def _options(words: list[str]) -> list[str]:
    """The option names among ``words`` (``--name=value`` cut at the ``=``)."""
    cleaned = [PLACEHOLDER.sub("", word) for word in words]
    return [word.split("=", 1)[0] for word in cleaned if re.match(r"^--?[A-Za-z]", word)]


def sptx_problems(words: list[str], complete: bool = True) -> list[str]:
    """What is wrong with one ``sptx ...`` command: an unknown subcommand or option, or, for a
    ``complete`` command (a code block's, without ``...``, ``[...]`` or ``<...>``), anything
    argparse rejects (a missing argument, a value not among the choices)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    rest = words[1:]
    while rest and rest[0].startswith("-"):  # sptx -v query ...
        if rest[0] not in parser._option_string_actions:
            return [f"sptx has no option {rest[0]}"]
        rest = rest[1:]
    if not rest or rest[0].startswith("<"):  # `sptx -v`, `sptx <stage> --help`
        return []
    if rest[0] not in sub.choices:
        return [f"sptx has no subcommand {rest[0]!r}"]
    known = sub.choices[rest[0]]._option_string_actions
    problems = [f"sptx {rest[0]} has no option {o}" for o in _options(rest[1:]) if o not in known]
    complete = complete and not any(w == "..." or w.startswith(("[", "<")) for w in rest)
    if not problems and complete:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.suppress(SystemExit):
            parser.parse_args(words[1:])
        if err.getvalue():
            problems.append(err.getvalue().strip().splitlines()[-1])
    return problems


def snakemake_problems(words: list[str]) -> list[str]:
    """What is wrong with one ``snakemake ...`` command: an option Snakemake does not know, a
    ``--config`` key the schema does not have, or a ``--profile`` that is not there."""
    known = _snakemake_parser()._option_string_actions
    problems = [f"snakemake has no option {o}" for o in _options(words[1:]) if o not in known]
    for i, word in enumerate(words):
        if word == "--config":
            for pair in words[i + 1 :]:
                if pair.startswith("-"):
                    break
                key = pair.split("=", 1)[0]
                if key not in SCHEMA["properties"]:
                    problems.append(f"--config {key}: not a key of the config schema")
        if word == "--profile" and i + 1 < len(words):
            if not (REPO / words[i + 1] / "config.yaml").is_file():
                problems.append(f"--profile {words[i + 1]}: no such profile")
    return problems


def problems_of(words: list[str], fenced: bool = True) -> list[str]:
    """Inline code (``fenced`` false) often shows part of a command: only its names count."""
    return sptx_problems(words, fenced) if words[0] == "sptx" else snakemake_problems(words)


COMMANDS = documented_commands()


def test_the_docs_show_commands_of_both_kinds():
    fenced = [words[0] for _, is_fenced, words in COMMANDS if is_fenced]
    assert fenced.count("sptx") >= 12 and fenced.count("snakemake") >= 12


@pytest.mark.parametrize("page", sorted({page for page, _, _ in COMMANDS}))
def test_documented_commands_exist(page):
    """Every sptx/snakemake command of the page (code blocks and inline code) names only
    subcommands, options, config keys and profiles that exist."""
    problems = {
        " ".join(words): found
        for name, fenced, words in COMMANDS
        if name == page and (found := problems_of(words, fenced))
    }
    assert problems == {}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("sptx query results GPX4 --colour red", "sptx query has no option --colour"),
        ("sptx quarry results GPX4", "sptx has no subcommand 'quarry'"),
        ("sptx query results GPX4 --format xlsx", "invalid choice: 'xlsx'"),
        ("sptx tracks --scores s --fasta f --out o [--channel acceptor]", "no option --channel"),
        ("snakemake --cores all --config chunk_sise=100", "chunk_sise: not a key"),
        ("snakemake --cors all", "snakemake has no option --cors"),
        ("snakemake --profile profiles/nowhere", "no such profile"),
        ("X=1 sptx quarry && sptx query r G", "sptx has no subcommand 'quarry'"),
        ("sptx query r G | head; sptx plot r G --colour red", "sptx plot has no option --colour"),
    ],
)
def test_the_command_check_catches_mistakes(line, expected):
    found = [problem for words in _commands(line) for problem in problems_of(words)]
    assert any(expected in problem for problem in found), found


def test_every_config_key_has_a_description_and_a_row():
    assert SCHEMA_TABLES.missing_descriptions(SCHEMA) == []
    table = SCHEMA_TABLES.config_table(SCHEMA)
    rows = [line.split("|")[1].strip() for line in table.splitlines()[2:]]
    assert rows == [f"`{key}`" for key in SCHEMA["properties"]]
    cluster = SCHEMA_TABLES.cluster_table(SCHEMA)
    kinds = SCHEMA["properties"]["cluster"]["properties"]["type"]["enum"]
    assert [line.split("|")[1].split()[0] for line in cluster.splitlines()[2:]] == [
        f"`{kind}`" for kind in kinds
    ]


def test_a_key_without_description_fails_the_table():
    schema = yaml.safe_load(SCHEMA_TABLES.SCHEMA.read_text())
    del schema["properties"]["shard_size"]["description"]
    with pytest.raises(ValueError, match="shard_size"):
        SCHEMA_TABLES.config_table(schema)


def test_readme_links_and_pictures_exist():
    """The README is not part of the site, so mkdocs does not check its links."""
    text = (REPO / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text)
    assert "docs/example_region.png" in targets
    assert [t for t in targets if not (REPO / t).exists()] == []


def test_readme_is_short_and_keeps_the_two_commands():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    assert "pip install -e . && snakemake --cores all\n" in text
    assert 'pip install -e ".[test]" && python -m pytest -q\n' in text


def test_the_site_builds_strict(tmp_path):
    """``mkdocs build --strict``: no page left out of the nav, no link to a missing page or
    anchor (mkdocs.yml's ``validation``); the hook rendered the tables."""
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    page = (site / "configuration" / "index.html").read_text()
    assert "schema:config-keys" not in page
    assert all(f"<code>{key}</code>" in page for key in SCHEMA["properties"])
    assert "schema:cluster-types" not in (site / "scale" / "index.html").read_text()
    assert (site / "example_region.png").stat().st_size > 10_000
    assert not (site / "hooks").exists()


def documented_python() -> list[tuple[str, str]]:
    """``(page, code)`` of every Python block of the README, DESIGN.md and docs/."""
    blocks = []
    for page in PAGES:
        for code in re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M):
            blocks.append((page.name, code))
    return blocks


def test_documented_python_compiles_and_its_imports_exist():
    """Every Python example parses, and every name it imports from sptx_pipeline (or elsewhere)
    exists: a moved module or a renamed function fails here. (The examples that read results run
    in tests/test_workflow_run.py; the others need published weights or a VCF.)"""
    blocks = documented_python()
    assert len(blocks) >= 6
    for page, code in blocks:
        tree = ast.parse(code, filename=page)
        imports = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
        namespace: dict = {}
        exec(compile(ast.Module(body=imports, type_ignores=[]), page, "exec"), namespace)  # noqa: S102
        assert imports, code
