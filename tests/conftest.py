"""Session fixtures: the real local stack (or an existing estate from the environment)."""

pytest_plugins = [
    "tests.fixtures.stack",
    "tests.fixtures.qstash",
    "tests.fixtures.endpoint",
    "tests.fixtures.faultproxy",
]
