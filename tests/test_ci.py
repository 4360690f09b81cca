"""CI cannot pass without its tests: ``.ci/run`` stops at a failed install, fails when the fast
tier ran fewer tests than its floor, and a skip under ``CI=true`` is a failure unless allowed.

``.ci/run`` is run for real by bash, with ``pip`` and the test runner replaced by small
scripts on ``PATH`` that record their calls (nothing is installed or tested twice).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.genome_fixtures import REPO

pytest_plugins = ["pytester"]

PIP = """#!/usr/bin/env bash
echo "pip $*" >> "$CALLS"
case " $* " in *" -e "*) [ -n "${BREAK_INSTALL:-}" ] && exit 1 ;; esac
exit 0
"""
# python: `-m pytest` is recorded and writes a JUnit report with $TESTS tests; anything else
# (the floor check's inline script) runs on the real interpreter.
PYTHON = f"""#!/usr/bin/env bash
if [ "$1" = -m ] && [ "$2" = pytest ]; then
    echo "pytest $*" >> "$CALLS"
    for arg; do case "$arg" in --junitxml=*) xml=${{arg#--junitxml=}} ;; esac; done
    echo "<testsuites><testsuite tests=\\"$TESTS\\" skipped=\\"0\\"/></testsuites>" > "$xml"
    exit 0
fi
exec {sys.executable} "$@"
"""
OK = '#!/usr/bin/env bash\necho "$(basename "$0") $*" >> "$CALLS"\nexit 0\n'


def run_ci(tmp_path: Path, **env: str) -> tuple[int, str, str]:
    """``.ci/run`` of this checkout in a scratch copy; returns exit code, output and calls."""
    root = tmp_path / "clone"
    (root / ".ci").mkdir(parents=True)
    shutil.copy(REPO / ".ci" / "run", root / ".ci" / "run")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = {"pip": PIP, "python": PYTHON}
    tools |= {n: OK for n in ("ruff", "mypy", "snakefmt", "snakemake", "mkdocs", "id", "timeout")}
    for name, text in tools.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    calls = tmp_path / "calls"
    calls.touch()
    environment = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "CALLS": str(calls),
        "TESTS": "400",
        "CI": "",  # SLURM: `id` prints nothing, so no cluster is started; not a failure off CI
        **env,
    }
    result = subprocess.run(
        ["bash", str(root / ".ci" / "run")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    return result.returncode, result.stdout + result.stderr, calls.read_text()


def test_a_broken_install_fails_ci_before_any_test(tmp_path):
    code, output, calls = run_ci(tmp_path, BREAK_INSTALL="1")
    assert code != 0, output
    assert "pip install -e .[test]" in calls
    assert "pytest" not in calls and "ruff" not in calls, calls


def test_fewer_tests_than_the_floor_fail_ci(tmp_path):
    code, output, calls = run_ci(tmp_path, TESTS="3")
    assert code != 0
    assert "fast tier: only 3 tests ran, fewer than the floor" in output
    assert calls.count("\npytest") == 1, calls  # nothing after the fast tier


def test_a_complete_run_reaches_every_tier(tmp_path):
    code, output, calls = run_ci(tmp_path)
    assert code == 0, output
    steps = ("-m slow", "ruff check", "ruff format --check", "mypy", "snakefmt", "--lint", "mkdocs")
    for step in steps:
        assert step in calls, (step, calls)
    assert "=== whole .ci/run:" in output


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [("chattr +i is not available here", "failed"), ("needs a CUDA GPU here", "skipped")],
)
def test_under_ci_a_skip_fails_unless_allowed(pytester, monkeypatch, reason, outcome):
    pytester.makeconftest("from tests.conftest import pytest_runtest_makereport  # noqa: F401")
    pytester.makepyfile(f"import pytest\ndef test_x():\n    pytest.skip({reason!r})\n")
    monkeypatch.setenv("CI", "true")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(**{outcome: 1})
    monkeypatch.setenv("CI", "false")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(skipped=1)
