"""`syncd status` and `syncd replay`: what an operator sees and does while the daemon runs."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from syncd.cli import main
from syncd.store.database import Store
from syncd.store.meta import LastError, LastWrite, ResyncRun, SafetyStop, SubscriptionCheck
from syncd.store.schema import DB_FILENAME
from tests.fixtures_cli import local_example_config, run_syncd, write_config
from tests.fixtures_daemon import WEBHOOK_SECRET, MakeDaemon, wait_until
from tests.test_e2e_pipeline import fast_daemon, settle

MEMBER_URL = "https://co-up.cobot.me/api/memberships/m{}"
INVOICE_URL = "https://co-up.cobot.me/api/invoices/i{}"


async def populate(state_dir: Path, now: float) -> None:
    """An inbox and meta as a daemon that ran a while would leave them."""
    async with Store.open(state_dir) as store:
        dead = await store.enqueue("created_membership", MEMBER_URL.format(1), "membership", {})
        await store.enqueue("created_membership", MEMBER_URL.format(2), "membership", {})
        await store.enqueue("created_invoice", INVOICE_URL.format(1), "invoice", {})
        # An error text from outside that quotes a secret must not be shown as it is.
        await store.dead_letter([dead], f"Cobot refused /cobot/{WEBHOOK_SECRET}/created_x (422)")
        meta = store.meta
        await meta.record_flush(
            {"Members": LastWrite(now - 65, 3)}, LastError(now - 30, "Google Sheets answered 503")
        )
        await meta.record_subscription_check(
            "co-up",
            SubscriptionCheck(now - 120, "subscriptions: 0 created, 0 deleted, 30 kept", []),
        )
        await meta.record_resync_run("full", "Members", ResyncRun(now - 3600, {"written": 12}))
        await meta.save_safety_stop("Invoices", SafetyStop(now - 7200, 9, 10, "lacks 9 of 10"))
        await meta.save_safety_stop("Members", None)  # cleared: nothing to show


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path, env = local_example_config(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def line_starting(text: str, prefix: str) -> str:
    [line] = [line for line in text.splitlines() if line.strip().startswith(prefix)]
    return line


def test_status_shows_inbox_dead_letters_writes_checks_and_resync(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(populate(tmp_path / "state", time.time()))

    code, out, _ = run(capsys, "status", "--config", str(config))

    assert code == 0
    assert line_starting(out, "Inbox:").startswith(
        "Inbox: 2 pending (2 due now, oldest waiting "
    ) and line_starting(out, "Inbox:").endswith("), 1 dead-lettered, 0 done (kept 7 days)")
    dead = line_starting(out, "#1 ")
    assert dead.startswith(f"  #1 created_membership {MEMBER_URL.format(1)}: 1 attempt(s)")
    assert line_starting(out, "last error:") == (
        "      last error: Cobot refused /cobot/***/created_x (422)"
    )
    assert line_starting(out, "Members ").endswith("(1m 5s ago), 3 row(s)")
    assert line_starting(out, "Invoices ").endswith("never")
    assert line_starting(out, "Subscriptions:").endswith(
        "(2m 0s ago): subscriptions: 0 created, 0 deleted, 30 kept"
    )
    assert "(1h 0m ago), written 12" in line_starting(out, "last_run.full.Members:")
    assert line_starting(out, "safety_stop.Invoices:").endswith(
        "ago), absent 9, rows 10, message lacks 9 of 10"
    )
    assert "safety_stop.Members" not in out
    assert line_starting(out, "Last error").endswith("(30s ago): Google Sheets answered 503")
    assert WEBHOOK_SECRET not in out

    code, out, _ = run(capsys, "status", "--json", "--config", str(config))
    status = json.loads(out)
    assert code == 0
    assert {k: status["inbox"][k] for k in ("pending", "due", "dead", "done")} == {
        "pending": 2,
        "due": 2,
        "dead": 1,
        "done": 0,
    }
    [letter] = status["dead_letters"]
    assert (letter["id"], letter["event"], letter["url"], letter["attempts"]) == (
        1,
        "created_membership",
        MEMBER_URL.format(1),
        1,
    )
    assert status["sheets"]["Members"]["rows"] == 3
    assert status["sheets"]["Invoices"] is None
    assert set(status["resync"]) == {"resync.last_run.full.Members", "resync.safety_stop.Invoices"}
    assert status["subscriptions"]["errors"] == []
    assert status["last_error"]["error"] == "Google Sheets answered 503"


def test_a_check_kept_before_checks_were_per_space_is_still_shown(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A version that served one space kept its check under a key naming no space."""
    state_dir = tmp_path / "state"

    async def create() -> None:
        async with Store.open(state_dir):
            pass

    asyncio.run(create())
    old = {"time": time.time() - 60, "summary": "subscriptions: 0 created, 0 deleted, 7 kept"}
    with sqlite3.connect(state_dir / DB_FILENAME) as db:
        db.execute(
            "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, 0)",
            ("subscriptions.last_check", json.dumps({**old, "errors": []})),
        )
    db.close()
    _, out, _ = run(capsys, "status", "--config", str(config))
    assert line_starting(out, "Subscriptions:").endswith("ago): " + old["summary"])

    async def check_again() -> None:
        async with Store.open(state_dir) as store:
            check = SubscriptionCheck(
                time.time(), "subscriptions: 1 created, 0 deleted, 6 kept", []
            )
            await store.meta.record_subscription_check("co-up", check)

    asyncio.run(check_again())
    _, out, _ = run(capsys, "status", "--json", "--config", str(config))
    status = json.loads(out)
    assert status["subscriptions"]["summary"] == "subscriptions: 1 created, 0 deleted, 6 kept"
    assert status["spaces"] == {"co-up": {"subscriptions": status["subscriptions"]}}


def test_status_needs_no_credentials_and_never_waits_for_the_writer(
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asyncio.run(populate(tmp_path / "state", time.time()))
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    writer = sqlite3.connect(tmp_path / "state" / DB_FILENAME, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # the daemon in the middle of a commit
    try:
        code, out, err = run(capsys, "status", "--config", str(config))
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert (code, err) == (0, "")
    assert "1 dead-lettered" in out


def test_status_and_replay_errors_are_one_clear_line(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "replay", "--all", "--config", str(config))
    assert (code, out) == (1, "")
    assert err == (
        f"syncd: error: There is no state database at {tmp_path / 'state' / DB_FILENAME}; "
        "check state_dir, or start the daemon once to create it.\n"
    )
    code, out, err = run(capsys, "status", "--config", str(config))  # an empty state
    assert (code, err) == (0, "")
    assert "(not created yet: the daemon has not run)" in out
    assert not (tmp_path / "state").exists()  # neither created one

    broken: dict[str, Any] = {"state_dir": None, "sheets": {}}
    path = write_config(tmp_path / "broken.yaml", broken)
    code, _, err = run(capsys, "status", "--config", str(path))
    assert code == 2
    lines = err.splitlines()
    assert [line.split(": ")[3] for line in lines] == ["state_dir", "sheets"]
    assert all(line.startswith(f"syncd: error: {path}: ") for line in lines)


def test_replay_moves_the_selected_dead_letters_back(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = tmp_path / "state"

    async def dead_letters() -> None:
        async with Store.open(state_dir) as store:
            ids = [
                await store.enqueue(event, url, kind, {})
                for event, url, kind in (
                    ("created_membership", MEMBER_URL.format(1), "membership"),
                    ("created_invoice", INVOICE_URL.format(1), "invoice"),
                    ("created_invoice", INVOICE_URL.format(2), "invoice"),
                    ("updated_invoice", INVOICE_URL.format(3), "invoice"),
                )
            ]
            await store.dead_letter(ids, "gave up")

    asyncio.run(dead_letters())
    replay = ["replay", "--config", str(config)]
    for usage in ([], ["--all", "--id", "1"], ["--event", "no_such_event"]):
        code, out, err = run(capsys, *replay, *usage)
        assert (code, out) == (2, ""), usage
        assert err.startswith("syncd: error: ") and err.count("\n") == 1, err

    assert run(capsys, *replay, "--id", "1", "99")[:2] == (
        0,
        "Replayed 1 dead-lettered event(s); the running daemon processes them within seconds "
        "(check with `syncd status`).\n",
    )
    assert run(capsys, *replay, "--event", "created_invoice")[1].startswith("Replayed 2 ")
    assert run(capsys, *replay, "--all")[1].startswith("Replayed 1 ")
    assert run(capsys, *replay, "--all")[:2] == (
        0,
        "No dead-lettered event matched; nothing was replayed.\n",
    )

    async def inbox() -> tuple[int, int, list[int]]:
        async with Store.open(state_dir, readonly=True) as store:
            stats = await store.stats()
            due = await store.claim_due(10)
        return stats.pending, stats.dead, [event.attempts for event in due]

    assert asyncio.run(inbox()) == (4, 0, [0, 0, 0, 0])


@pytest.mark.e2e
def test_dead_letters_are_shown_and_replayed_while_the_daemon_runs(
    make_daemon: MakeDaemon,
) -> None:
    daemon = fast_daemon(make_daemon, sync={"max_attempts": 1}).start()
    sim, emulator = daemon.cobot.sim, daemon.sheets.emulator
    # Google refuses the rows as invalid: permanent for these events, so they are dead-lettered.
    emulator.error_statuses, emulator.error_rate = [400], 1.0
    members = [sim.create("membership", emit=["created_membership"]) for _ in range(2)]
    settle(daemon)  # nothing pending: both events went straight to the dead letters

    result = run_syncd("status", "--config", daemon.config_path)
    assert result.returncode == 0, result.stderr
    assert "Inbox: 0 pending (0 due now), 2 dead-lettered" in result.stdout
    for member in members:
        url = sim.url_for("membership", member["id"])
        assert f" created_membership {url}: 1 attempt(s)" in result.stdout
    assert "Google Sheets refused the request (400)" in result.stdout
    assert "Subscriptions: checked " in result.stdout
    assert "created, 0 deleted, 0 kept" in result.stdout

    emulator.error_rate = 0.0
    replayed_from = time.time()
    result = run_syncd("replay", "--all", "--config", daemon.config_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Replayed 2 dead-lettered event(s)")
    wait_until(lambda: len(daemon.rows("Members")) == 2, timeout=20, what="replayed rows written")

    status = json.loads(run_syncd("status", "--json", "--config", daemon.config_path).stdout)
    assert (status["inbox"]["pending"], status["inbox"]["dead"]) == (0, 0)
    assert status["sheets"]["Members"]["rows"] == 2
    # The sheet's last write is the replay's.
    assert replayed_from <= status["sheets"]["Members"]["time"] <= time.time()
    assert status["sheets"]["Invoices"] is None
    assert "refused the request (400)" in status["last_error"]["error"]
    assert daemon.stop() == 0


@pytest.mark.e2e
def test_an_unshared_spreadsheet_pauses_without_spending_attempts(make_daemon: MakeDaemon) -> None:
    """A 403 needs a person: the events wait, keep their attempts, and go through once fixed."""
    daemon = fast_daemon(make_daemon, sync={"max_attempts": 1, "retry_max_seconds": 1.0}).start()
    sim, emulator = daemon.cobot.sim, daemon.sheets.emulator
    email = daemon.sheets.key_info["client_email"]
    emulator.error_statuses, emulator.error_rate = [403], 1.0
    sim.create("membership", emit=["created_membership"])
    sim.wait_deliveries_idle(30)

    def status() -> dict[str, Any]:
        return dict(
            json.loads(run_syncd("status", "--json", "--config", daemon.config_path).stdout)
        )

    wait_until(lambda: status()["last_error"] is not None, timeout=30, what="the refusal")
    wait_until(
        lambda: len([r for r in emulator.request_log if r.status == 403]) >= 3,
        timeout=30,
        what="the paused events to be tried again",
    )
    shown = status()
    assert (shown["inbox"]["pending"], shown["inbox"]["dead"]) == (1, 0)
    assert f"share the spreadsheet with {email} as Editor" in shown["last_error"]["error"]

    emulator.error_rate = 0.0
    wait_until(lambda: len(daemon.rows("Members")) == 1, timeout=30, what="the row after the fix")
    assert status()["inbox"]["dead"] == 0
    assert daemon.stop() == 0


@pytest.mark.e2e
def test_a_failed_subscription_check_is_shown(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon)
    daemon.cobot.sim.tokens.clear()  # Cobot knows the token no more
    daemon.start(wait_subscriptions=False)

    def check() -> dict[str, Any] | None:
        result = run_syncd("status", "--json", "--config", daemon.config_path)
        return json.loads(result.stdout)["subscriptions"]

    wait_until(lambda: check() is not None, timeout=20, what="the subscription check")
    failed = check()
    assert failed is not None and failed["summary"] is None
    [error] = failed["errors"]
    assert error.startswith("Cobot rejected the access token (401)")
    out = run_syncd("status", "--config", daemon.config_path).stdout
    assert "ago): the check failed\n  error: Cobot rejected the access token (401)" in out
    assert daemon.stop() == 0
