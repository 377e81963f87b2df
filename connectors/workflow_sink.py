"""Start one Upstash Workflow run per record, through QStash.

As qstash.md section 9.4 (3) describes, a QStash publish to the workflow endpoint without
``Upstash-Workflow-Sdk-Version`` is a first invocation: the workflow SDK serving the endpoint
creates the run (``wfr_...``) and continues it with its own step messages. The bridge therefore
publishes through ``/v2/batch`` exactly like a URL destination, with the same deduplication id,
so a replayed record never starts a second run while the id is remembered; and because the
request goes through QStash it is signed, so endpoints that verify signatures accept it.
"""

from __future__ import annotations

import httpx

from connectors.destinations import WorkflowDestination
from connectors.qstash_sink import QStashSink

__all__ = ["WorkflowSink"]


class WorkflowSink(QStashSink):
    """A :class:`QStashSink` whose destination is a workflow endpoint."""

    def __init__(
        self,
        dest: WorkflowDestination,
        *,
        base_url: str,
        token: str,
        client: httpx.Client,
        name: str,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(dest, base_url=base_url, token=token, client=client, name=name,
                         timeout=timeout)
