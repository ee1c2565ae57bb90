"""The demo's sheet view in a real browser: rows appear in every tab and deletions are flagged.

Set SYNCD_DEMO_SCREENSHOT=docs/demo.png to also save the picture README.md shows, taken on
the Invoices tab right after a duplicate invoice was deleted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.fixtures_browser import Chromium
from tests.fixtures_browser import browser as browser  # a fixture
from tests.fixtures_demo import EXAMPLE_TITLES, MakeDemo
from tests.fixtures_demo import make_demo as make_demo  # a fixture

pytestmark = pytest.mark.e2e

ROWS_IN_TAB = """(async (title) => {
  const tab = document.querySelector(`.tab[data-sheet="${title}"]`);
  if (!tab) return null;
  tab.click();
  await new Promise(requestAnimationFrame);
  const grid = document.getElementById("grid");
  if (grid.dataset.sheet !== title) return null;
  return [...grid.querySelectorAll("tbody tr")].map((tr) => ({
    deleted: tr.classList.contains("deleted"),
    flag: tr.querySelector("td.flag")?.textContent ?? "",
    cells: [...tr.querySelectorAll("td")].map((td) => td.textContent),
  }));
})"""


def rows_in_tab(title: str) -> str:
    return f"{ROWS_IN_TAB}({json.dumps(title)})"


async def test_the_view_shows_rows_in_every_tab_and_flags_deletions(
    make_demo: MakeDemo, browser: Chromium
) -> None:
    screenshot = os.environ.get("SYNCD_DEMO_SCREENSHOT")
    # At "fast" the payment of 14:00 is still highlighted when the duplicate invoice that
    # was created at 14:20 is deleted at 14:35: the picture shows all three highlights.
    run = make_demo("--speed", "fast" if screenshot else "high", "--duration", "90")
    if screenshot:
        await browser.send(
            "Emulation.setDeviceMetricsOverride",
            width=1440,
            height=600,
            deviceScaleFactor=1,
            mobile=False,
        )
    await browser.goto(run.wait_view() + "/")
    await browser.wait_for(
        "document.querySelectorAll('.tab').length === 4", timeout=20, what="the four tabs"
    )
    tabs = await browser.evaluate(
        "[...document.querySelectorAll('.tab')].map(t => t.dataset.sheet)"
    )
    assert tabs == list(EXAMPLE_TITLES)

    invoices = await browser.wait_for(
        f"{rows_in_tab('Invoices')}.then(rows => rows && rows.some(r => r.deleted) && rows)",
        timeout=40,
        what="the deleted duplicate invoice, flagged in Invoices",
    )
    if screenshot:
        await browser.screenshot(Path(screenshot))
    (duplicate,) = [row for row in invoices if row["deleted"]]
    assert duplicate["flag"].endswith("Z")  # the deletion time, ISO 8601 UTC
    assert duplicate["cells"][0]  # the row keeps the invoice's data

    await browser.wait_for(
        f"{rows_in_tab('Members')}.then(rows => rows && rows.some(r => r.deleted))",
        timeout=40,
        what="the member who left, flagged in Members",
    )
    for title in EXAMPLE_TITLES:
        rows = await browser.wait_for(
            f"{rows_in_tab(title)}.then(rows => rows && rows.length && rows)",
            timeout=20,
            what=f"rows in {title}",
        )
        assert all(any(cell for cell in row["cells"]) for row in rows), title
        if title == "Bookings":
            assert [row for row in rows if row["deleted"]], "the canceled booking is not flagged"

    assert await browser.evaluate("document.getElementById('offline').hidden")
    run.interrupt()
    assert run.wait(timeout=40) == 0, run.text()
    await browser.wait_for(
        "!document.getElementById('offline').hidden",
        timeout=10,
        what="the page to say the demo stopped",
    )
