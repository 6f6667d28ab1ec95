"""CodeDeploy's minimum-healthy-hosts arithmetic: which targets a deployment takes down, in what order, how many at
a time, when it stops, whether it succeeded, and how healthy each target is afterwards.

Pure functions and frozen values, with no database and no I/O, so the deployment job, the pages and the tests share
one reading of the rules. The rules are CodeDeploy's, as the release semantics reference states them (AWS release
semantics §3, "Minimum-healthy-hosts math"); each function names the point it follows.

A job drives a deployment with `Plan`: it asks for `next_batch()`, deploys to those targets, `record()`s each
result, and goes on until `next_batch()` is empty; `outcome` then says whether the deployment succeeded and
`group_after()` gives every target's health and revision for the environment to keep. A `Plan` is rebuilt from the
targets, the configuration and the results recorded so far, so a job that restarts after a crash carries on with
the same batches.
"""

from dataclasses import dataclass, field, replace
from enum import StrEnum


class DeploymentConfigError(ValueError):
    """A deployment configuration CodeDeploy would refuse, or one that leaves a group no target to deploy to."""


class MinimumType(StrEnum):
    HOST_COUNT = "HOST_COUNT"
    FLEET_PERCENT = "FLEET_PERCENT"
    # Only OneAtATime has this type (GetDeploymentConfig reports it as MOST_CONCURRENCY 1); nobody can choose it.
    MOST_CONCURRENCY = "MOST_CONCURRENCY"


class Health(StrEnum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class RevisionStatus(StrEnum):
    """A target's revision as CodeDeploy classes it: never installed, another revision, or the group's own."""

    UNKNOWN = "unknown"
    OLD = "old"
    CURRENT = "current"


class Status(StrEnum):
    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class DeploymentConfig:
    """How many targets must stay healthy during a deployment (§3, "Configuration and presets")."""

    name: str
    type: MinimumType
    value: int

    def __post_init__(self):
        if not isinstance(self.value, int) or isinstance(self.value, bool):
            raise DeploymentConfigError(f"The minimum healthy hosts value must be a whole number, not {self.value!r}.")
        if self.type == MinimumType.HOST_COUNT and self.value < 0:
            raise DeploymentConfigError(f"HOST_COUNT must be 0 or more, not {self.value}.")
        # 100% would keep every target healthy, so no target could ever be taken down to deploy to.
        if self.type == MinimumType.FLEET_PERCENT and not 0 <= self.value <= 99:
            raise DeploymentConfigError(
                f"FLEET_PERCENT must be from 0 to 99, not {self.value}: at 100% no target could be deployed to."
            )
        if self.type == MinimumType.MOST_CONCURRENCY and self.value != 1:
            raise DeploymentConfigError("MOST_CONCURRENCY exists only as OneAtATime's, with the value 1.")

    @classmethod
    def custom(cls, type: str, value: int) -> "DeploymentConfig":
        """A custom minimum, HOST_COUNT or FLEET_PERCENT: CodeDeploy lets nobody choose MOST_CONCURRENCY (§3)."""
        if type not in (MinimumType.HOST_COUNT, MinimumType.FLEET_PERCENT):
            raise DeploymentConfigError(
                f"A minimum of healthy hosts is HOST_COUNT or FLEET_PERCENT, not {type!r}; "
                "for one target at a time choose OneAtATime."
            )
        return cls(name=f"{type} {value}", type=MinimumType(type), value=value)

    def minimum_healthy(self, target_count: int) -> int:
        """The minimum for a group of this size, fixed at the deployment's start (§3, "Configuration and presets").

        A percentage is rounded up: `ceil(N × pct / 100)`. OneAtATime keeps all targets but one healthy.
        """
        if self.type == MinimumType.HOST_COUNT:
            return self.value
        if self.type == MinimumType.FLEET_PERCENT:
            return -(-target_count * self.value // 100)
        return max(target_count - 1, 0)

    def check(self, target_count: int) -> int:
        """The minimum for this many targets, or `DeploymentConfigError` when it leaves none to deploy to.

        A minimum of N or more out of N lets no target be taken down at all, so the deployment could only fail at
        once (§3, the worked example "95% of 10 → 10: fails at once"); it is refused before it starts, with why.
        """
        if target_count < 1:
            raise DeploymentConfigError("There are no targets to deploy to.")
        minimum = self.minimum_healthy(target_count)
        if minimum >= target_count:
            raise DeploymentConfigError(
                f"{self.name} needs {minimum} of the {target_count} targets to stay healthy, "
                "which leaves no target to deploy to."
            )
        return minimum


ALL_AT_ONCE = DeploymentConfig(name="AllAtOnce", type=MinimumType.HOST_COUNT, value=0)
HALF_AT_A_TIME = DeploymentConfig(name="HalfAtATime", type=MinimumType.FLEET_PERCENT, value=50)
ONE_AT_A_TIME = DeploymentConfig(name="OneAtATime", type=MinimumType.MOST_CONCURRENCY, value=1)
PREDEFINED = {config.name: config for config in (ALL_AT_ONCE, HALF_AT_A_TIME, ONE_AT_A_TIME)}
# CodeDeploy deploys one target at a time when a group names no configuration (§3, "Presets").
DEFAULT_CONFIG = ONE_AT_A_TIME


@dataclass(frozen=True)
class Target:
    """A target as the group knows it: its health and the revision last installed on it with success (None: never).

    A target nothing was ever attempted on is healthy, as in CodeDeploy.
    """

    name: str
    health: Health = Health.HEALTHY
    revision: str | None = None

    def revision_status(self, group_revision: str | None) -> RevisionStatus:
        """Unknown if nothing was ever installed, Current if it runs the group's last successful revision, else Old."""
        if self.revision is None:
            return RevisionStatus.UNKNOWN
        return RevisionStatus.CURRENT if self.revision == group_revision else RevisionStatus.OLD


_ORDER = {RevisionStatus.UNKNOWN: 1, RevisionStatus.OLD: 2, RevisionStatus.CURRENT: 3}


def deployment_order(targets, group_revision: str | None) -> tuple[Target, ...]:
    """Targets in the order CodeDeploy deploys to them: unhealthy, then revision Unknown, Old, Current (§3, "Ordering
    and batch size"); by name within each class, so the order is the same every time."""

    def rank(target: Target):
        if target.health == Health.UNHEALTHY:
            return (0, target.name)
        return (_ORDER[target.revision_status(group_revision)], target.name)

    return tuple(sorted(targets, key=rank))


@dataclass(frozen=True)
class Outcome:
    """Where a deployment stands, with the reason to show as it is."""

    status: Status
    reason: str
    succeeded: int
    failed: int
    minimum: int


@dataclass(frozen=True)
class GroupState:
    """An environment's revision and targets after a deployment ended."""

    revision: str | None
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class Plan:
    """One deployment of `revision` to `targets` under `config`, with the results recorded so far.

    Everything else (the order, the minimum, the batches, the outcome) follows from these, computed again on every
    `record()`; the group's `group_revision` is its last successful one, which tells Old from Current.
    """

    targets: tuple[Target, ...]
    config: DeploymentConfig
    revision: str
    group_revision: str | None = None
    results: tuple[tuple[str, bool], ...] = ()
    minimum: int = field(init=False)
    batches: tuple[tuple[Target, ...], ...] = field(init=False)
    outcome: Outcome = field(init=False)

    def __post_init__(self):
        names = [target.name for target in self.targets]
        if len(set(names)) != len(names):
            raise ValueError("Two targets have the same name.")
        recorded = [name for name, _ in self.results]
        if len(set(recorded)) != len(recorded):
            raise ValueError("A target's result was recorded twice.")
        # The dataclass is frozen so that nobody changes a plan under a running job; only its own derived fields
        # are set here, once.
        object.__setattr__(self, "targets", deployment_order(self.targets, self.group_revision))
        object.__setattr__(self, "results", tuple(self.results))
        object.__setattr__(self, "minimum", self.config.check(len(self.targets)))
        batches, outcome = self._replay()
        object.__setattr__(self, "batches", batches)
        object.__setattr__(self, "outcome", outcome)

    def _replay(self) -> tuple[tuple[tuple[Target, ...], ...], Outcome]:
        """Run the batches again from the recorded results, with §3's rules for each next batch.

        - At most N − min targets at a time: the configuration's "at a time" (HalfAtATime of 9: four).
        - Unhealthy targets first, in batches of their own: deploying to them takes nothing healthy down, and each
          success adds a healthy target, which can make the next batches bigger.
        - Then healthy targets, at most `healthy − min` at once, so the healthy count never goes below the minimum;
          once `healthy ≤ min` the deployment stops and fails, whatever is left. A group that starts below the
          minimum is never reduced further.
        """
        results = dict(self.results)
        healthy = sum(target.health == Health.HEALTHY for target in self.targets)
        at_a_time = len(self.targets) - self.minimum
        pending = list(self.targets)
        batches = []
        succeeded = failed = 0
        outcome = None
        while pending:
            if pending[0].health == Health.UNHEALTHY:
                batch = [target for target in pending[:at_a_time] if target.health == Health.UNHEALTHY]
            elif healthy <= self.minimum:
                outcome = Outcome(
                    Status.FAILED,
                    f"Stopped with {len(pending)} of {len(self.targets)} targets not deployed to: {healthy} are "
                    f"healthy and the minimum is {self.minimum}, so none more can be taken down. "
                    f"{succeeded} succeeded, {failed} failed.",
                    succeeded,
                    failed,
                    self.minimum,
                )
                break
            else:
                # Unhealthy targets come first, so everything still pending here is healthy.
                batch = pending[: healthy - self.minimum]
            batches.append(tuple(batch))
            if any(target.name not in results for target in batch):
                break
            for target in batch:
                if results[target.name]:
                    succeeded += 1
                    healthy += target.health == Health.UNHEALTHY
                else:
                    failed += 1
                    healthy -= target.health == Health.HEALTHY
            del pending[: len(batch)]
        started = {target.name for batch in batches for target in batch}
        stray = [name for name in results if name not in started]
        if stray:
            raise ValueError(f"{stray[0]} is not in a batch that was started, so it has no result yet.")
        if outcome is None:
            outcome = (
                self._success_rule(succeeded, failed)
                if not pending
                else Outcome(
                    Status.IN_PROGRESS,
                    f"Batch {len(batches)}: {succeeded} succeeded, {failed} failed so far.",
                    succeeded,
                    failed,
                    self.minimum,
                )
            )
        return tuple(batches), outcome

    def _success_rule(self, succeeded: int, failed: int) -> Outcome:
        """Every target was attempted: success needs ≥ min successes and at least one, even when min is 0 (§3,
        "Success rule").

        OneAtATime's exception follows from its minimum of N − 1: a failure before the last target leaves N − 1
        healthy, which stops the deployment; a failure on the last one still leaves N − 1 successes. A group of one
        has a minimum of 0, and so must succeed.
        """
        needed = max(self.minimum, 1)
        status = Status.SUCCEEDED if succeeded >= needed else Status.FAILED
        verdict = "enough" if status == Status.SUCCEEDED else "too few"
        return Outcome(
            status,
            f"{succeeded} of {len(self.targets)} targets succeeded and {failed} failed: {verdict}, "
            f"as {needed} must succeed.",
            succeeded,
            failed,
            self.minimum,
        )

    def next_batch(self) -> tuple[Target, ...]:
        """The targets to deploy to now: what is not recorded yet of the batch under way; empty once it ended."""
        if self.outcome.status != Status.IN_PROGRESS:
            return ()
        recorded = dict(self.results)
        return tuple(target for target in self.batches[-1] if target.name not in recorded)

    def record(self, target_name: str, ok: bool) -> "Plan":
        """This plan with one more target's result; refused for a target that is not in the batch under way."""
        if target_name not in {target.name for target in self.next_batch()}:
            raise ValueError(f"{target_name} is not waiting for a result in the batch under way.")
        return replace(self, results=(*self.results, (target_name, bool(ok))))

    def group_after(self, *, stopped: bool = False) -> GroupState:
        """Health and revisions once the deployment ended, or was stopped between batches (§3, "Health
        bookkeeping after a deployment").

        Targets that succeeded are healthy with the new revision; those that failed are unhealthy and keep the
        revision they had (so they are Unknown or Old), and those not attempted keep their state. On success the
        new revision becomes the group's, which makes it Current; on failure the group keeps its revision.
        """
        if self.outcome.status == Status.IN_PROGRESS and not stopped:
            raise ValueError("The deployment has not ended yet.")
        results = dict(self.results)
        targets = []
        for target in self.targets:
            if target.name not in results:
                targets.append(target)
            elif results[target.name]:
                targets.append(replace(target, health=Health.HEALTHY, revision=self.revision))
            else:
                targets.append(replace(target, health=Health.UNHEALTHY))
        revision = self.revision if self.outcome.status == Status.SUCCEEDED else self.group_revision
        return GroupState(revision=revision, targets=tuple(targets))


def preview_batches(targets, config: DeploymentConfig, *, revision: str, group_revision: str | None = None):
    """The batches a deployment would run if every target succeeded, for a page to show before it starts."""
    plan = Plan(tuple(targets), config, revision, group_revision)
    while batch := plan.next_batch():
        for target in batch:
            plan = plan.record(target.name, True)
    return plan.batches
