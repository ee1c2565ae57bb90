"""Store faults with the real daemon: never a 2xx for an event it did not store, and a damaged
or too-new state database stops `syncd run` with one clear line instead of a crash loop.

The receiver-level tests (test_receiver.py) cover full disks and read-only files with
injected faults; here another process really holds the database's write lock.
"""

from __future__ import annotations

import sqlite3

import pytest
import requests

from syncd.store.schema import DB_FILENAME, SCHEMA_VERSION
from tests.fixtures_daemon import Daemon, MakeDaemon
from tests.test_chaos import NO_RESYNC
from tests.test_e2e_pipeline import by_url, fast_daemon, settle

pytestmark = pytest.mark.e2e


def post(daemon: Daemon, url: str) -> requests.Response:
    return requests.post(
        f"{daemon.callback_base}/created_membership", json={"url": url}, timeout=30
    )


def stored_urls(daemon: Daemon) -> list[str]:
    with sqlite3.connect(daemon.state_dir / DB_FILENAME) as conn:
        return [url for (url,) in conn.execute("SELECT url FROM inbox ORDER BY id")]


def test_locked_database_answers_503_and_stores_nothing(make_daemon: MakeDaemon) -> None:
    daemon = fast_daemon(make_daemon, extra=NO_RESYNC).start()
    sim = daemon.cobot.sim
    refused = sim.create("membership", emit=False)
    accepted = sim.create("membership", emit=False)

    other = sqlite3.connect(daemon.state_dir / DB_FILENAME, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    try:
        answer = post(daemon, sim.url_for("membership", refused["id"]))
    finally:
        other.execute("ROLLBACK")
        other.close()

    assert answer.status_code == 503
    assert answer.headers["Retry-After"].isdigit()
    logs = daemon.logs()
    assert "not stored, answered 503 so Cobot retries" in logs
    assert "database is locked" in logs
    assert stored_urls(daemon) == []

    accepted_url = sim.url_for("membership", accepted["id"])
    assert post(daemon, accepted_url).status_code == 202
    settle(daemon)
    assert set(by_url(daemon.rows("Members"))) == {accepted_url}
    assert stored_urls(daemon) == [accepted_url]
    assert daemon.stop() == 0


def damage(daemon: Daemon) -> None:
    daemon.state_dir.mkdir(mode=0o700)
    (daemon.state_dir / DB_FILENAME).write_bytes(b"this is not a database at all\n" * 200)


def from_the_future(daemon: Daemon) -> None:
    daemon.state_dir.mkdir(mode=0o700)
    with sqlite3.connect(daemon.state_dir / DB_FILENAME) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")


@pytest.mark.parametrize(
    ("spoil", "says"),
    [
        (damage, "is damaged"),
        (from_the_future, "was written by a newer cobot-syncd"),
    ],
    ids=["damaged", "too new"],
)
def test_unusable_state_database_stops_run_with_one_line(
    make_daemon: MakeDaemon, spoil: object, says: str
) -> None:
    daemon = fast_daemon(make_daemon)
    spoil(daemon)  # type: ignore[operator]
    result = daemon.cli("run")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("syncd: error: The state database ")
    assert says in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
