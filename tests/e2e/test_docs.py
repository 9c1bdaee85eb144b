"""The docs' commands run as written: the quickstart's world by hand, then the runbooks that continue it.

Every `sh` block of the pages in STORY runs in order in one home, as a reader would type it: `export`
sets a variable, `lakehouse ...` runs the command (in this process, on the tests' Spark session, the way
`make run` runs jobs: lakehouse.io.spark_jobs), globs expand as a shell expands them, and a line ending in
`# exit N` must exit with N (every other line with 0). The deploy runbook's `helm` lines run the real helm.
"""

from __future__ import annotations

import glob
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lakehouse.cli.main import COMMANDS
from lakehouse.io.spark_jobs import run_job
from lakehouse.ml import registry
from lakehouse.policy import load_ml_config
from lakehouse.settings import REPO_ROOT, load_settings
from tests.integration.helpers import fresh_home

pytestmark = pytest.mark.world

DOCS = REPO_ROOT / "docs"
# The by-hand world: each page continues the home the one before it left.
STORY = (
    "quickstart.md",
    "runbooks/backfill-and-schema-change.md",
    "runbooks/promote-and-rollback.md",
    "runbooks/monitoring-alert.md",
)
HELM = REPO_ROOT / ".cache" / "tools" / "bin" / "helm"  # `make helm`, a prerequisite of `make test`
EXPECTED_EXIT = re.compile(r"#\s*exit\s+(\d+)\s*$")


@dataclass(frozen=True)
class Step:
    page: str
    line: str

    @property
    def words(self) -> list[str]:
        return shlex.split(self.line, comments=True)

    @property
    def expected_exit(self) -> int:
        match = EXPECTED_EXIT.search(self.line)
        return int(match.group(1)) if match else 0

    def __str__(self) -> str:
        return f"{self.page}: {self.line}"


def steps(page: str) -> list[Step]:
    """The page's `sh` blocks, a step per command (lines ending in a backslash continue)."""
    out, block, pending = [], False, ""
    for line in (DOCS / page).read_text().splitlines():
        if line.startswith("```"):
            block = line.strip() == "```sh"
            continue
        if not block or not line.strip():
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append(Step(page, (pending + line).strip()))
        pending = ""
    return out


def shell_words(words: list[str]) -> list[str]:
    """Words after the shell's pathname expansion (a pattern that matches nothing stays as it is)."""
    out: list[str] = []
    for word in words:
        matched = sorted(glob.glob(word)) if glob.has_magic(word) else []
        out += matched or [word]
    return out


def run(step: Step, mp: pytest.MonkeyPatch) -> int:
    command, *args = step.words
    if command == "export":
        for assignment in args:
            name, _, value = assignment.partition("=")
            mp.setenv(name, value)
        return 0
    if command == "lakehouse":
        name, *rest = shell_words(args)
        try:
            return run_job(COMMANDS[name], rest, {})
        except SystemExit as stop:  # argparse's own exits
            return int(stop.code or 0)
    if command == "helm":
        return subprocess.run([str(HELM), *args], cwd=REPO_ROOT, capture_output=True, check=False).returncode
    raise AssertionError(f"{step}: the docs test runs `export`, `lakehouse` and `helm` lines only")


def test_the_story_pages_hold_the_commands_this_test_runs():
    for page in STORY:
        assert steps(page), f"{page} has no sh block"
    words = [step.words[0] for page in STORY for step in steps(page)]
    assert set(words) == {"export", "lakehouse"}
    assert "helm" in {step.words[0] for step in steps("runbooks/deploy.md")}


@pytest.fixture(scope="module")
def story_home(spark, tmp_path_factory) -> Iterator[tuple[Path, pytest.MonkeyPatch]]:
    with fresh_home(tmp_path_factory, "docs") as (root, _, mp):
        mp.chdir(root)
        yield root, mp


@pytest.mark.parametrize("page", STORY)
def test_every_command_of_the_page_exits_as_it_says(story_home, page):
    _, mp = story_home
    for step in steps(page):
        assert run(step, mp) == step.expected_exit, str(step)


def test_the_story_ends_as_the_runbooks_say(story_home):
    """After the promotion runbook's forced promotion and rollback, the monitoring runbook's request is
    answered by version 2 (same features, config and code), whose whole gate then decides."""
    name = load_ml_config().registry.model_name
    records = registry.history_records(load_settings(), name)
    events = [(e["action"], str(e["to_version"]), bool(e["forced"])) for e in records]
    assert events[:5] == [
        ("register", "1", False),
        ("promote", "1", False),
        ("register", "2", False),
        ("promote", "2", True),
        ("rollback", "1", False),
    ]
    assert registry.alias_version(name, registry.CHAMPION) in {"1", "2"}


def test_the_deploy_runbook_renders_the_chart_for_each_environment():
    with pytest.MonkeyPatch.context() as mp:
        for step in steps("runbooks/deploy.md"):
            assert run(step, mp) == step.expected_exit, str(step)
