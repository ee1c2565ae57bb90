"""``syncd demo`` end to end: a subprocess, read through its sheet view's JSON endpoint.

The day itself is also checked without any server: it must exercise every worksheet of the
example mapping, including a deletion in each of Members, Invoices and Bookings, and with a
second location (``--spaces 2``) every worksheet in both.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from syncd.config.loading import load_settings
from syncd.sandbox.cobot.server import CobotSimulator
from syncd.sandbox.demo.command import LOCATIONS, demo_config, example_config_text, mapping_of
from syncd.sandbox.demo.day import SPEEDS, Day, Feed, parse_speed, play
from syncd.sandbox.demo.view import HIGHLIGHT_SECONDS, SheetWatcher, Tab
from syncd.sandbox.sheets.auth import write_key_file
from syncd.sandbox.sheets.server import SheetsEmulator
from tests.fixtures_cli import run_syncd
from tests.fixtures_daemon import EXAMPLE_CONFIG
from tests.fixtures_demo import EXAMPLE_TITLES, MakeDemo, deleted_rows, rows_everywhere, wait_for
from tests.fixtures_demo import make_demo as make_demo  # a fixture

DELETIONS = ("Members", "Invoices", "Bookings")


def test_bundled_example_is_config_example_yaml() -> None:
    assert example_config_text() == EXAMPLE_CONFIG.read_text(encoding="utf-8"), (
        "syncd/example_config.yaml (what `syncd demo` uses) drifted from config.example.yaml: "
        "run  cp config.example.yaml syncd/example_config.yaml"
    )


def test_demo_config_keeps_the_mapping_and_points_at_the_sandboxes(tmp_path: Path) -> None:
    label, mapping = mapping_of(None)
    config = demo_config(mapping, tmp_path, ["http://127.0.0.1:1"], "http://127.0.0.1:2", 3)
    assert label == "config.example.yaml (bundled)"
    assert list(config["sheets"]) == ["Members", "Invoices", "Bookings", "Check-ins"]
    assert config["cobot"]["base_url"] == "http://127.0.0.1:1"
    assert config["cobot"]["subdomain"] == LOCATIONS[0][0]
    assert config["google"]["api_endpoint"] == "http://127.0.0.1:2"
    assert config["webhook"]["listen"] == "127.0.0.1:3"
    assert config["state_dir"] == str(tmp_path / "state")


def test_two_locations_are_two_spaces_and_a_worksheet_narrowed_to_the_second(
    tmp_path: Path,
) -> None:
    (first, _, _), (second, name, _) = LOCATIONS
    _, mapping = mapping_of(None)
    urls = ["http://127.0.0.1:1", "http://127.0.0.1:4"]
    config = demo_config(mapping, tmp_path, urls, "http://127.0.0.1:2", 3)
    assert [(s["subdomain"], s["base_url"]) for s in config["cobot"]["spaces"]] == [
        (first, urls[0]),
        (second, urls[1]),
    ]
    narrowed = f"Members ({name})"
    assert list(config["sheets"]) == [*EXAMPLE_TITLES, narrowed]
    assert config["sheets"][narrowed]["spaces"] == [second]
    key = SheetsEmulator().create_service_account("http://127.0.0.1:2/token")
    write_key_file(tmp_path / "service-account.json", key)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    settings = load_settings(path)
    assert all(sheet.space_column == "Space" for sheet in settings.sheets)
    assert [s.title for s in settings.sheets if not s.holds(first)] == [narrowed]


def test_the_users_own_spaces_do_not_reach_the_demo(tmp_path: Path) -> None:
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["sheets"]["Members"]["spaces"] = ["co-up"]
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(config))
    _, mapping = mapping_of(path)
    demo = demo_config(mapping, tmp_path, ["http://127.0.0.1:1"], "http://127.0.0.1:2", 3)
    assert "spaces" not in demo["sheets"]["Members"]
    assert "spaces" in config["sheets"]["Members"]  # the user's file is left as it is


def test_own_config_lends_only_its_mapping(tmp_path: Path) -> None:
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["timezone"] = "Europe/Berlin"
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(config))
    label, mapping = mapping_of(path)
    assert label == str(path)
    assert set(mapping) == {"sheets", "timezone"}
    assert mapping["timezone"] == "Europe/Berlin"


def test_a_broken_mapping_is_reported_against_the_users_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        yaml.safe_dump(
            {"sheets": {"Members": {"resource": "membership", "events": ["created_membershp"]}}}
        )
    )
    result = run_syncd("demo", "--config", path, "--no-browser", "--port", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert f"{path}: sheets.Members.events: unknown Cobot event 'created_membershp'" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_the_day_touches_every_worksheet_and_deletes_in_three() -> None:
    sim = CobotSimulator(rate_limits=False)
    feed = Feed()
    assert play([Day(sim)], feed, lambda seconds: True, SPEEDS["high"])
    assert feed.snapshot()["finished"]
    assert len(sim.objects("membership")) == 3  # four joined, one left
    assert len(sim.objects("invoice")) == 3  # the duplicate was deleted
    assert len(sim.objects("booking")) == 1  # one was canceled
    check_ins = sim.objects("check_in")
    assert len(check_ins) == 3
    assert all(c["valid_until"] < "9999" for c in check_ins)
    assert [entry["clock"] for entry in feed.entries] == sorted(e["clock"] for e in feed.entries)


def test_a_second_location_has_its_own_day_in_one_clock_order() -> None:
    first, second = CobotSimulator(rate_limits=False), CobotSimulator(rate_limits=False, seed=2)
    feed = Feed()
    days = [Day(first, location="Downtown"), Day(second, location="Riverside", quiet=True)]
    assert play(days, feed, lambda seconds: True, SPEEDS["high"])
    clocks = [entry["clock"] for entry in feed.entries]
    assert clocks == sorted(clocks)
    places = {entry["text"].split(":")[0] for entry in feed.entries}
    assert places == {"Downtown", "Riverside"}
    # The quieter location touches every worksheet too, and deletes nothing.
    assert {kind: len(second.objects(kind)) for kind in ("membership", "invoice", "booking")} == {
        "membership": 2,
        "invoice": 2,
        "booking": 1,
    }
    assert len(second.objects("check_in")) == 2
    assert len(first.objects("membership")) == 3  # the first location's day as ever


def test_a_stop_request_ends_the_day_early() -> None:
    pauses = iter([True, True, False])
    feed = Feed()
    assert not play([Day(CobotSimulator())], feed, lambda seconds: next(pauses), 1.0)
    assert len(feed.entries) == 2 and not feed.finished


@pytest.mark.parametrize(("text", "factor"), [("high", SPEEDS["high"]), ("2.5", 2.5)])
def test_speed_accepts_names_and_factors(text: str, factor: float) -> None:
    assert parse_speed(text) == factor


@pytest.mark.parametrize("text", ["0", "-1", "warp", "1e9"])
def test_speed_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="expected a factor"):
        parse_speed(text)


def test_watcher_marks_new_changed_and_deleted_rows() -> None:
    emulator = SheetsEmulator()
    emulator.create_spreadsheet("s")
    emulator.add_sheet("s", "Bookings")
    headers = ["Title", "From", "Deleted", "URL"]
    emulator.set_values("s", "Bookings", [headers, ["Workshop", 45818.375, "", "u1"]])
    now = [100.0]
    tab = Tab("Bookings", {"From": "datetime"}, "URL", "Deleted")
    watcher = SheetWatcher(emulator, "s", [tab], clock=lambda: now[0])

    (sheet,) = watcher.state()
    assert sheet["headers"] == headers
    (row,) = sheet["rows"]
    assert row["cells"] == ["Workshop", "2025-06-10 09:00:00", "", "u1"]
    assert row["new"] and not row["deleted"]

    now[0] += HIGHLIGHT_SECONDS + 1
    (row,) = watcher.state()[0]["rows"]
    assert not row["new"] and row["changed"] == []

    emulator.set_values("s", "Bookings", [["Workshop", 45818.375, "2025-06-10T08:00:00Z"]], "A2")
    (row,) = watcher.state()[0]["rows"]
    assert row["deleted"] and row["changed"] == [2]
    assert watcher.state()[0]["deleted_column"] == 2


@pytest.mark.e2e
def test_demo_fills_every_worksheet_and_stops_when_the_duration_ends(make_demo: MakeDemo) -> None:
    run = make_demo("--duration", "15", "--speed", "high")
    run.wait_view()
    wait_for(lambda: rows_everywhere(run), timeout=30, what="rows in all four worksheets")
    wait_for(
        lambda: all(deleted_rows(run.sheets()[title]) for title in DELETIONS),
        timeout=30,
        what="a flagged deletion in Members, Invoices and Bookings",
    )
    sheets = run.sheets()
    (booking,) = deleted_rows(sheets["Bookings"])
    row = dict(zip(sheets["Bookings"]["headers"], booking, strict=True))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d 14:00:00", row["From"])  # a serial, shown as a date
    assert row["Comments"].startswith("=HYPERLINK(")  # written as text, never as a formula
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["Deleted"])

    assert run.wait(timeout=40) == 0, run.text()
    assert "Stopped." in run.text()
    assert run.leftovers() == []


@pytest.mark.e2e
def test_ctrl_c_stops_the_daemon_and_the_servers_and_removes_the_files(
    make_demo: MakeDemo,
) -> None:
    run = make_demo("--speed", "high")
    run.wait_view()
    wait_for(lambda: bool(run.sheets()["Members"]["rows"]), timeout=30, what="a first row")
    assert run.leftovers(), "the running daemon and its temporary directory should be seen"

    run.interrupt()
    assert run.wait(timeout=40) == 0, run.text()
    assert run.leftovers() == []
    with pytest.raises(OSError):
        run.state()


@pytest.mark.e2e
def test_two_locations_fill_every_worksheet_with_their_space(make_demo: MakeDemo) -> None:
    (first, _, _), (second, name, _) = LOCATIONS
    narrowed = f"Members ({name})"
    run = make_demo("--spaces", "2", "--duration", "20", "--speed", "high")
    run.wait_view()
    wait_for(
        lambda: rows_everywhere(run, (*EXAMPLE_TITLES, narrowed)),
        timeout=30,
        what="rows in all five worksheets",
    )

    def spaces_in(title: str) -> set[str]:
        sheet = run.sheets()[title]
        column = sheet["headers"].index("Space")
        return {row["cells"][column] for row in sheet["rows"]}

    wait_for(
        lambda: all(spaces_in(title) == {first, second} for title in EXAMPLE_TITLES),
        timeout=30,
        what="both locations' rows in every worksheet",
    )
    assert spaces_in(narrowed) == {second}
    assert "Locations:" in run.text()
    assert run.wait(timeout=40) == 0, run.text()
    assert run.leftovers() == []
