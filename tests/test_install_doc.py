"""docs/install.md works as written: its `syncd` commands run, its proxy samples fit the daemon.

Every `syncd` line of the guide's shell blocks is run against config.example.yaml made local
(state and credentials in a temporary directory), except the few that need Cobot or Google,
which are listed here with the reason. A new command in the guide is run automatically; a
listed one that left the guide fails the test, so the list cannot go stale.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from syncd.cli import main
from syncd.intake.receiver import MAX_BODY_BYTES
from syncd.store.database import Store
from tests.fixtures_cli import local_example_config
from tests.fixtures_daemon import EXAMPLE_CONFIG, REPO

GUIDE = REPO / "docs" / "install.md"
CONFIG = "/etc/cobot-syncd/config.yaml"
CREDENTIALS = "/etc/cobot-syncd"
#: Guide lines that cannot run here, and why.
NEEDS_NETWORK = {
    f"CREDENTIALS_DIRECTORY={CREDENTIALS} syncd check-config --config {CONFIG}": (
        "asks Cobot and Google whether the credentials work"
    ),
    f"CREDENTIALS_DIRECTORY={CREDENTIALS} syncd backfill --config {CONFIG}": (
        "reads Cobot's lists and writes the spreadsheet"
    ),
    f"CREDENTIALS_DIRECTORY={CREDENTIALS} syncd subscriptions list --config {CONFIG}": (
        "asks Cobot"
    ),
}


#: How the first output line of each runnable command starts (for an empty inbox).
OUTPUT_STARTS = {
    "check-config": "configuration is valid",
    "status": "State database: ",
    "replay": "No dead-lettered event matched",
}


def fenced_blocks(language: str) -> list[str]:
    text = GUIDE.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.M | re.S)


def syncd_lines() -> list[str]:
    """The guide's `syncd` commands, continuation lines joined, comments dropped."""
    lines = []
    for block in fenced_blocks("sh"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            program = next((w for w in words if "=" not in w), None)
            if program == "syncd":
                lines.append(" ".join(words))
    return lines


def test_every_syncd_line_runs_or_is_listed_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = syncd_lines()
    assert [line for line in NEEDS_NETWORK if line not in lines] == []
    config, env = local_example_config(tmp_path)
    asyncio.run(Store.open(tmp_path / "state").close())  # as the first start of the daemon
    runnable = [line for line in lines if line not in NEEDS_NETWORK]
    commands = {words[words.index("syncd") + 1] for words in map(str.split, runnable)}
    assert {"--help", "check-config", "status", "replay"} <= commands

    for line in runnable:
        words = line.replace(CONFIG, str(config)).split()
        with monkeypatch.context() as patch:
            for word in words[: words.index("syncd")]:
                name, _, value = word.partition("=")
                patch.setenv(name, env[name] if value == CREDENTIALS else value)
            try:
                code = main(words[words.index("syncd") + 1 :])
            except SystemExit as exit:  # --help
                code = exit.code
        out, err = capsys.readouterr()
        assert (code, err) == (0, ""), line
        command = words[words.index("syncd") + 1]
        if "--help" in words:
            assert out.startswith("usage: syncd"), line
        elif "--json" in words:
            assert json.loads(out)["inbox"]["dead"] == 0
        else:
            assert OUTPUT_STARTS[command] in out.splitlines()[0], line


def test_proxy_samples_forward_the_public_path_unchanged_with_the_body_limit() -> None:
    example = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    assert example["webhook"]["public_url"] == "https://sync.example.org/cobot"
    listen = example["webhook"]["listen"]
    assert MAX_BODY_BYTES == 64 * 1024

    [nginx] = fenced_blocks("nginx")
    assert "server_name sync.example.org;" in nginx
    location = re.search(r"location /cobot/ \{(.*?)\}", nginx, re.S)
    assert location is not None
    # proxy_pass without a URI part passes the request path on unchanged.
    assert re.search(rf"^\s*proxy_pass http://{listen};", location.group(1), re.M)
    assert re.search(r"^\s*client_max_body_size 64k;", location.group(1), re.M)
    assert re.search(r"^\s*access_log off;", location.group(1), re.M)
    assert "rewrite" not in nginx

    [caddy] = fenced_blocks("caddy")
    assert caddy.startswith("sync.example.org {")
    assert re.search(r"^\thandle /cobot/\* \{", caddy, re.M)
    assert re.search(r"^\t\t\tmax_size 64KiB$", caddy, re.M)
    assert re.search(rf"^\t\treverse_proxy {listen}$", caddy, re.M)
    assert "handle_path" not in caddy and "strip_prefix" not in caddy and "log" not in caddy
