"""CodeDeploy's minimum-healthy-hosts arithmetic, one test per worked example of the reference (§3).

Every expected batch size and count below was worked out by hand from the rules, with the arithmetic in a comment:
min = HOST_COUNT, or ceil(N × pct / 100) for FLEET_PERCENT, or N − 1 for OneAtATime; at most N − min targets at a
time; healthy targets at most `healthy − min` at once; stop once `healthy ≤ min`; success needs ≥ max(min, 1).
"""

import pytest

from releases.batches import (
    ALL_AT_ONCE,
    HALF_AT_A_TIME,
    ONE_AT_A_TIME,
    DeploymentConfig,
    DeploymentConfigError,
    Health,
    Plan,
    RevisionStatus,
    Status,
    Target,
    deployment_order,
    preview_batches,
)

NEW = "sha256:new"
OLD = "sha256:old"


def fleet(count: int) -> list[Target]:
    """`count` healthy targets t01, t02… running the group's current revision."""
    return [Target(f"t{number:02d}", revision=OLD) for number in range(1, count + 1)]


def deploy(plan: Plan, failing: frozenset[str] | set[str] = frozenset()) -> Plan:
    """Run the plan to its end as a deployment job would, the targets named in `failing` failing."""
    while batch := plan.next_batch():
        for target in batch:
            plan = plan.record(target.name, target.name not in failing)
    return plan


def sizes(plan: Plan) -> list[int]:
    return [len(batch) for batch in plan.batches]


def names(targets) -> list[str]:
    return [target.name for target in targets]


# N = 10. "Minimum 95%, 9, 8 and 0" reads as the reference's table: 95% is a FLEET_PERCENT, and 9, 8 and 0 are host
# counts, each also checked as the FLEET_PERCENT that gives the same minimum (90, 80 and 0 % of 10).


def test_n10_fleet_percent_95_is_refused_before_it_starts():
    # ceil(10 × 95 / 100) = ceil(9.5) = 10 healthy of 10: no target may be taken down.
    with pytest.raises(DeploymentConfigError, match="needs 10 of the 10 targets to stay healthy"):
        Plan(fleet(10), DeploymentConfig.custom("FLEET_PERCENT", 95), NEW, OLD)


@pytest.mark.parametrize(
    "config", [DeploymentConfig.custom("HOST_COUNT", 9), DeploymentConfig.custom("FLEET_PERCENT", 90)]
)
def test_n10_minimum_9_goes_one_at_a_time(config):
    # min = 9 (ceil(10 × 90 / 100) = 9); 10 − 9 = 1 at a time, ten batches.
    plan = deploy(Plan(fleet(10), config, NEW, OLD))

    assert plan.minimum == 9
    assert sizes(plan) == [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    assert plan.outcome.status == Status.SUCCEEDED


@pytest.mark.parametrize(
    "config", [DeploymentConfig.custom("HOST_COUNT", 9), DeploymentConfig.custom("FLEET_PERCENT", 90)]
)
def test_n10_minimum_9_fails_on_any_failure_but_the_last(config):
    # t04 fails after three successes: healthy = 10 − 1 = 9 ≤ 9, so t05…t10 are never taken down; 3 < 9 succeeded.
    plan = deploy(Plan(fleet(10), config, NEW, OLD), failing={"t04"})

    assert sizes(plan) == [1, 1, 1, 1]
    assert plan.outcome.status == Status.FAILED
    assert (plan.outcome.succeeded, plan.outcome.failed) == (3, 1)
    assert "6 of 10 targets not deployed to: 9 are healthy and the minimum is 9" in plan.outcome.reason

    # The last one failing leaves 9 ≥ 9 successes.
    plan = deploy(Plan(fleet(10), config, NEW, OLD), failing={"t10"})

    assert sizes(plan) == [1] * 10
    assert plan.outcome.status == Status.SUCCEEDED


@pytest.mark.parametrize(
    "config", [DeploymentConfig.custom("HOST_COUNT", 8), DeploymentConfig.custom("FLEET_PERCENT", 80)]
)
def test_n10_minimum_8_goes_two_at_a_time(config):
    # min = 8; 10 − 8 = 2 at a time: 2 + 2 + 2 + 2 + 2.
    plan = deploy(Plan(fleet(10), config, NEW, OLD))

    assert plan.minimum == 8
    assert sizes(plan) == [2, 2, 2, 2, 2]
    assert plan.outcome.status == Status.SUCCEEDED


def test_n10_minimum_8_shrinks_the_batches_after_a_failure_and_stops_at_the_minimum():
    config = DeploymentConfig.custom("HOST_COUNT", 8)
    # t01 fails in the first batch: healthy 9, so 9 − 8 = 1 at a time for the eight left: 2 + 1 × 8.
    # 9 ≥ 8 succeeded.
    plan = deploy(Plan(fleet(10), config, NEW, OLD), failing={"t01"})

    assert sizes(plan) == [2, 1, 1, 1, 1, 1, 1, 1, 1]
    assert plan.outcome.status == Status.SUCCEEDED
    assert (plan.outcome.succeeded, plan.outcome.failed) == (9, 1)

    # t03 fails too: healthy 8 ≤ 8, so t04…t10 are never taken down; 1 < 8 succeeded.
    plan = deploy(Plan(fleet(10), config, NEW, OLD), failing={"t01", "t03"})

    assert sizes(plan) == [2, 1]
    assert plan.outcome.status == Status.FAILED
    assert (plan.outcome.succeeded, plan.outcome.failed) == (1, 2)


@pytest.mark.parametrize(
    "config", [DeploymentConfig.custom("HOST_COUNT", 0), DeploymentConfig.custom("FLEET_PERCENT", 0)]
)
def test_n10_minimum_0_goes_all_at_once_and_needs_one_success(config):
    # min = 0; 10 − 0 = 10 at a time: one batch.
    plan = deploy(Plan(fleet(10), config, NEW, OLD), failing={f"t{number:02d}" for number in range(2, 11)})

    assert sizes(plan) == [10]
    assert plan.outcome.status == Status.SUCCEEDED
    assert plan.outcome.succeeded == 1

    # Every one failing: 0 successes, and one is needed even with a minimum of 0.
    plan = deploy(Plan(fleet(10), config, NEW, OLD), failing={target.name for target in fleet(10)})

    assert sizes(plan) == [10]
    assert plan.outcome.status == Status.FAILED
    assert "as 1 must succeed" in plan.outcome.reason


# N = 9, the reference's second table.


def test_n9_half_at_a_time_goes_four_at_a_time_and_needs_five():
    # min = ceil(9 × 50 / 100) = ceil(4.5) = 5; 9 − 5 = floor(9 / 2) = 4 at a time: 4 + 4 + 1.
    plan = deploy(Plan(fleet(9), HALF_AT_A_TIME, NEW, OLD))

    assert plan.minimum == 5
    assert sizes(plan) == [4, 4, 1]
    assert plan.outcome.status == Status.SUCCEEDED

    # t05, t06, t07 fail in the second batch: healthy 9 − 3 = 6, so 6 − 5 = 1 next ([t09]); it fails too:
    # 5 ≥ 5 succeeded (t01…t04, t08).
    plan = deploy(Plan(fleet(9), HALF_AT_A_TIME, NEW, OLD), failing={"t05", "t06", "t07", "t09"})

    assert sizes(plan) == [4, 4, 1]
    assert plan.outcome.status == Status.SUCCEEDED
    assert (plan.outcome.succeeded, plan.outcome.failed) == (5, 4)

    # All of the second batch failing: healthy 9 − 4 = 5 ≤ 5, so t09 is never taken down; 4 < 5 succeeded.
    plan = deploy(Plan(fleet(9), HALF_AT_A_TIME, NEW, OLD), failing={"t05", "t06", "t07", "t08"})

    assert sizes(plan) == [4, 4]
    assert plan.outcome.status == Status.FAILED
    assert (plan.outcome.succeeded, plan.outcome.failed) == (4, 4)


def test_n9_host_count_6_goes_three_at_a_time_and_needs_six():
    config = DeploymentConfig.custom("HOST_COUNT", 6)
    # min = 6; 9 − 6 = 3 at a time: 3 + 3 + 3.
    plan = deploy(Plan(fleet(9), config, NEW, OLD))

    assert sizes(plan) == [3, 3, 3]
    assert plan.outcome.status == Status.SUCCEEDED

    # The whole last batch failing leaves 6 ≥ 6 succeeded.
    plan = deploy(Plan(fleet(9), config, NEW, OLD), failing={"t07", "t08", "t09"})

    assert sizes(plan) == [3, 3, 3]
    assert plan.outcome.status == Status.SUCCEEDED

    # t01 fails: healthy 8, so 8 − 6 = 2 next ([t04, t05]); t04 fails: healthy 7, so 1 next ([t06]); it fails:
    # healthy 6 ≤ 6, so t07…t09 are never taken down; 3 < 6 succeeded.
    plan = deploy(Plan(fleet(9), config, NEW, OLD), failing={"t01", "t04", "t06"})

    assert sizes(plan) == [3, 2, 1]
    assert plan.outcome.status == Status.FAILED
    assert (plan.outcome.succeeded, plan.outcome.failed) == (3, 3)


def test_n9_fleet_percent_40_goes_five_at_a_time_and_needs_four():
    config = DeploymentConfig.custom("FLEET_PERCENT", 40)
    # min = ceil(9 × 40 / 100) = ceil(3.6) = 4; 9 − 4 = 5 at a time: 5 + 4.
    plan = deploy(Plan(fleet(9), config, NEW, OLD))

    assert plan.minimum == 4
    assert sizes(plan) == [5, 4]
    assert plan.outcome.status == Status.SUCCEEDED

    # t01 fails: healthy 8, so 8 − 4 = 4 next (t06…t09), which all fail: 4 ≥ 4 succeeded (t02…t05).
    plan = deploy(Plan(fleet(9), config, NEW, OLD), failing={"t01", "t06", "t07", "t08", "t09"})

    assert sizes(plan) == [5, 4]
    assert plan.outcome.status == Status.SUCCEEDED
    assert (plan.outcome.succeeded, plan.outcome.failed) == (4, 5)

    # Two fail in the first batch: healthy 7, so 3 next (t06…t08), all failing: 3 < 4 succeeded, and healthy
    # 4 ≤ 4 leaves t09 alone.
    plan = deploy(Plan(fleet(9), config, NEW, OLD), failing={"t01", "t02", "t06", "t07", "t08"})

    assert sizes(plan) == [5, 3]
    assert plan.outcome.status == Status.FAILED


# A group of one, under each predefined configuration.


@pytest.mark.parametrize("config", [ALL_AT_ONCE, ONE_AT_A_TIME])
def test_a_group_of_one_must_succeed(config):
    # AllAtOnce: min 0; OneAtATime: min 1 − 1 = 0. Either way 1 − 0 = 1 at a time, and one success is needed.
    plan = deploy(Plan(fleet(1), config, NEW, OLD))

    assert plan.minimum == 0
    assert sizes(plan) == [1]
    assert plan.outcome.status == Status.SUCCEEDED

    plan = deploy(Plan(fleet(1), config, NEW, OLD), failing={"t01"})

    assert plan.outcome.status == Status.FAILED


def test_a_group_of_one_is_refused_half_at_a_time():
    # min = ceil(1 × 50 / 100) = ceil(0.5) = 1 of 1: the only target must stay healthy.
    with pytest.raises(DeploymentConfigError, match="HalfAtATime needs 1 of the 1 targets to stay healthy"):
        Plan(fleet(1), HALF_AT_A_TIME, NEW, OLD)


# OneAtATime.


def test_one_at_a_time_succeeds_when_only_the_last_target_fails():
    # min = 10 − 1 = 9; 10 − 9 = 1 at a time. t10 failing leaves 9 ≥ 9 succeeded.
    plan = deploy(Plan(fleet(10), ONE_AT_A_TIME, NEW, OLD), failing={"t10"})

    assert plan.minimum == 9
    assert sizes(plan) == [1] * 10
    assert plan.outcome.status == Status.SUCCEEDED
    assert (plan.outcome.succeeded, plan.outcome.failed) == (9, 1)


def test_one_at_a_time_stops_at_a_failure_before_the_last_target():
    # t09 fails: healthy 9 ≤ 9, so t10 is never taken down; 8 < 9 succeeded.
    plan = deploy(Plan(fleet(10), ONE_AT_A_TIME, NEW, OLD), failing={"t09"})

    assert sizes(plan) == [1] * 9
    assert plan.outcome.status == Status.FAILED
    assert names(plan.batches[-1]) == ["t09"]


def test_the_last_target_is_last_in_deployment_order_not_by_name():
    # zz is unhealthy, so it goes first; the last target is t02. min = 3 − 1 = 2.
    targets = [Target("zz", health=Health.UNHEALTHY, revision=OLD), *fleet(2)]

    plan = deploy(Plan(targets, ONE_AT_A_TIME, NEW, OLD), failing={"t02"})

    assert [names(batch) for batch in plan.batches] == [["zz"], ["t01"], ["t02"]]
    assert plan.outcome.status == Status.SUCCEEDED

    # zz failing first: healthy stays 2 ≤ 2, so neither healthy target is taken down.
    plan = deploy(Plan(targets, ONE_AT_A_TIME, NEW, OLD), failing={"zz"})

    assert [names(batch) for batch in plan.batches] == [["zz"]]
    assert plan.outcome.status == Status.FAILED


# The order of targets.


def test_targets_go_unhealthy_then_unknown_then_old_then_current_by_name_within_each():
    targets = [
        Target("web-e", revision="r2"),
        Target("web-c", health=Health.UNHEALTHY, revision="r1"),
        Target("web-g"),
        Target("web-d", revision="r1"),
        Target("web-a", health=Health.UNHEALTHY),
        Target("web-f", revision="r0"),
        Target("web-b"),
        Target("web-h", revision="r2"),
    ]

    # r2 is the group's revision, so web-e and web-h are Current; r1 and r0 are Old.
    assert names(deployment_order(targets, "r2")) == [
        "web-a",
        "web-c",
        "web-b",
        "web-g",
        "web-d",
        "web-f",
        "web-e",
        "web-h",
    ]
    # The same targets against a group whose revision is r1: web-d is Current now, web-e and web-h Old.
    assert names(deployment_order(targets, "r1")) == [
        "web-a",
        "web-c",
        "web-b",
        "web-g",
        "web-e",
        "web-f",
        "web-h",
        "web-d",
    ]
    # The batches follow that order: OneAtATime, one by one.
    assert [names(batch) for batch in preview_batches(targets, ONE_AT_A_TIME, revision=NEW, group_revision="r2")] == [
        ["web-a"],
        ["web-c"],
        ["web-b"],
        ["web-g"],
        ["web-d"],
        ["web-f"],
        ["web-e"],
        ["web-h"],
    ]


def test_unhealthy_targets_go_first_in_batches_of_their_own_without_counting_against_the_minimum():
    targets = [Target(f"u{number}", health=Health.UNHEALTHY) for number in (1, 2, 3)] + fleet(7)
    config = DeploymentConfig.custom("HOST_COUNT", 8)
    # min 8, 10 − 8 = 2 at a time; healthy 7, below the minimum. The unhealthy ones take nothing down: [u1, u2],
    # then [u3] alone (unhealthy batches hold only unhealthy targets); healthy 7 + 3 = 10, so 10 − 8 = 2 at a time
    # for the seven healthy ones: 2 + 2 + 2 + 1.
    assert [len(batch) for batch in preview_batches(targets, config, revision=NEW, group_revision=OLD)] == [
        2,
        1,
        2,
        2,
        2,
        1,
    ]

    # All three failing leaves healthy 7 ≤ 8: a group that starts below the minimum is never reduced further.
    plan = deploy(Plan(targets, config, NEW, OLD), failing={"u1", "u2", "u3"})

    assert [names(batch) for batch in plan.batches] == [["u1", "u2"], ["u3"]]
    assert plan.outcome.status == Status.FAILED
    assert "7 of 10 targets not deployed to: 7 are healthy and the minimum is 8" in plan.outcome.reason


# Health bookkeeping afterwards.


def test_after_a_success_the_new_revision_is_current_and_failed_targets_are_unhealthy_unknown_or_old():
    targets = [
        Target("a", revision="r1"),
        Target("b"),
        Target("c", health=Health.UNHEALTHY, revision="r0"),
        Target("d", revision="r0"),
        Target("e", revision="r1"),
        Target("f", revision="r0"),
    ]
    # Order c (unhealthy) | b (unknown) | d, f (old) | a, e (current r1). HOST_COUNT 2: 6 − 2 = 4 at a time.
    # [c] alone (the only unhealthy one) succeeds: healthy 5 + 1 = 6, so 6 − 2 = 4 next: [b, d, f, a];
    # b, f, a fail: healthy 3, so 3 − 2 = 1 next: [e]. c, d, e succeeded: 3 ≥ 2.
    plan = deploy(Plan(targets, DeploymentConfig.custom("HOST_COUNT", 2), "r2", "r1"), failing={"a", "b", "f"})

    assert [names(batch) for batch in plan.batches] == [["c"], ["b", "d", "f", "a"], ["e"]]
    assert plan.outcome.status == Status.SUCCEEDED

    after = plan.group_after()

    assert after.revision == "r2"
    state = {t.name: (t.health, t.revision, t.revision_status(after.revision)) for t in after.targets}
    assert state == {
        "c": (Health.HEALTHY, "r2", RevisionStatus.CURRENT),
        "d": (Health.HEALTHY, "r2", RevisionStatus.CURRENT),
        "e": (Health.HEALTHY, "r2", RevisionStatus.CURRENT),
        # Failed: unhealthy, with the revision they had, which is no longer the group's.
        "b": (Health.UNHEALTHY, None, RevisionStatus.UNKNOWN),
        "f": (Health.UNHEALTHY, "r0", RevisionStatus.OLD),
        "a": (Health.UNHEALTHY, "r1", RevisionStatus.OLD),
    }


def test_after_a_failure_only_attempted_targets_change_and_the_group_keeps_its_revision():
    # OneAtATime on 4: min 3. t01 succeeds, t02 fails: healthy 3 ≤ 3, so t03 and t04 are never attempted.
    plan = deploy(Plan(fleet(4), ONE_AT_A_TIME, NEW, OLD), failing={"t02"})

    assert plan.outcome.status == Status.FAILED

    after = plan.group_after()

    assert after.revision == OLD
    state = {t.name: (t.health, t.revision, t.revision_status(after.revision)) for t in after.targets}
    assert state == {
        "t01": (Health.HEALTHY, NEW, RevisionStatus.OLD),
        "t02": (Health.UNHEALTHY, OLD, RevisionStatus.CURRENT),
        "t03": (Health.HEALTHY, OLD, RevisionStatus.CURRENT),
        "t04": (Health.HEALTHY, OLD, RevisionStatus.CURRENT),
    }


# The driver a deployment job uses.


def test_a_plan_rebuilt_from_recorded_results_carries_on_with_the_same_batch():
    config = DeploymentConfig.custom("HOST_COUNT", 6)
    plan = Plan(fleet(9), config, NEW, OLD)
    for name in ("t01", "t02", "t03", "t04"):
        plan = plan.record(name, name != "t02")

    assert names(plan.next_batch()) == ["t05"]
    assert plan.outcome.status == Status.IN_PROGRESS

    # A job that restarts knows only the targets, the configuration and the results it saved, in any order.
    rebuilt = Plan(list(reversed(fleet(9))), config, NEW, OLD, results=tuple(reversed(plan.results)))

    assert rebuilt.batches == plan.batches
    assert names(rebuilt.next_batch()) == ["t05"]


def test_a_plan_refuses_results_out_of_turn():
    plan = Plan(fleet(4), ONE_AT_A_TIME, NEW, OLD)

    with pytest.raises(ValueError, match="t02 is not waiting for a result"):
        plan.record("t02", True)
    plan = plan.record("t01", True)
    with pytest.raises(ValueError, match="t01 is not waiting for a result"):
        plan.record("t01", False)
    with pytest.raises(ValueError, match="t03 is not in a batch that was started"):
        Plan(fleet(4), ONE_AT_A_TIME, NEW, OLD, results=(("t01", True), ("t03", True)))
    with pytest.raises(ValueError, match="recorded twice"):
        Plan(fleet(4), ONE_AT_A_TIME, NEW, OLD, results=(("t01", True), ("t01", False)))
    with pytest.raises(ValueError, match="has not ended"):
        plan.group_after()


def test_a_plan_refuses_two_targets_with_one_name():
    with pytest.raises(ValueError, match="same name"):
        Plan([Target("web"), Target("web")], ALL_AT_ONCE, NEW)


# Refused configurations and minimums.


@pytest.mark.parametrize(
    ("type", "value", "message"),
    [
        ("HOST_COUNT", -1, "HOST_COUNT must be 0 or more"),
        ("FLEET_PERCENT", 100, "FLEET_PERCENT must be from 0 to 99"),
        ("FLEET_PERCENT", -5, "FLEET_PERCENT must be from 0 to 99"),
        ("FLEET_PERCENT", 50.5, "must be a whole number"),
        ("HOST_COUNT", True, "must be a whole number"),
        ("MOST_CONCURRENCY", 1, "HOST_COUNT or FLEET_PERCENT, not 'MOST_CONCURRENCY'"),
        ("PERCENT", 50, "HOST_COUNT or FLEET_PERCENT, not 'PERCENT'"),
    ],
)
def test_it_refuses_a_minimum_codedeploy_refuses(type, value, message):
    with pytest.raises(DeploymentConfigError, match=message):
        DeploymentConfig.custom(type, value)


@pytest.mark.parametrize(
    ("config", "count", "message"),
    [
        # HOST_COUNT 10 of 10, and 11 of 10: nothing may be taken down.
        (DeploymentConfig.custom("HOST_COUNT", 10), 10, "HOST_COUNT 10 needs 10 of the 10 targets"),
        (DeploymentConfig.custom("HOST_COUNT", 11), 10, "HOST_COUNT 11 needs 11 of the 10 targets"),
        # ceil(3 × 99 / 100) = ceil(2.97) = 3 of 3.
        (DeploymentConfig.custom("FLEET_PERCENT", 99), 3, "FLEET_PERCENT 99 needs 3 of the 3 targets"),
        (ALL_AT_ONCE, 0, "no targets to deploy to"),
    ],
)
def test_it_refuses_a_minimum_that_leaves_no_target_to_deploy_to(config, count, message):
    with pytest.raises(DeploymentConfigError, match=message):
        Plan(fleet(count), config, NEW, OLD)
