"""Workflow runs: trigger, finish or cancel, and the step bodies a run's messages carry."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from qstash_server.engine.messages import Message
from qstash_server.engine.publish_config import is_url, parse_publish_config
from qstash_server.engine.state import BrokerState
from qstash_server.engine.timing import BadValue, now_ms
from qstash_server.problems import ApiError

__all__ = ["WorkflowRunOps"]


class WorkflowRunOps(BrokerState):
    """Workflow runs."""

    def trigger_workflow(
        self, url: str, body: bytes, headers: Mapping[str, str], caller_ip: str | None
    ) -> dict[str, Any]:
        """``POST /v2/trigger/{url}``: start a run (idempotent per run id)."""
        if not is_url(url):
            raise ApiError(400, f"invalid workflow url {url!r}: expected an http(s) URL")
        run_id = headers.get("upstash-workflow-runid") or self._new_id("")
        if not run_id.startswith("wfr_"):
            run_id = "wfr_" + run_id
        merged = dict(headers)
        merged["upstash-workflow-runid"] = run_id
        merged["upstash-workflow-init"] = "true"
        merged["upstash-workflow-url"] = url
        merged["upstash-forward-upstash-workflow-sdk-version"] = "1"
        merged.setdefault("upstash-feature-set", "LazyFetch,InitialBody,WF_DetectTrigger")
        try:
            cfg = parse_publish_config(merged)
        except BadValue as exc:
            raise ApiError(400, str(exc)) from None
        status, _answer = self.accept(url, body, cfg, caller_ip=caller_ip)
        out: dict[str, Any] = {
            "workflowRunId": run_id,
            "workflowCreatedAt": self.runs[run_id]["createdAt"],
        }
        if status == 202:
            out["deduplicated"] = True
        return out

    def finish_run(self, run_id: str, cancel: bool) -> None:
        run = self.runs.get(run_id)
        if run is None:
            raise ApiError(404, f"workflow run {run_id} not found")
        run["state"] = "RUN_CANCELED" if cancel else "RUN_SUCCESS"
        run["finishedAt"] = now_ms()
        self.store.put("run", run_id, run)
        if cancel:
            for msg in list(self.messages.values()):
                if msg.workflow_run_id == run_id:
                    self._cancel(msg)

    def _workflow_body(self, run: dict[str, Any], msg: Message) -> bytes:
        is_init = msg.workflow.get("upstash-workflow-init", "").lower() == "true"
        if not is_init and not any(s["messageId"] == msg.id for s in run["steps"]):
            run["steps"].append({
                "messageId": msg.id,
                "body": base64.b64encode(msg.body).decode(),
                "callType": "step",
            })
            self.store.put("run", run["runId"], run)
        items = [{"messageId": run["initMessageId"], "body": run["initBody"], "callType": "step"}]
        items.extend(run["steps"])
        return json.dumps(items).encode()

    def run_document(self, run_id: str) -> dict[str, Any]:
        run = self.runs.get(run_id)
        if run is None:
            raise ApiError(404, "workflow run not found")
        return {
            "workflowRunId": run["runId"], "workflowUrl": run["url"],
            "workflowState": run["state"], "workflowRunCreatedAt": run["createdAt"],
            "steps": [{"messageId": run["initMessageId"], "body": run["initBody"],
                       "callType": "step"}, *run["steps"]],
        }
