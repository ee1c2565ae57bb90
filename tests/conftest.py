pytest_plugins = ["tests.fixtures_cobot", "tests.fixtures_sheets"]
