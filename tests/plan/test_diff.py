"""The action list per scenario, against plain-data live state (sqlmesh's test_plan_stages idea)."""

from __future__ import annotations

import pytest

from migrator.errors import ConflictingPlanError, DestructiveChangeError, MigratorError, ServiceError
from migrator.plan.actions import (
    CreateQueue,
    CreateSchedule,
    CreateUrlGroup,
    DeleteQueue,
    DeleteSchedule,
    NoOp,
    UpdateQueue,
    UpdateSchedule,
    UpdateUrlGroup,
)
from migrator.plan.apply import apply_actions
from migrator.plan.diff import check_conflicts, diff
from migrator.plan.explain import explain
from migrator.plan.spec import (
    Plan,
    QueueSpec,
    Resources,
    ScheduleSpec,
    SourceInfo,
    UrlGroupEndpointSpec,
    UrlGroupSpec,
)
from migrator.plan.state import LiveState, desired_state, reviewed

Q = QueueSpec(name="payments", parallelism=1)
G = UrlGroupSpec(name="clicks", endpoints=[
    UrlGroupEndpointSpec(name="a", url="https://a.example.com/"),
    UrlGroupEndpointSpec(name="b", url="https://b.example.com/"),
])
S = ScheduleSpec(schedule_id="connector-imp", destination="https://j.example.com/", cron="* * * * *")


def _plan(*, queues=(Q,), groups=(G,), schedules=(S,), reviewed_state=None) -> Plan:
    return Plan(
        generated_at="now", tool_version="t", source=SourceInfo(bootstrap_servers="x:1"),
        resources=Resources(queues=list(queues), url_groups=list(groups), schedules=list(schedules)),
        reviewed_state=reviewed_state,
    )


def _live(*specs) -> LiveState:
    plan = _plan(queues=[s for s in specs if isinstance(s, QueueSpec)],
                 groups=[s for s in specs if isinstance(s, UrlGroupSpec)],
                 schedules=[s for s in specs if isinstance(s, ScheduleSpec)])
    return LiveState(desired_state(plan))


def test_empty_live_state_creates_everything_in_dependency_order() -> None:
    result = diff(_plan(), LiveState())
    assert [type(a) for a in result.actions] == [CreateQueue, CreateUrlGroup, CreateSchedule]
    assert explain(result)[-1] == "3 to create, 0 to update, 0 to delete, 0 unchanged."


def test_unchanged_plan_is_all_no_ops_and_says_so() -> None:
    result = diff(_plan(), _live(Q, G, S))
    assert all(isinstance(a, NoOp) for a in result.actions) and not result.changes
    assert explain(result)[-1].startswith("Nothing to do")


def test_changed_endpoint_updates_only_that_endpoint() -> None:
    new = G.model_copy(update={"endpoints": [G.endpoints[0],
                       UrlGroupEndpointSpec(name="b", url="https://b2.example.com/")]})
    result = diff(_plan(groups=[new]), _live(Q, G, S))
    (change,) = result.changes
    assert isinstance(change, UpdateUrlGroup)
    assert [e.url for e in change.add] == ["https://b2.example.com/"]
    assert [e.url for e in change.remove] == ["https://b.example.com/"]


def test_queue_and_schedule_updates_name_what_changed() -> None:
    q2 = Q.model_copy(update={"parallelism": 2})
    s2 = S.model_copy(update={"cron": "*/5 * * * *"})
    result = diff(_plan(queues=[q2], schedules=[s2]), _live(Q, G, S))
    kinds = {type(a) for a in result.changes}
    assert kinds == {UpdateQueue, UpdateSchedule}
    sched = next(a for a in result.changes if isinstance(a, UpdateSchedule))
    assert sched.changed == ("cron",)


def test_extra_live_resources_are_kept_unless_pruned_and_prune_needs_allow() -> None:
    extra_q, extra_s = QueueSpec(name="old"), S.model_copy(update={"schedule_id": "old-s"})
    live = _live(Q, G, S, extra_q, extra_s)
    kept = diff(_plan(), live)
    assert kept.unmanaged == ["queue:old", "schedule:old-s"] and not kept.changes
    with pytest.raises(DestructiveChangeError, match="queue:old"):
        diff(_plan(), live, prune=True)
    pruned = diff(_plan(), live, prune=True, allow_destructive=True)
    assert [type(a) for a in pruned.changes] == [DeleteSchedule, DeleteQueue]
    assert pruned.actions[0] == DeleteSchedule("old-s")  # schedules go first


def test_prune_respects_the_prefix() -> None:
    plan = _plan().model_copy(update={"prefix": "pay"})
    result = diff(plan, _live(Q, QueueSpec(name="other")), prune=True, allow_destructive=True)
    assert not any(a.kind == "delete" for a in result.actions)


def test_conflict_when_live_moved_since_review_but_not_after_own_apply() -> None:
    at_review = _live(G.model_copy(update={"endpoints": G.endpoints[:1]}))
    plan = _plan(reviewed_state=reviewed(at_review, "http://q"))
    # someone else changed the URL group in between: conflict, named
    moved = _live(G.model_copy(update={"endpoints": [
        UrlGroupEndpointSpec(name="a", url="https://evil.example.com/")]}))
    with pytest.raises(ConflictingPlanError) as caught:
        check_conflicts(plan, moved)
    # it says what moved: the resource, and what it holds now
    assert "url_group:clicks (fingerprint " in str(caught.value)
    assert "at review; now endpoints a=https://evil.example.com/)" in str(caught.value)
    # someone created the queue the plan wants, differently: conflict
    with pytest.raises(ConflictingPlanError, match=r"queue:payments \(absent at review; now "
                                                    r"parallelism 3\)"):
        check_conflicts(plan, _live(G.model_copy(update={"endpoints": G.endpoints[:1]}),
                                    Q.model_copy(update={"parallelism": 3})))
    check_conflicts(plan, at_review)  # unchanged: fine
    check_conflicts(plan, _live(Q, G, S))  # already as wanted (re-run after apply): fine
    check_conflicts(plan, _live(Q, G, S, QueueSpec(name="new")))  # unmanaged newcomer, no prune
    with pytest.raises(ConflictingPlanError, match="queue:new"):
        check_conflicts(plan, _live(Q, G, S, QueueSpec(name="new")), prune=True)


class FakeAdmin:
    """Records calls; fails the n-th write with a ServiceError."""

    def __init__(self, fail_at: int | None = None, *, interrupt: bool = False) -> None:
        self.calls: list[str] = []
        self.fail_at = fail_at
        self.interrupt = interrupt

    def _do(self, call: str) -> None:
        if self.fail_at is not None and len(self.calls) + 1 == self.fail_at:
            self.fail_at = None
            if self.interrupt:
                raise KeyboardInterrupt
            raise ServiceError(f"QStash refused to {call}: 412")
        self.calls.append(call)

    def upsert_queue(self, spec: QueueSpec) -> None:
        self._do(f"upsert_queue {spec.name}")

    def delete_queue(self, name: str) -> None:
        self._do(f"delete_queue {name}")

    def upsert_endpoints(self, group: str, endpoints: list[UrlGroupEndpointSpec]) -> None:
        self._do(f"upsert_endpoints {group} {[e.url for e in endpoints]}")

    def remove_endpoints(self, group: str, endpoints: list[dict[str, str]]) -> None:
        self._do(f"remove_endpoints {group} {endpoints}")

    def url_group(self, name: str) -> UrlGroupSpec:
        return G

    def delete_url_group(self, name: str) -> None:
        self._do(f"delete_url_group {name}")

    def create_schedule(self, spec: ScheduleSpec) -> None:
        self._do(f"create_schedule {spec.schedule_id}")

    def delete_schedule(self, schedule_id: str) -> None:
        self._do(f"delete_schedule {schedule_id}")


def test_failure_midway_reports_applied_failed_and_not_applied() -> None:
    actions = diff(_plan(), LiveState()).actions
    report = apply_actions(FakeAdmin(fail_at=2), actions)
    assert [(o.resource, o.status) for o in report.outcomes] == [
        ("queue:payments", "applied"), ("url_group:clicks", "failed"),
        ("schedule:connector-imp", "not applied")]
    assert report.lines()[-1] == "Applied 1, failed 1, not applied 1, unchanged 0."
    assert isinstance(report.failed and MigratorError("x"), MigratorError)


def test_ctrl_c_midway_still_reports_what_was_and_was_not_applied() -> None:
    actions = diff(_plan(), LiveState()).actions
    admin = FakeAdmin(fail_at=2, interrupt=True)
    report = apply_actions(admin, actions)
    assert report.interrupted and admin.calls == ["upsert_queue payments"]
    assert [(o.resource, o.status) for o in report.outcomes] == [
        ("queue:payments", "applied"), ("url_group:clicks", "failed"),
        ("schedule:connector-imp", "not applied")]
    failed = report.failed
    assert failed is not None and "interrupted" in (failed.error or "")


def test_url_group_update_adds_before_removing() -> None:
    new = G.model_copy(update={"endpoints": [G.endpoints[0],
                       UrlGroupEndpointSpec(name="b", url="https://b2.example.com/")]})
    admin = FakeAdmin()
    apply_actions(admin, diff(_plan(groups=[new]), _live(Q, G, S)).actions)
    assert admin.calls == ["upsert_endpoints clicks ['https://b2.example.com/']",
                           "remove_endpoints clicks [{'url': 'https://b.example.com/'}]"]
