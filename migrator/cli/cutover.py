"""``migrator cutover``: hand each replaced consumer group over to its endpoint, and back.

The subcommands live by concept: the moves (:mod:`migrator.cli.cutover_moves`), the read-only
status and history (:mod:`migrator.cli.cutover_reading`) and the closing checks
(:mod:`migrator.cli.cutover_closing`); their shared options are
:mod:`migrator.cli.cutover_options`.
"""

from __future__ import annotations

import click

from migrator.cli.cutover_closing import finish, producers, verify
from migrator.cli.cutover_moves import prepare, rollback, shadow, switch
from migrator.cli.cutover_reading import history, status

__all__ = ["command"]


@click.group("cutover")
def command() -> None:
    """Switch consumer groups from their Kafka consumers to the bridge's endpoints, one group at
    a time, exactly (docs/cutover.md)."""


for _sub in (prepare, shadow, switch, rollback, status, history, verify, producers, finish):
    command.add_command(_sub)
