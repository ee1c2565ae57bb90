"""Run ``syncd demo`` as a user does, as a subprocess, and read its sheet view's JSON.

``make_demo`` starts demos on a free port with their temporary directory under the test's
tmp_path (through TMPDIR), so a test can check that nothing is left behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_daemon import wait_until

VIEW_LINE = re.compile(r"Sheet view:\s+(http://127\.0\.0\.1:\d+)/")
EXAMPLE_TITLES = ("Members", "Invoices", "Bookings", "Check-ins")


@dataclass
class DemoRun:
    """One ``syncd demo`` process; ``output`` collects what it printed so far."""

    process: subprocess.Popen[str]
    tmpdir: Path
    output: list[str] = field(default_factory=list)
    url: str = ""

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            match = VIEW_LINE.search(line)
            if match:
                self.url = match.group(1)

    def text(self) -> str:
        return "".join(self.output)

    def wait_view(self, timeout: float = 30) -> str:
        wait_until(
            lambda: bool(self.url), timeout=timeout, what="the view's address", check=self._alive
        )
        return self.url

    def _alive(self) -> None:
        if self.process.poll() is not None and not self.url:
            raise AssertionError(f"demo exited with {self.process.returncode}:\n{self.text()}")

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/api/state", timeout=5) as response:
            return json.load(response)

    def sheets(self) -> dict[str, dict[str, Any]]:
        return {sheet["title"]: sheet for sheet in self.state()["sheets"]}

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def leftovers(self) -> list[str]:
        """Temporary files and processes the demo should have removed or stopped."""
        files = [p.name for p in self.tmpdir.iterdir() if p.name.startswith("syncd-demo-")]
        return files + _processes_mentioning(str(self.tmpdir))


MakeDemo = Callable[..., DemoRun]


@pytest.fixture
def make_demo(tmp_path: Path) -> Iterator[MakeDemo]:
    """Start ``syncd demo ARGS``; any demo still running after the test is killed."""
    runs: list[DemoRun] = []

    def make(*args: str) -> DemoRun:
        tmpdir = tmp_path / f"demo{len(runs)}"
        tmpdir.mkdir()
        process = subprocess.Popen(
            [sys.executable, "-m", "syncd", "demo", "--no-browser", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "TMPDIR": str(tmpdir), "PYTHONUNBUFFERED": "1"},
        )
        run = DemoRun(process, tmpdir)
        threading.Thread(target=run._read, daemon=True).start()
        runs.append(run)
        return run

    yield make
    # A demo left running by a failed test is stopped as Ctrl-C stops it, so that it stops its
    # daemon too (which runs in a session of its own and would outlive a killed demo).
    for run in runs:
        if run.process.poll() is None:
            run.interrupt()
    for run in runs:
        try:
            run.process.wait(40)
        except subprocess.TimeoutExpired:
            run.process.kill()
            run.process.wait(10)


def rows_everywhere(run: DemoRun, titles: tuple[str, ...] = EXAMPLE_TITLES) -> bool:
    sheets = run.sheets()
    return all(sheets[title]["rows"] for title in titles)


def deleted_rows(sheet: dict[str, Any]) -> list[list[str]]:
    return [row["cells"] for row in sheet["rows"] if row["deleted"]]


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                found.append(cmdline.parent.name)
        except OSError:
            continue
    return found


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """wait_until for a view that may not answer yet (a refused connection counts as no)."""

    def attempt() -> bool:
        try:
            return predicate()
        except OSError:
            return False

    wait_until(attempt, timeout=timeout, what=what, interval=0.25)
