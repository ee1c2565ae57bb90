pytest_plugins = [
    "tests.fixtures_cobot",
    "tests.fixtures_sheets",
    "tests.fixtures_daemon",
    "tests.fixtures_secrets",
]
