"""The toolkit's exceptions: one root, a shallow tree.

    MigratorError                      every error the toolkit raises on purpose
    ├── ConfigError                    bad input: a file, a flag, a value (exit 3)
    ├── StackError                     the local stack cannot start or is missing a tool (exit 8)
    ├── ExtraNotInstalledError         the settings need an optional extra not installed (exit 15)
    ├── KafkaUnavailableError          the cluster does not answer in time (exit 4)
    ├── KafkaAuthError                 the cluster refuses our credentials (exit 5)
    ├── ServiceError                   a REST service (QStash, registry, Connect) failed (exit 7)
    ├── PlanError                      the plan cannot be applied as it stands (exit 6)
    │   ├── ConflictingPlanError       live state moved since the plan was reviewed
    │   ├── UnfilledPlaceholderError   endpoints still hold placeholders
    │   └── DestructiveChangeError     a deletion was needed but not allowed
    ├── CutoverError                   a cutover step was refused; nothing was changed
    │   ├── IllegalTransitionError     the group's cutover state does not allow that step (exit 10)
    │   ├── FenceTimeoutError          the old consumers did not stop within --timeout (exit 11)
    │   ├── GroupNotEmptyError         a consumer group to alter still has members (exit 12)
    │   ├── BridgeNotRunningError      no bridge runs with this config to take the group (exit 13)
    │   ├── LeaseHeldError             another cutover command is changing the group (exit 14)
    │   └── LeaseLostError             this command's lease on the group lapsed mid-step (exit 16)
    └── DeliveryError                  one record could not be delivered (handled by the bridge)
        ├── RetryableDeliveryError     try again later (429, 5xx, timeouts), maybe after retry_after
        └── PermanentDeliveryError     will never succeed (412, other 4xx, undecodable)

Exit codes are chosen from these classes in exactly one place: ``migrator.cli``.
Messages are sentences that name the object and, where possible, the fix.
"""

from __future__ import annotations

__all__ = [
    "BridgeNotRunningError",
    "ConfigError",
    "ConflictingPlanError",
    "CutoverError",
    "DeliveryError",
    "DestructiveChangeError",
    "ExtraNotInstalledError",
    "FenceTimeoutError",
    "GroupNotEmptyError",
    "IllegalTransitionError",
    "KafkaAuthError",
    "KafkaUnavailableError",
    "LeaseHeldError",
    "LeaseLostError",
    "MigratorError",
    "PermanentDeliveryError",
    "PlanError",
    "RetryableDeliveryError",
    "ServiceError",
    "StackError",
    "UnfilledPlaceholderError",
]


class MigratorError(Exception):
    """Root of every error the toolkit raises on purpose."""


class ConfigError(MigratorError):
    """Bad user input: a file, a flag or a value. The message says where and how to fix it."""


class StackError(MigratorError):
    """The local stack could not be resolved, started or reached."""


class ExtraNotInstalledError(MigratorError):
    """The settings need an optional extra that is not installed; the message names the
    ``pip install`` that brings it."""


class KafkaUnavailableError(MigratorError):
    """The Kafka cluster did not answer within the timeout."""


class KafkaAuthError(MigratorError):
    """The Kafka cluster refused the credentials (SASL/SSL) or the operation."""


class ServiceError(MigratorError):
    """A REST service (QStash, Schema Registry, Kafka Connect) answered with an error."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PlanError(MigratorError):
    """The plan cannot be applied as it stands."""


class ConflictingPlanError(PlanError):
    """The live QStash state changed since the plan was made, in a way that conflicts with it."""


class UnfilledPlaceholderError(PlanError):
    """The plan still holds endpoint placeholders; apply names each one."""


class DestructiveChangeError(PlanError):
    """A deletion is needed but --prune --allow-destructive was not given."""


class CutoverError(MigratorError):
    """A cutover step was refused or could not complete; the message says what was changed."""


class IllegalTransitionError(CutoverError):
    """The group's cutover state does not allow the step asked for."""


class FenceTimeoutError(CutoverError):
    """The old consumer group did not become quiet (no members, offsets still) in time."""


class GroupNotEmptyError(CutoverError):
    """A consumer group whose offsets must be set still has members."""


class BridgeNotRunningError(CutoverError):
    """No bridge runs with the config that would deliver the group after a switch."""


class LeaseHeldError(CutoverError):
    """Another cutover command holds the group's lease (it is changing the group)."""


class LeaseLostError(CutoverError):
    """This command's lease on the group was lost while its step ran (its renewals failed for
    so long that the lease may have expired, or another command holds it): the step stopped
    before its next write; the message says what it had done. A rerun resumes the step."""


class DeliveryError(MigratorError):
    """A record could not be delivered to its destination."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetryableDeliveryError(DeliveryError):
    """Delivery may succeed later: 429, 5xx, timeouts, connection errors.

    ``outage``: the destination as a whole refused or could not be reached (QStash answered the
    whole request 429/5xx or timed out, or the connection failed), so the failure says nothing
    about the record; by default it does not count toward ``retry.max_attempts``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        outage: bool = False,
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after
        self.outage = outage


class PermanentDeliveryError(DeliveryError):
    """Delivery will never succeed as the record stands: 412, other 4xx, undecodable payloads."""
