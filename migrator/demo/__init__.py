"""The end-to-end demo: the main job on the local stack, as a user would run it.

It starts (or reuses) the local stack, seeds a sample estate, then runs the real commands in
order: ``audit`` -> ``plan`` (with an endpoint file pointing at a local receiver) -> ``apply``
-> ``apply`` again (nothing to do) -> ``bridge run`` -> the cutover of every consumer group
while a producer keeps writing: a real old consumer process per group (the sample's archive
connector is one already) runs, ``cutover prepare``, the old consumer stops, ``cutover switch``;
then one group is rolled back, its old consumer runs again, and it is switched again. It checks
per group that old consumer + endpoint processed every record exactly once, and that every
delivery was signed by QStash.
"""

from migrator.demo.receiver import Receiver
from migrator.demo.result import DemoResult, summary
from migrator.demo.scenario import run_demo

__all__ = ["DemoResult", "Receiver", "run_demo", "summary"]
