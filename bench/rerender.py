"""The re-render: a column added to the config, filled for every existing row at the next start.

The Members worksheet is filled by ``syncd backfill`` with ``rerender_rows`` memberships (which
also fills the daemon's local copy); the daemon is stopped, one template column is added to the
config, and the daemon started again. Measured from that start until the daemon logs that the
worksheet was rendered again: Sheets requests, Cobot resource requests (the target is none),
the re-render's own duration, and the daemon's peak RSS.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from bench.report import Figure, secs
from bench.world import open_world, peak_rss_mb
from tests.fixtures_daemon import wait_until

#: The daemon's log line when a worksheet was rendered again (engine/rerender.py).
_RENDERED = re.compile(
    r"Members: the mapping changed; rendered (\d+) row\(s\) again .*: (\d+) written"
    r".*\((\d+\.\d+) s\)"
)
GREETING = {"template": "Hello {{ name }} ({{ address.company or '-' }})"}


def rerender(workdir: Path, rows: int, timeout: float) -> list[Figure]:
    section = f"re-render ({rows:,} rows, one column added)"

    def fill(world: object) -> None:
        sim = world.sim  # type: ignore[attr-defined]
        for index in range(rows):
            sim.create("membership", emit=False, name=f"Member {index}")

    with open_world(workdir, prepare=fill) as world:
        daemon = world.daemon
        filled = daemon.cli("backfill", "--sheet", "Members", timeout=timeout)
        if filled.returncode != 0:
            raise RuntimeError(f"backfill failed: {filled.stderr.strip()[-500:]}")
        assert daemon.stop() == 0
        daemon.sheet_config["Members"]["columns"]["Greeting"] = GREETING
        start = time.time()
        daemon.start(wait_subscriptions=False)
        wait_until(
            lambda: _RENDERED.search(daemon.log_path.read_text()) is not None,
            timeout=timeout,
            what="the re-render",
        )
        pid = daemon.process.pid  # type: ignore[union-attr]
        rss = peak_rss_mb(pid)
        calls = world.emulator.calls_since(start)
        cobot = [
            r for r in world.cobot_calls_since(start) if not r.path.startswith("/api/subscriptions")
        ]
        found = _RENDERED.search(daemon.log_path.read_text())
        assert found is not None
        rendered, written, seconds = int(found[1]), int(found[2]), float(found[3])
        greeted = sum(1 for row in daemon.rows("Members") if row.get("Greeting"))
    reads = sum(1 for c in calls if c.kind == "read")
    writes = sum(1 for c in calls if c.kind == "write")
    return [
        Figure(
            section,
            "rows filled",
            f"{greeted:,} of {rows:,} ({written:,} written of {rendered:,} rendered)",
            "all",
            greeted == rows,
        ),
        Figure(section, "Cobot requests for resources", str(len(cobot)), "0", not cobot),
        Figure(
            section,
            "Sheets requests since the start",
            f"{reads} read(s), {writes} write(s)",
        ),
        Figure(section, "duration of the re-render", secs(seconds)),
        Figure(section, "daemon peak RSS (VmHWM)", f"{rss:.0f} MiB", "< 200 MiB", rss < 200),
    ]
