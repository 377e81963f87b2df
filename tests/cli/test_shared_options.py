"""audit and doctor take the Kafka connection and the registry / Connect services the same way
(one declaration in migrator.cli.options): same names, flags, env vars, defaults and help."""

from __future__ import annotations

import click

from migrator.cli import audit, doctor

SHARED = ["bootstrap_servers", "kafka_config", "x_options", "schema_registry_url",
          "schema_registry_user", "schema_registry_password", "connect_url", "connect_user",
          "connect_password"]


def _options(command: click.Command) -> dict[str, tuple[object, ...]]:
    return {p.name: (tuple(p.opts), p.envvar, p.default, p.multiple, getattr(p, "help", None))
            for p in command.params if isinstance(p, click.Option) and p.name in SHARED}


def test_audit_and_doctor_declare_the_same_connection_options() -> None:
    mine, theirs = _options(audit.command), _options(doctor.command)
    assert sorted(mine) == sorted(SHARED), sorted(mine)
    assert mine == theirs
    assert all(help_ for *_, help_ in mine.values())  # every one says what it is
