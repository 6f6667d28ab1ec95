"""The checks before a deployment: a real build's artifact and signed provenance, refs allowed by an environment's
policy (read from what was signed), approvals of a pool of users and teams, and when freezes and the wait timer let
a deployment start, across the clock changes of Europe/Paris."""

import hashlib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from portal import services as accounts
from releases import deploy_checks as checks
from releases import provenance
from releases.deploy_checks import DeploymentRefused
from releases.models import Build, BuildArtifact
from releases.storage import artifact_storage
from releases.tests.test_provenance import built, payload_of, resigned, stored_bytes  # noqa: F401 (fixture)
from repos import git
from repos import services as repo_services
from reviews.services.configuration import save_branch_protection

PARIS = ZoneInfo("Europe/Paris")


def refused_field(call, *args, **kwargs) -> tuple[str, str]:
    """The field and message of the field_error a call raises."""
    with pytest.raises(ValidationError) as error:
        call(*args, **kwargs)
    (refusal,) = error.value.error_list
    assert refusal.code == "invalid_field"
    return refusal.params["field"], refusal.message % refusal.params


# 1. Provenance at the door.


@pytest.mark.usefixtures("transactional_db")
def test_a_real_builds_artifact_passes_and_a_changed_byte_or_envelope_is_refused(built, settings):  # noqa: F811
    artifact = BuildArtifact.objects.get(build=built, name="app")
    storage = artifact_storage()
    path = storage.path(artifact.storage_name)
    content = stored_bytes(artifact)

    # The bytes, a path to them and an open file all do; the digest may carry its algorithm's name.
    for given in (content, path):
        statement = checks.check_artifact(given, artifact.sha256, artifact.provenance)
        assert statement["subject"] == [{"name": "app.zip", "digest": {"sha256": artifact.sha256}}]
    with open(path, "rb") as stored:
        assert checks.check_artifact(stored, f"sha256:{artifact.sha256}", artifact.provenance) == statement

    # One byte changed on disk after the build.
    changed = bytearray(content)
    changed[len(changed) // 2] ^= 1
    with open(path, "wb") as stored:
        stored.write(changed)
    with pytest.raises(DeploymentRefused) as refusal:
        checks.check_artifact(path, artifact.sha256, artifact.provenance)
    actual = hashlib.sha256(changed).hexdigest()
    assert refusal.value.reason == (
        f"The artifact's bytes changed since the build: sha256 {actual} ≠ {artifact.sha256}."
    )
    assert str(refusal.value) == refusal.value.reason
    with open(path, "wb") as stored:
        stored.write(content)

    # The statement edited (another commit) under the same signature.
    edited = payload_of(artifact.provenance)
    edited["predicate"]["buildDefinition"]["externalParameters"]["ref"] = "refs/heads/release/1"
    with pytest.raises(DeploymentRefused, match="provenance does not verify: No signature verifies"):
        checks.check_artifact(content, artifact.sha256, resigned(artifact.provenance, edited))
    # Another artifact's genuine envelope is about other bytes.
    docs = BuildArtifact.objects.get(build=built, name="docs")
    with pytest.raises(DeploymentRefused, match="provenance does not verify: .* is not the statement's subject"):
        checks.check_artifact(content, artifact.sha256, docs.provenance)
    # Signed by another portal's key.
    settings.SECRET_KEY = "another portal's secret key"
    forged = provenance.sign(payload_of(artifact.provenance))
    settings.SECRET_KEY = "the portal's own key again"
    with pytest.raises(DeploymentRefused, match="signed by another key"):
        checks.check_artifact(content, artifact.sha256, forged)

    for missing in (None, {}):
        with pytest.raises(DeploymentRefused, match="The artifact has no provenance"):
            checks.check_artifact(content, artifact.sha256, missing)
    with pytest.raises(DeploymentRefused, match="cannot be read"):
        checks.check_artifact(str(path) + ".gone", artifact.sha256, artifact.provenance)


@pytest.mark.usefixtures("transactional_db")
def test_a_real_builds_ref_is_read_from_its_statement_and_checked_against_protected_branches(
    built,  # noqa: F811 (fixture)
    private_repo,
    alice,
):
    artifact = BuildArtifact.objects.get(build=built, name="app")
    statement = checks.check_artifact(stored_bytes(artifact), artifact.sha256, artifact.provenance)
    protected = checks.RefPolicy(protected_branches=True)
    with pytest.raises(DeploymentRefused) as refusal:
        checks.check_ref(protected, private_repo, statement, environment="uat")
    assert refusal.value.reason == "Built from refs/heads/main, and uat takes only protected branches."

    save_branch_protection(None, actor=alice, repository=private_repo, branch_pattern="main")
    found = checks.check_ref(protected, private_repo, statement, environment="uat")
    assert (found.kind, found.name, found.commit) == ("branch", "main", built.head_sha)
    # What the database says now does not matter: the statement is what was signed.
    Build.objects.filter(pk=built.pk).update(ref="refs/heads/feature/x", head_branch="feature/x")
    assert checks.check_ref(protected, private_repo, statement).ref == "refs/heads/main"


# 2. Which refs may deploy: statements signed with the portal's key about commits of a real repository.


def signed_statement(repository, ref: str, sha: str) -> dict:
    """The verified statement of an artifact built from ref at sha."""
    build = Build(repository=repository, number=7, ref=ref, head_sha=sha, trigger="push")
    content = f"an artifact of {ref} at {sha}".encode()
    digest = hashlib.sha256(content).hexdigest()
    inputs = provenance.BuildInputs(buildspec_sha256="0" * 64, network=False, timeout_minutes=60)
    envelope = provenance.attest(build, name="app", sha256=digest, inputs=inputs)
    return checks.check_artifact(content, digest, envelope)


def commit(repository, branch: str, text: str) -> str:
    return git.commit_files(repository.path, branch, {"f.txt": text.encode()}, text, name="a", email="a@x")


def refusal_of(policy, repository, statement) -> str | None:
    try:
        checks.check_ref(policy, repository, statement, environment="uat")
    except DeploymentRefused as refused:
        return refused.reason
    return None


@pytest.mark.django_db
def test_the_default_branch_protected_branches_and_patterns_each_let_their_refs_deploy(private_repo, alice):
    main = git.branch_sha(private_repo.path, "main")
    feature = commit(private_repo, "feature/x", "feature")
    release = commit(private_repo, "release/1", "release")
    git.update_ref(private_repo.path, "refs/tags/v1.0", release, git.ZERO_SHA)
    git.update_ref(private_repo.path, "refs/tags/beta", release, git.ZERO_SHA)
    of_main = signed_statement(private_repo, "refs/heads/main", main)
    of_feature = signed_statement(private_repo, "refs/heads/feature/x", feature)
    of_release = signed_statement(private_repo, "refs/heads/release/1", release)
    of_tag = signed_statement(private_repo, "refs/tags/v1.0", release)
    of_beta = signed_statement(private_repo, "refs/tags/beta", release)

    default = checks.RefPolicy(default_branch=True)
    assert refusal_of(default, private_repo, of_main) is None
    assert refusal_of(default, private_repo, of_feature) == (
        "Built from refs/heads/feature/x, and uat takes only the default branch (main)."
    )
    assert refusal_of(default, private_repo, of_tag) == (
        "Built from refs/tags/v1.0, and uat takes only the default branch (main)."
    )

    protected = checks.RefPolicy(protected_branches=True)
    assert refusal_of(protected, private_repo, of_release) is not None
    save_branch_protection(None, actor=alice, repository=private_repo, branch_pattern="release/*")
    assert refusal_of(protected, private_repo, of_release) is None
    assert refusal_of(protected, private_repo, of_main) is not None

    patterns = checks.ref_policy(patterns=["branch:release/{1,2}", " tag:v* "])
    assert patterns.patterns == ("branch:release/{1,2}", "tag:v*")
    assert refusal_of(patterns, private_repo, of_release) is None
    assert refusal_of(patterns, private_repo, of_tag) is None
    assert refusal_of(patterns, private_repo, of_beta) == (
        "Built from refs/tags/beta, and uat takes only branch:release/{1,2} or tag:v*."
    )
    # A branch pattern never matches a tag of the same name, nor the other way round.
    assert refusal_of(checks.ref_policy(patterns=["tag:release/*"]), private_repo, of_release) is not None

    together = checks.ref_policy(default_branch=True, protected_branches=True, patterns=["tag:v*"])
    assert [refusal_of(together, private_repo, s) is None for s in (of_main, of_release, of_tag, of_feature)] == [
        True,
        True,
        True,
        False,
    ]
    assert refusal_of(together, private_repo, of_feature) == (
        "Built from refs/heads/feature/x, and uat takes only the default branch (main), protected branches or tag:v*."
    )
    # With no rule chosen, any branch or tag deploys.
    assert all(refusal_of(checks.RefPolicy(), private_repo, s) is None for s in (of_feature, of_beta))


@pytest.mark.django_db
def test_pull_request_builds_deploy_only_where_a_pattern_names_them_and_bare_commits_only_where_nothing_is_chosen(
    private_repo,
):
    head = commit(private_repo, "feature/x", "proposed")
    of_pull = signed_statement(private_repo, "refs/pull/3/head", head)
    of_commit = signed_statement(private_repo, head, head)
    for policy in (checks.RefPolicy(), checks.ref_policy(patterns=["branch:*"]), checks.RefPolicy(True, True)):
        reason = refusal_of(policy, private_repo, of_pull)
        assert reason is not None and reason.startswith("Built from refs/pull/3/head (pull request #3), and uat")
    assert refusal_of(checks.ref_policy(patterns=["pull:*"]), private_repo, of_pull) is None
    assert refusal_of(checks.ref_policy(patterns=["pull:4"]), private_repo, of_pull) is not None

    assert refusal_of(checks.RefPolicy(), private_repo, of_commit) is None
    assert refusal_of(checks.RefPolicy(default_branch=True), private_repo, of_commit) == (
        f"Built from commit {head[:12]} (no branch or tag), and uat takes only the default branch (main)."
    )
    of_note = signed_statement(private_repo, "refs/notes/commits", head)
    assert refusal_of(checks.RefPolicy(), private_repo, of_note) == (
        "Built from refs/notes/commits, which is no branch, tag or pull request."
    )


@pytest.mark.django_db
def test_an_old_build_deploys_while_its_branch_holds_its_commit_and_its_tag_still_names_it(private_repo):
    old = git.branch_sha(private_repo.path, "main")
    new = commit(private_repo, "main", "newer")
    git.update_ref(private_repo.path, "refs/tags/v1", old, git.ZERO_SHA)
    default, tags = checks.RefPolicy(default_branch=True), checks.ref_policy(patterns=["tag:v*"])
    of_old = signed_statement(private_repo, "refs/heads/main", old)
    of_tag = signed_statement(private_repo, "refs/tags/v1", old)
    # A rollback to an older build of main is fine: its commit is still on main.
    assert refusal_of(default, private_repo, of_old) is None
    assert refusal_of(tags, private_repo, of_tag) is None

    # A build whose signed ref claims main for a commit main never held.
    stray = commit(private_repo, "elsewhere", "stray")
    assert refusal_of(default, private_repo, signed_statement(private_repo, "refs/heads/main", stray)) == (
        f"Built from refs/heads/main at {stray[:12]}, which is no longer on that branch."
    )
    # A branch named like the tag does not stand in for it.
    commit(private_repo, "v1", "a branch named v1")
    assert refusal_of(tags, private_repo, of_tag) is None
    git.update_ref(private_repo.path, "refs/tags/v1", new, old)
    assert refusal_of(tags, private_repo, of_tag) == (
        f"Built from refs/tags/v1 at {old[:12]}, which is no longer what that tag names."
    )


def test_bad_ref_patterns_are_refused_naming_the_field():
    assert refused_field(checks.ref_policy, patterns=["tag:v*", "release/*"]) == (
        "deployment_branch_policy.patterns.1",
        "'release/*' does not start with branch:, tag:, pull: (e.g. branch:release/*, tag:v*, pull:*).",
    )
    field, message = refused_field(checks.ref_policy, patterns=["branch: "])
    assert field == "deployment_branch_policy.patterns.0" and "needs a glob" in message
    field, message = refused_field(checks.ref_policy, patterns=["branch:release/{1,2"], field="policy")
    assert field == "policy.patterns.0" and "unclosed" in message
    with pytest.raises(ValidationError):
        checks.RefPolicy(patterns=("heads:main",))


# 3. Approvals.


@pytest.fixture
def devs(alice, bob, carol):
    org = accounts.create_organization(actor=alice, name="acme")
    team = accounts.create_team(org, actor=alice, name="devs")
    for member in (bob, carol):
        accounts.add_team_member(team, member, actor=alice)
    return team


@pytest.mark.django_db
def test_teams_count_as_their_members_and_n_is_at_most_the_pool(alice, bob, carol, mallory, devs):
    rule = checks.required_approvals(2, [alice], [devs])
    assert rule.pool_user_ids() == {alice.pk, bob.pk, carol.pk}
    # A member who joins later is in the pool; one who leaves the portal is not.
    accounts.add_team_member(devs, mallory, actor=alice)
    mallory.is_active = False
    mallory.save()
    assert rule.pool_user_ids() == {alice.pk, bob.pk, carol.pk}

    assert refused_field(checks.required_approvals, 4, [alice], [devs]) == (
        "required_approvals",
        "4 approvals are required but the reviewers count only 3 people.",
    )
    assert refused_field(checks.required_approvals, 0, [alice], [])[0] == "required_approvals"
    assert refused_field(checks.required_approvals, 1, [devs.organization], [])[0] == "reviewers"


@pytest.mark.django_db
def test_reviewers_of_a_repository_can_read_it_and_its_teams_are_its_owners(alice, bob, carol, mallory, devs):
    org_repo = repo_services.create_repository(actor=alice, owner=devs.organization, name="site", initialize=True)
    rule = checks.required_approvals(1, [alice], [devs], repository=org_repo)
    assert rule.pool_user_ids() == {alice.pk, bob.pk, carol.pk}
    assert refused_field(checks.required_approvals, 1, [mallory], [], repository=org_repo) == (
        "reviewers",
        "mallory cannot read acme/site.",
    )
    other = accounts.create_team(accounts.create_organization(actor=alice, name="other"), actor=alice, name="ops")
    accounts.add_team_member(other, alice, actor=alice)
    assert refused_field(checks.required_approvals, 1, [], [other], repository=org_repo) == (
        "reviewers",
        "The team other/ops does not belong to acme.",
    )


@pytest.mark.django_db
def test_the_requester_never_counts_unless_self_review_is_allowed(alice, bob, carol, mallory, devs):
    pool = checks.required_approvals(2, [alice], [devs]).pool_user_ids()
    assert checks.approvals_met(2, pool, [bob.pk, carol.pk], alice.pk, True) is None
    assert checks.approvals_met(2, pool, [alice.pk, bob.pk], alice.pk, True) == (
        "1 more approval needed (1 of 2 given by the environment's reviewers). "
        "The requester's own approval does not count."
    )
    assert checks.approvals_met(2, pool, [alice.pk, bob.pk], alice.pk, False) is None
    # One approval per person; approvals from outside the pool do not count.
    assert checks.approvals_met(2, pool, [bob.pk, bob.pk, mallory.pk], alice.pk, True) == (
        "1 more approval needed (1 of 2 given by the environment's reviewers). "
        "1 approval comes from outside the reviewers and does not count."
    )
    assert checks.approvals_met(3, pool, [], alice.pk, True) == (
        "3 more approvals needed (0 of 3 given by the environment's reviewers). "
        "Only 2 reviewers other than the requester can approve."
    )
    assert checks.approvals_met(3, pool, [alice.pk, bob.pk, carol.pk], alice.pk, False) is None
    # A requester outside the pool changes nothing.
    assert checks.approvals_met(1, pool, [bob.pk], mallory.pk, True) is None
    assert checks.approvals_met(1, pool, [bob.pk], None, True) is None


# 4. Freeze windows and the wait timer.


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_dated_window_freezes_from_its_start_to_its_end_in_its_time_zone():
    (holidays,) = checks.windows(
        [{"start": "2026-12-24T00:00", "end": "2027-01-04T08:00", "timezone": "Europe/Paris", "name": "holidays"}]
    )
    assert holidays.start == paris(2026, 12, 24) and holidays.end == paris(2027, 1, 4, 8)
    # Midnight in Paris is 23:00 UTC the day before.
    assert checks.frozen_at([holidays], utc(2026, 12, 23, 22, 59)) is None
    assert checks.frozen_at([holidays], utc(2026, 12, 23, 23, 0)) == holidays
    assert checks.frozen_at([holidays], utc(2027, 1, 4, 6, 59)) == holidays
    assert checks.frozen_at([holidays], utc(2027, 1, 4, 7, 0)) is None
    assert checks.next_open([holidays], utc(2026, 12, 25)) == paris(2027, 1, 4, 8)
    assert checks.next_open([holidays], utc(2027, 2, 1)) == utc(2027, 2, 1)
    # An offset given in the value wins over the window's zone.
    (offset,) = checks.windows([{"start": "2027-01-01T00:00+00:00", "end": "2027-01-02", "timezone": "UTC"}])
    assert offset.start == utc(2027, 1, 1)


def test_a_cron_window_runs_from_friday_evening_to_monday_morning_paris_time():
    weekend = checks.window({"cron": "0 18 * * 5", "duration_minutes": 3840, "timezone": "Europe/Paris"})
    assert checks.frozen_at([weekend], paris(2026, 12, 11, 17, 59)) is None
    assert checks.frozen_at([weekend], paris(2026, 12, 11, 18, 0)) == weekend
    assert checks.frozen_at([weekend], paris(2026, 12, 13, 12, 0)) == weekend
    assert checks.frozen_at([weekend], paris(2026, 12, 14, 9, 59)) == weekend
    assert checks.frozen_at([weekend], paris(2026, 12, 14, 10, 0)) is None
    # Given in UTC, as a job's clock would give it.
    assert checks.frozen_at([weekend], utc(2026, 12, 11, 17, 0)) == weekend
    assert checks.next_open([weekend], utc(2026, 12, 12)) == paris(2026, 12, 14, 10)


def test_a_cron_window_across_a_clock_change_ends_at_the_same_local_time():
    weekend = checks.window({"cron": "0 18 * * 5", "duration_minutes": 3840, "timezone": "Europe/Paris"})
    # Clocks go forward on Sunday 28 March 2027: Friday 18:00 is 17:00 UTC, Monday 10:00 is 08:00 UTC (63 hours).
    assert checks.frozen_at([weekend], utc(2027, 3, 26, 17, 0)) == weekend
    assert checks.frozen_at([weekend], utc(2027, 3, 29, 7, 59)) == weekend
    assert checks.frozen_at([weekend], utc(2027, 3, 29, 8, 0)) is None
    opens = checks.next_open([weekend], utc(2027, 3, 27))
    assert opens == utc(2027, 3, 29, 8) and opens.utcoffset() == timedelta(hours=2)
    # Clocks go back on Sunday 25 October 2026: Friday 18:00 is 16:00 UTC, Monday 10:00 is 09:00 UTC (65 hours).
    assert checks.frozen_at([weekend], utc(2026, 10, 23, 15, 59)) is None
    assert checks.frozen_at([weekend], utc(2026, 10, 26, 8, 30)) == weekend
    assert checks.next_open([weekend], utc(2026, 10, 24)) == utc(2026, 10, 26, 9)
    # In the repeated hour the cron fires once: a window starting at 02:30 each night, for an hour.
    night = checks.window({"cron": "30 2 * * *", "duration_minutes": 60, "timezone": "Europe/Paris"})
    assert checks.frozen_at([night], utc(2026, 10, 25, 0, 45)) == night
    assert checks.frozen_at([night], utc(2026, 10, 26, 1, 45)) == night
    assert checks.frozen_at([night], utc(2026, 10, 26, 2, 45)) is None


def test_overlapping_windows_open_when_the_last_ends_and_endless_ones_never_open():
    holidays = checks.window({"start": "2026-12-18T12:00", "end": "2026-12-19T12:00", "timezone": "Europe/Paris"})
    weekend = checks.window({"cron": "0 18 * * 5", "duration_minutes": 3840, "timezone": "Europe/Paris"})
    # Friday 18 December: the dated window, then the weekend's, which it runs into.
    assert checks.frozen_at([holidays, weekend], paris(2026, 12, 18, 13)) == holidays
    assert checks.frozen_at([holidays, weekend], paris(2026, 12, 18, 19)) == weekend
    assert checks.next_open([holidays, weekend], paris(2026, 12, 18, 13)) == paris(2026, 12, 21, 10)
    always = checks.window({"cron": "0 0 * * *", "duration_minutes": 1440, "timezone": "UTC"})
    assert checks.next_open([always], utc(2026, 12, 6)) is None
    every_minute = checks.window({"cron": "* * * * *", "duration_minutes": 1, "timezone": "UTC"})
    assert checks.next_open([every_minute], utc(2026, 12, 6)) is None
    assert checks.start_blocker([always], 0, utc(2026, 12, 6), utc(2026, 12, 6, 1)) == (
        "Deployments are frozen (freeze from cron '0 0 * * *' for 1440 minutes (UTC)), for over a year."
    )


def test_bad_windows_are_refused_naming_the_field():
    cases = [
        ({"cron": "0 18 * *", "duration_minutes": 60, "timezone": "UTC"}, "freeze_windows.1.cron"),
        ({"cron": "0 0 18 * * 5", "duration_minutes": 60, "timezone": "UTC"}, "freeze_windows.1.cron"),
        ({"cron": "61 18 * * 5", "duration_minutes": 60, "timezone": "UTC"}, "freeze_windows.1.cron"),
        ({"cron": "0 0 30 2 *", "duration_minutes": 60, "timezone": "UTC"}, "freeze_windows.1.cron"),
        ({"cron": "0 18 * * 5", "duration_minutes": 0, "timezone": "UTC"}, "freeze_windows.1.duration_minutes"),
        ({"cron": "0 18 * * 5", "duration_minutes": "60", "timezone": "UTC"}, "freeze_windows.1.duration_minutes"),
        ({"cron": "0 18 * * 5", "duration_minutes": 60, "timezone": "Europe/Pariss"}, "freeze_windows.1.timezone"),
        ({"cron": "0 18 * * 5", "duration_minutes": 60}, "freeze_windows.1.timezone"),
        ({"start": "2027-01-02", "end": "2027-01-01", "timezone": "UTC"}, "freeze_windows.1.end"),
        ({"start": "Christmas", "end": "2027-01-01", "timezone": "UTC"}, "freeze_windows.1.start"),
        ({"start": "2027-01-01", "timezone": "UTC"}, "freeze_windows.1.end"),
        ({"start": "2027-01-01", "until": "2027-01-02", "timezone": "UTC"}, "freeze_windows.1.until"),
        ({"start": "2027-01-01", "end": "2027-01-02", "cron": "0 18 * * 5", "timezone": "UTC"}, "freeze_windows.1"),
    ]
    good = {"cron": "0 18 * * 5", "duration_minutes": 60, "timezone": "UTC"}
    for bad, field in cases:
        assert refused_field(checks.windows, [good, bad])[0] == field, bad
    assert refused_field(checks.windows, [good, {"cron": "0 18 * *", "duration_minutes": 60, "timezone": "UTC"}]) == (
        "freeze_windows.1.cron",
        "'0 18 * *' is not a cron expression of five fields (minute hour day month weekday, e.g. 0 18 * * 5).",
    )
    assert refused_field(checks.windows, [good, {"cron": "0 0 30 2 *", "duration_minutes": 5, "timezone": "UTC"}]) == (
        "freeze_windows.1.cron",
        "'0 0 30 2 *' never fires.",
    )
    assert refused_field(checks.windows, good)[0] == "freeze_windows"
    assert refused_field(checks.windows, [{"timezone": "UTC"}]) == (
        "freeze_windows.0.cron",
        "A window needs start and end, or cron and duration_minutes.",
    )


def test_the_wait_timer_counts_elapsed_minutes_even_across_a_clock_change():
    requested = paris(2027, 3, 28, 1, 45)
    ready = checks.wait_until(30, requested)
    # 02:15 does not exist that night in Paris: thirty minutes later is 03:15 summer time.
    assert ready == utc(2027, 3, 28, 1, 15) and ready.replace(tzinfo=None) == datetime(2027, 3, 28, 3, 15)
    assert checks.wait_until(0, requested) == requested
    assert checks.wait_timer(43200) == 43200
    for bad in (-1, 43201, 1.5, True, "30"):
        assert refused_field(checks.wait_timer, bad)[0] == "wait_timer"
    assert checks.start_blocker([], 30, requested, ready - timedelta(seconds=1)) == (
        "Waiting for the environment's 30-minute timer, until 2027-03-28 01:15 UTC."
    )
    assert checks.start_blocker([], 30, requested, ready) is None
    weekend = checks.window({"cron": "0 18 * * 5", "duration_minutes": 3840, "timezone": "Europe/Paris"})
    assert checks.start_blocker([weekend], 30, requested, ready) == (
        "Deployments are frozen (freeze from cron '0 18 * * 5' for 3840 minutes (Europe/Paris)), "
        "until 2027-03-29 10:00 Europe/Paris."
    )
