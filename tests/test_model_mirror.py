"""Model-based: whatever happens, the Members worksheet ends as Cobot's current state.

A hypothesis state machine plays the real `syncd run` (and `syncd backfill`) against both
emulators: members created, renamed and deleted in Cobot, backfills (also racing a webhook),
Sheets and Cobot failures the daemon retries, SIGKILLs of the daemon mid-flush, and a person's
edits (sorting rows, inserting and moving columns, deleting or renaming a daemon column, a
totals row, a URL typed by hand). After every step and a quiet period it checks, with rules of
its own rather than the product's mapping code: exactly one row per resource, the cells checked
equal Cobot's state, `Deleted` set exactly on deleted resources, and the person's cells untouched.

CI runs a few short examples; ``SYNCD_MODEL_PROFILE=long`` runs many longer ones.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from syncd.sheets.a1 import column_letters
from tests.fixtures_daemon import Daemon, MakeDaemon, example_sheets, wait_until
from tests.test_e2e_pipeline import fast_daemon, settle

pytestmark = pytest.mark.e2e

TITLE = "Members"
NOTES = "Notes"
TOTAL = "TOTAL"
#: What a person renames the daemon's Email column to: from then on it is their column.
RENAMED = "Email (mine)"
PROFILE = os.environ.get("SYNCD_MODEL_PROFILE", "ci")
PROFILES = {
    # No shrinking in CI: a failing example is reported as found, in seconds, not minutes.
    "ci": settings(
        max_examples=5,
        stateful_step_count=10,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    ),
    "long": settings(
        max_examples=40,
        stateful_step_count=25,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    ),
}
MAX_BACKFILLS = 4
T = TypeVar("T")
NAMES = st.text(alphabet="abcdefghij XYZ", min_size=1, max_size=10).map(str.strip).filter(bool)


def resource_of(url: str) -> tuple[str, int | None, str]:
    """The test's own rule for when two URLs name one resource."""
    parts = urlsplit(str(url).strip())
    return (parts.hostname or "").lower(), parts.port, parts.path.rstrip("/")


def logged(method: Callable[..., T]) -> Callable[..., T]:
    """Record a step (with its arguments) before running it."""

    @functools.wraps(method)
    def step(self: Mirror, **arguments: Any) -> T:
        self.steps.append(f"{method.__name__}({arguments})")
        return method(self, **arguments)

    return step


class Mirror(RuleBasedStateMachine):
    members = Bundle("members")

    def __init__(self, make_daemon: MakeDaemon) -> None:
        super().__init__()
        self.daemon: Daemon = fast_daemon(
            make_daemon, sheet_config={TITLE: example_sheets()[TITLE]}
        ).start()
        self.sim = self.daemon.cobot.sim
        self.emulator = self.daemon.sheets.emulator
        self.spreadsheet = self.daemon.sheets.spreadsheet_id
        #: Member id -> the name Cobot holds (or held when it was deleted).
        self.names: dict[str, str] = {}
        self.deleted: set[str] = set()
        #: Member id -> what the person wrote in the Notes column of its row.
        self.notes: dict[str, str] = {}
        self.totals = False
        #: Once the person renamed the Email column: resource -> the cell it held then.
        self.renamed: dict[tuple[str, int | None, str], Any] | None = None
        self.backfills = 0
        #: What happened so far, for the failure message: a failing example's timing is not
        #: replayed exactly, so hypothesis may not be able to print the steps itself.
        self.steps: list[str] = []

    def teardown(self) -> None:
        if self.daemon.process is not None:
            self.daemon.kill()

    # -- the sheet as a person sees it -------------------------------------------------

    def grid(self) -> list[list[Any]]:
        return [list(row) for row in self.emulator.values(self.spreadsheet, TITLE)]

    def header(self) -> list[str]:
        return [str(cell or "") for cell in self.grid()[0]]

    def during_next_write(self, edit: Callable[[], None]) -> None:
        """Make ``edit`` land while the daemon's next write waits for its retry (Google
        answered 503), as a person's sort can, by sending a webhook that makes it write."""

        def edit_and_fail() -> None:
            edit()
            self.emulator.fail_next(1, 503)

        self.emulator.on_next("values:batchUpdate", edit_and_fail)
        if live := self.live():
            self.sim.update("membership", live[0], emit="updated_membership_details")

    def row_of(self, member: str) -> int | None:
        """The 1-based row holding the member's URL, if any."""
        wanted = resource_of(self.sim.url_for("membership", member))
        column = self.header().index("URL")
        for number, row in enumerate(self.grid(), start=1):
            if number > 1 and column < len(row) and resource_of(row[column] or "") == wanted:
                return number
        return None

    def write(self, row: int, column: int, values: list[list[Any]]) -> None:
        start = f"{column_letters(column + 1)}{row}"
        self.emulator.set_values(self.spreadsheet, TITLE, values, start=start)

    def grow(self, dimension: str, length: int) -> None:
        request = {"sheetId": self.sheet_id, "dimension": dimension, "length": length}
        self.emulator.apply(self.spreadsheet, [{"appendDimension": request}])

    # -- set-up --------------------------------------------------------------------------

    @initialize(target=members)
    def first_member_and_a_notes_column(self) -> str:
        member = self.sim.create("membership", name="First")
        self.names[member["id"]] = "First"
        settle(self.daemon)
        sheet = self.daemon.sheets.client().open_by_key(self.spreadsheet).worksheet(TITLE)
        self.sheet_id = int(sheet.id)
        width = len(self.header())
        self.grow("COLUMNS", 1)
        self.write(1, width, [[NOTES]])
        return str(member["id"])

    # -- Cobot ---------------------------------------------------------------------------

    @rule(target=members, name=NAMES)
    @logged
    def create(self, name: str) -> str:
        member = self.sim.create("membership", name=name)
        self.names[member["id"]] = name
        return str(member["id"])

    @rule(member=members, name=NAMES)
    @logged
    def rename(self, member: str, name: str) -> None:
        if member not in self.deleted:
            self.sim.update("membership", member, name=name)
            self.names[member] = name

    @rule(member=consumes(members))
    @logged
    def delete(self, member: str) -> None:
        if member not in self.deleted:
            self.sim.delete("membership", member)
            self.deleted.add(member)

    @rule(status=st.sampled_from([500, 503]), count=st.integers(1, 3))
    @logged
    def cobot_fails(self, status: int, count: int) -> None:
        self.sim.fail_next(count, status=status)
        self.sim.emit("updated_membership_details", self.sim.url_for("membership", self.any()))

    def any(self) -> str:
        return next(iter(self.names))

    # -- the daemon's other writers and its failures ---------------------------------------

    def may_list(self) -> bool:
        """Cobot allows 6 membership listings a minute, shared by the daemon and backfills:
        a few backfills per example keep it from waiting for the next minute."""
        return self.backfills < MAX_BACKFILLS

    @precondition(may_list)
    @rule()
    @logged
    def backfill(self) -> None:
        self.backfills += 1
        result = self.daemon.cli("backfill", "--sheet", TITLE)
        assert result.returncode == 0, result.stderr

    @precondition(may_list)
    @rule(member=members, name=NAMES)
    @logged
    def backfill_racing_a_webhook(self, member: str, name: str) -> None:
        self.backfills += 1
        self.daemon.write_config()
        command = [sys.executable, "-m", "syncd", "backfill", "--config"]
        backfill = subprocess.Popen(
            [*command, str(self.daemon.config_path), "--sheet", TITLE],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.daemon.env,
        )
        held = self.sim.answers_held
        self.sim.slow_answers = {"/api/memberships": 1.0}  # listed before the rename lands
        try:
            wait_until(lambda: self.sim.answers_held > held, timeout=30, what="the listing")
            self.rename(member=member, name=name)
            _, err = backfill.communicate(timeout=120)
        finally:
            self.sim.slow_answers = {}
        assert backfill.returncode == 0, err

    @rule(status=st.sampled_from([429, 500, 503]), count=st.integers(1, 3))
    @logged
    def sheets_fail(self, status: int, count: int) -> None:
        self.emulator.fail_next(count, status)
        if live := self.live():
            member = live[0]
            self.sim.update("membership", member, name=self.names[member] + " Z")
            self.names[member] += " Z"

    def live(self) -> list[str]:
        return [m for m in self.names if m not in self.deleted]

    @rule(name=NAMES)
    @logged
    def killed_mid_flush(self, name: str) -> None:
        """Webhooks acknowledged (in the inbox), then SIGKILL before or while they flush."""
        for member in self.live()[:3]:
            self.sim.update("membership", member, name=name)
            self.names[member] = name
        self.sim.wait_deliveries_idle(20)
        self.daemon.kill()
        self.daemon.start(wait_subscriptions=False)

    # -- a person's edits ----------------------------------------------------------------

    @rule(member=members, note=NAMES)
    @logged
    def annotate(self, member: str, note: str) -> None:
        row = self.row_of(member)
        if row is not None:
            self.write(row, self.header().index(NOTES), [[note]])
            self.notes[member] = note

    @rule(descending=st.booleans())
    @logged
    def sort_by_name(self, descending: bool) -> None:
        self.during_next_write(lambda: self.sort(descending))

    def sort(self, descending: bool) -> None:
        """Sort the rows holding a URL by name, among the positions they hold."""
        grid = self.grid()
        width = max(len(row) for row in grid)
        url, name = grid[0].index("URL"), grid[0].index("Name")
        numbers = [n for n in range(1, len(grid)) if url < len(grid[n]) and grid[n][url]]
        rows = [grid[n] + [None] * (width - len(grid[n])) for n in numbers]
        rows.sort(key=lambda row: str(row[name] or ""), reverse=descending)
        block = [row + [None] * (width - len(row)) for row in grid[1:]]
        for number, row in zip(numbers, rows, strict=True):
            block[number - 1] = row
        self.write(2, 0, [["" if cell is None else cell for cell in row] for row in block])

    @rule(data=st.data())
    @logged
    def insert_column(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, 40)) % (len(self.header()) + 1)
        span = {"sheetId": self.sheet_id, "dimension": "COLUMNS"}
        request = {"range": {**span, "startIndex": index, "endIndex": index + 1}}
        self.during_next_write(
            lambda: self.emulator.apply(self.spreadsheet, [{"insertDimension": request}])
        )

    @rule(data=st.data())
    @logged
    def move_column(self, data: st.DataObject) -> None:
        """Cut a column and insert it elsewhere, values and all."""
        grid = self.grid()
        width = len(self.header())
        source, target = (data.draw(st.integers(0, 40)) % width for _ in range(2))
        values = [[row[source] if source < len(row) else None] for row in grid]
        span = {"sheetId": self.sheet_id, "dimension": "COLUMNS"}
        self.emulator.apply(
            self.spreadsheet,
            [
                {
                    "deleteDimension": {
                        "range": {**span, "startIndex": source, "endIndex": source + 1}
                    }
                },
                {
                    "insertDimension": {
                        "range": {**span, "startIndex": target, "endIndex": target + 1}
                    }
                },
            ],
        )
        self.write(1, target, [["" if cell is None else cell for cell in row] for row in values])

    @precondition(lambda self: bool(self.live()))  # a live member's webhook repairs it
    @rule(column=st.sampled_from(["Email", "Deleted", "Phone"]))
    @logged
    def delete_daemon_column(self, column: str) -> None:
        index = self.header().index(column)
        span = {"sheetId": self.sheet_id, "dimension": "COLUMNS"}
        request = {"range": {**span, "startIndex": index, "endIndex": index + 1}}
        self.emulator.apply(self.spreadsheet, [{"deleteDimension": request}])
        self.sim.update("membership", self.live()[0], emit="updated_membership_details")

    @precondition(lambda self: bool(self.live()) and self.renamed is None)
    @rule()
    @logged
    def rename_daemon_column(self) -> None:
        """The person renames Email: the daemon makes its own again and leaves theirs alone."""
        grid = self.grid()
        index = self.header().index("Email")
        url = self.header().index("URL")
        self.renamed = {
            resource_of(row[url]): row[index] if index < len(row) else None
            for row in grid[1:]
            if url < len(row) and row[url]
        }
        self.write(1, index, [[RENAMED]])
        self.sim.update("membership", self.live()[0], emit="updated_membership_details")

    @rule()
    @logged
    def totals_row(self) -> None:
        if self.totals:
            return
        grid = self.grid()
        self.grow("ROWS", 1)
        self.write(len(grid) + 1, self.header().index(NOTES), [[TOTAL]])
        self.totals = True

    @rule(member=members)
    @logged
    def url_typed_by_hand(self, member: str) -> None:
        """A person re-types a row's URL with the other scheme and a trailing slash."""
        row = self.row_of(member)
        if row is not None:
            url = self.sim.url_for("membership", member)
            typed = "https://" + url.removeprefix("http://") + "/"
            self.write(row, self.header().index("URL"), [[typed]])

    # -- the check -----------------------------------------------------------------------

    @invariant()
    def the_sheet_mirrors_cobot(self) -> None:
        settle(self.daemon, timeout=90)
        try:
            self.check()
        except AssertionError as exc:
            steps = "\n  ".join(self.steps)
            raise AssertionError(f"{exc}\nsteps:\n  {steps}") from None

    def check(self) -> None:
        grid = self.grid()
        header = [str(cell or "") for cell in grid[0]]
        column = {name: header.index(name) for name in ("URL", "Name", "Email", "Deleted", NOTES)}

        def cell(row: list[Any], name: str) -> Any:
            index = column[name]
            value = row[index] if index < len(row) else None
            return "" if value is None else value

        rows: dict[tuple[str, int | None, str], list[Any]] = {}
        totals = 0
        for row in grid[1:]:
            if not cell(row, "URL"):
                assert not any(cell(row, name) for name in ("Name", "Email", "Deleted"))
                totals += cell(row, NOTES) == TOTAL
                continue
            key = resource_of(cell(row, "URL"))
            assert key not in rows, f"two rows for {cell(row, 'URL')}"
            rows[key] = row
        assert totals == int(self.totals), "the totals row was overwritten or moved into"
        expected = {resource_of(self.sim.url_for("membership", m)): m for m in self.names}
        assert set(rows) == set(expected)
        for key, member in expected.items():
            row = rows[key]
            assert cell(row, "Name") == self.names[member], member
            assert (cell(row, "Deleted") != "") == (member in self.deleted), member
            if member not in self.deleted:
                assert cell(row, "Email") == self.sim.get("membership", member)["email"]
            assert cell(row, NOTES) == self.notes.get(member, ""), "a person's cell changed"
        if self.renamed is not None:
            mine = header.index(RENAMED)
            for key, row in rows.items():
                kept = self.renamed.get(key)
                held = row[mine] if mine < len(row) else None
                assert (held or "") == (kept or ""), "the person's renamed column was written"


@pytest.mark.timeout(300 if PROFILE == "ci" else 4 * 3600)
def test_the_sheet_stays_a_mirror(make_daemon: MakeDaemon) -> None:
    run_state_machine_as_test(lambda: Mirror(make_daemon), settings=PROFILES[PROFILE])
