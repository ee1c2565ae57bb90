"""Shared fixtures, and the ``e2e`` mark on every test that starts a real daemon."""

import pytest

pytest_plugins = [
    "tests.fixtures_cobot",
    "tests.fixtures_sheets",
    "tests.fixtures_daemon",
    "tests.fixtures_secrets",
]


#: Fixtures that start the real `syncd` subprocess: a test using one is end to end.
DAEMON_FIXTURES = {"make_daemon"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if DAEMON_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)
