"""The release template: a repository whose first commit builds for real, deploys to dev with its hooks passing, and
goes on to uat with the same bytes; created from the "New repository" page by those who may create there."""

import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest
from django.core.exceptions import PermissionDenied

from portal import services as accounts
from portal.models import AuditEvent
from releases import logs, pipelines, release_template
from releases.appspec import parse_appspec
from releases.buildspec import parse_buildspec
from releases.local_target import LocalTarget
from releases.models import Build, Deployment, Environment, PipelineExecution
from releases.pipelinespec import ActionType, parse_pipeline
from releases.reports import parse_junit
from repos import git, signals
from repos import services as repo_services
from repos.models import Push, Repository, Role

TEMPLATE = {"template": release_template.KEY}


def create(actor, owner, name="shop", **options) -> Repository:
    return release_template.create_from_release_template(actor=actor, owner=owner, name=name, **options)


def file_text(repo: Repository, path: str) -> str:
    return "\n".join(git.file_lines(repo.path, git.branch_sha(repo.path, repo.default_branch), path))


def new(client, **data):
    payload = {"owner": "alice", "name": "shop", "description": "", "visibility": "private", "default_branch": "main"}
    return client.post("/new", payload | data)


def nothing_made(settings) -> bool:
    return (
        not Repository.objects.exists()
        and not Environment.objects.exists()
        and not Build.objects.exists()
        and not Push.objects.exists()
        and list(settings.GIT_ROOT.iterdir()) == []
    )


# The files.


@pytest.mark.parametrize("branch", ["main", "trunk"])
def test_the_templates_build_deployment_and_pipeline_files_parse_without_warnings(branch):
    files = release_template.template_files("shop", default_branch=branch)

    buildspec = parse_buildspec(files["buildspec.yml"])
    assert buildspec.warnings == ()
    assert [group.name for group in buildspec.reports] == ["unit-tests"]
    assert set(buildspec.artifacts.files) == {"appspec.yml", "app/**/*", "scripts/**/*"}

    appspec = parse_appspec(files["appspec.yml"])
    assert appspec.warnings == ()
    assert [(item.source, item.destination) for item in appspec.files] == [("app", "/srv/shop")]
    events = ["ApplicationStop", "BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService"]
    locations = [script.location for event in events for script in appspec.scripts(event)]
    assert locations == [f"scripts/{name}" for name in release_template.HOOKS]
    assert all(location in files for location in locations)

    pipeline = parse_pipeline(files["pipeline.yml"])
    assert pipeline.warnings == ()
    assert pipeline.source_branch == branch
    assert pipeline.stage_names == ("Source", "Build", "Deploy-dev", "Approval", "Deploy-uat")
    assert pipeline.stage("Approval").actions[0].type == ActionType.APPROVAL
    assert pipeline.environments() == ("dev", "uat")


def test_the_sample_apps_tests_write_a_junit_report_that_shows_a_failure(tmp_path):
    files = release_template.template_files("shop")
    for path in ("src/hello.py", "src/VERSION", "tests/test_hello.py", "tests/run.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(files[path])

    passing = subprocess.run([sys.executable, "tests/run.py"], cwd=tmp_path, capture_output=True, text=True)
    assert passing.returncode == 0, passing.stderr
    cases = parse_junit((tmp_path / "reports/junit.xml").read_bytes())
    assert sorted((case.classname, case.name, case.status) for case in cases) == [
        ("test_hello.GreetingTest", "test_it_greets_the_world_by_default", "SUCCEEDED"),
        ("test_hello.GreetingTest", "test_it_says_which_environment_it_runs_in", "SUCCEEDED"),
        ("test_hello.VersionTest", "test_the_version_is_a_release_number", "SUCCEEDED"),
    ]

    (tmp_path / "src/VERSION").write_text("next\n")
    failing = subprocess.run([sys.executable, "tests/run.py", "out/unit.xml"], cwd=tmp_path, capture_output=True)
    assert failing.returncode == 1
    report = ElementTree.parse(tmp_path / "out/unit.xml").getroot()
    assert (report.get("tests"), report.get("failures")) == ("3", "1")
    failed = [case for case in parse_junit((tmp_path / "out/unit.xml").read_bytes()) if case.status == "FAILED"]
    assert [case.name for case in failed] == ["test_the_version_is_a_release_number"]
    assert "not found in 'next'" in failed[0].message


# The service.


def test_it_creates_the_repository_its_first_commit_and_environments_dev_and_uat(alice, settings):
    repo = create(alice, alice, description="Our shop", visibility="internal")

    assert (repo.full_name, repo.description, repo.visibility) == ("alice/shop", "Our shop", "internal")
    head = git.head_commit(repo.path, "main")
    assert head.summary == release_template.COMMIT_MESSAGE
    assert file_text(repo, "README.md").startswith("# shop\n\nOur shop\n")
    assert "destination: /srv/shop" in file_text(repo, "appspec.yml")
    assert 'APP_DIR="${PORTAL_TARGET_ROOT:-}/srv/shop"' in file_text(repo, "scripts/common.sh")
    # The first commit is recorded as alice's push, which queued its build.
    push = Push.objects.get(repository=repo)
    assert (push.pusher, push.ref, push.new_sha, push.protocol) == (alice, "refs/heads/main", head.sha, "web")
    build = Build.objects.get(repository=repo)
    assert (build.head_sha, build.trigger, build.initiator) == (head.sha, Build.Trigger.PUSH, alice)

    dev, uat = Environment.objects.filter(repository=repo).order_by("position")
    for environment in (dev, uat):
        [target] = environment.targets.all()
        assert (target.name, target.kind) == ("local", "local")
        assert target.health_command == 'python3 "$PORTAL_TARGET_ROOT/srv/shop/hello.py" --version'
    assert (dev.name, dev.required_approvals, list(dev.reviewer_users.all())) == ("dev", 0, [])
    # alice alone could never approve her own release: uat takes any other writer's answer in the pipeline.
    assert (uat.name, uat.required_approvals, list(uat.reviewer_teams.all())) == ("uat", 0, [])
    assert "any writer other than the requester" in file_text(repo, "README.md")
    # The README tells how a push goes out: by the release pipeline, by itself.
    assert "Every push to `main`, a merged pull request's too, starts an execution of the `release` pipeline" in (
        file_text(repo, "README.md").replace("\n", " ")
    )
    assert AuditEvent.objects.filter(action="repo.create_from_template", target_id=str(repo.pk)).exists()


def test_an_organizations_owners_team_reviews_uat_when_it_leaves_someone_besides_the_requester(alice, bob):
    org = accounts.create_organization(actor=alice, name="acme")
    alone = create(alice, org, name="first")
    uat = Environment.objects.get(repository=alone, name="uat")
    assert (uat.required_approvals, list(uat.reviewer_teams.all())) == (0, [])

    owners = org.teams.get(name="owners")
    owners.members.add(bob)
    repo = create(alice, org, name="second")
    uat = Environment.objects.get(repository=repo, name="uat")
    assert (uat.required_approvals, list(uat.reviewer_teams.all()), uat.prevent_self_review) == (1, [owners], True)
    assert Environment.objects.get(repository=repo, name="dev").required_approvals == 0
    assert "One of the acme/owners team approves it" in file_text(repo, "README.md")


def test_only_those_who_may_create_in_the_owner_use_the_template(alice, bob, settings):
    org = accounts.create_organization(actor=alice, name="acme")
    with pytest.raises(PermissionDenied):
        create(bob, alice)
    with pytest.raises(PermissionDenied):
        create(bob, org)
    assert nothing_made(settings)


def test_a_failure_after_the_repository_was_made_leaves_nothing_behind(alice, settings):
    def refuse(sender, **kwargs):
        raise RuntimeError("the queue is gone")

    signals.push_received.connect(refuse, dispatch_uid="test.refuse")
    try:
        with pytest.raises(RuntimeError):
            create(alice, alice)
    finally:
        signals.push_received.disconnect(dispatch_uid="test.refuse")
    assert nothing_made(settings)
    assert not AuditEvent.objects.filter(action__in=["repo.create", "environment.create"]).exists()


# A real build and real deployments of the first commit.


@pytest.mark.usefixtures("transactional_db")
def test_the_first_commit_builds_deploys_to_dev_with_its_hooks_and_goes_to_uat_with_the_same_bytes(
    alice, bob, deploys, run_builds, run_deploys
):
    repo = create(alice, alice)
    repo_services.set_collaborator(repo, bob, actor=alice, role=Role.WRITE)
    sha = git.branch_sha(repo.path, "main")

    run_builds()

    build = Build.objects.get(repository=repo, head_sha=sha)
    assert build.build_status == Build.BuildStatus.SUCCEEDED, build.message
    [report] = build.reports
    assert report["group"] == "unit-tests" and report["errors"] == []
    assert [case["status"] for case in report["cases"]] == ["SUCCEEDED"] * 3
    [artifact] = build.artifacts.all()

    # The release pipeline deploys the build to dev by itself, then waits for the approval of uat.
    run_deploys()
    dev = Environment.objects.get(repository=repo, name="dev")
    deployment = Deployment.objects.get(environment=dev)

    deployment.refresh_from_db()
    assert deployment.deployment_status == Deployment.Status.SUCCEEDED, deployment.message
    [run] = deployment.targets.all()
    events = ["DownloadBundle", "BeforeInstall", "Install", "AfterInstall", "ApplicationStart", "ValidateService"]
    assert [(event["event"], event["status"]) for event in run.events] == [
        (event, "SUCCEEDED") for event in [*events, "HealthCheck"]
    ]
    log = logs.read_all(run).decode()
    assert "Hello, alice/shop from dev!" in log
    assert f"ValidateService: version 1.0.0 ({sha[:12]}) is live in dev" in log
    installed = LocalTarget(repo.pk, "dev", "local").current / "root/srv/shop"
    assert (installed / "REVISION").read_text() == f"{sha}\n"
    assert (installed / "ENVIRONMENT").read_text() == "dev\n"
    target = dev.targets.get()
    assert (target.health, target.check_healthy, target.revision_id) == ("healthy", True, deployment.pk)

    # The same artifact goes to uat once a writer other than the one who pushed approves (a personal repository's
    # uat has no reviewers of its own).
    execution = PipelineExecution.objects.get(pipeline__repository=repo)
    pipelines.answer_approval(execution, "Approval", "Approve", user=bob, status="Approved", summary="ship it")
    run_deploys()
    uat = Environment.objects.get(repository=repo, name="uat")
    promoted = Deployment.objects.get(environment=uat)
    assert promoted.deployment_status == Deployment.Status.SUCCEEDED, promoted.message
    assert promoted.artifact == deployment.artifact
    installed = LocalTarget(repo.pk, "uat", "local").current / "root/srv/shop"
    assert (installed / "ENVIRONMENT").read_text() == "uat\n"


@pytest.mark.usefixtures("transactional_db")
def test_validate_service_fails_a_deployment_whose_installed_version_is_not_the_one_deployed(
    alice, deploys, built, run_builds, run_deploys
):
    repo = create(alice, alice)
    run_builds()
    # The release pipeline deploys the first commit to dev.
    run_deploys()
    dev = Environment.objects.get(repository=repo, name="dev")
    first = Deployment.objects.get(environment=dev)
    assert first.deployment_status == Deployment.Status.SUCCEEDED, first.message

    # An AfterInstall that leaves another version in place: ValidateService notices, and dev rolls back.
    after_install = file_text(repo, "scripts/after_install.sh") + '\necho 0.9.0 > "$APP_DIR/VERSION"\n'
    build = built(repo, alice, {"scripts/after_install.sh": after_install.encode()})
    run_deploys()
    failed = Deployment.objects.get(environment=dev, sha=build.head_sha)

    failed.refresh_from_db()
    assert failed.deployment_status == Deployment.Status.FAILED
    [run] = failed.targets.all()
    assert (run.events[-1]["event"], run.events[-1]["status"]) == ("ValidateService", "FAILED")
    log = logs.read_all(run).decode()
    # The previous revision's ApplicationStop stopped what dev ran.
    assert f"ApplicationStop: stopping version 1.0.0 ({first.sha[:12]}) in dev" in log
    assert "the installed version is not the one deployed" in log
    rollback = failed.rollbacks.get()
    assert rollback.deployment_status == Deployment.Status.SUCCEEDED and rollback.artifact == first.artifact
    assert LocalTarget(repo.pk, "dev", "local").current_revision() == str(rollback.pk)


# The "New repository" page.


def test_the_new_repository_page_offers_the_release_template(client, alice):
    client.force_login(alice)
    page = client.get("/new").content.decode()
    assert release_template.LABEL in page
    assert 'name="template" value="release"' in page
    assert release_template.DESCRIPTION in page


def test_the_form_creates_from_the_template_and_without_it_as_before(client, alice):
    client.force_login(alice)
    response = new(client, **TEMPLATE, initialize="on")
    assert (response.status_code, response["Location"]) == (302, "/alice/shop")
    repo = Repository.objects.get(name="shop")
    assert git.head_commit(repo.path, "main").summary == release_template.COMMIT_MESSAGE
    assert sorted(Environment.objects.filter(repository=repo).values_list("name", flat=True)) == ["dev", "uat"]

    assert new(client, name="plain", template="")["Location"] == "/alice/plain"
    plain = Repository.objects.get(name="plain")
    assert git.branches(plain.path) == []
    assert not Environment.objects.filter(repository=plain).exists()


def test_the_form_creates_from_the_template_only_where_the_user_may_create(client, alice, bob, settings):
    org = accounts.create_organization(actor=alice, name="acme")
    accounts.create_team(org, actor=alice, name="developers").members.add(bob)
    client.force_login(bob)
    for owner in ("alice", "acme"):
        response = new(client, owner=owner, **TEMPLATE)
        assert response.status_code == 200
        assert "Select a valid choice" in response.content.decode()
    assert nothing_made(settings)

    client.force_login(alice)
    assert new(client, owner="acme", **TEMPLATE)["Location"] == "/acme/shop"
    assert Repository.objects.get(name="shop").owner == org


def test_an_existing_name_is_refused_with_the_forms_error_and_nothing_half_made(client, alice, settings):
    taken = repo_services.create_repository(actor=alice, owner=alice, name="Shop")
    client.force_login(alice)
    response = new(client, **TEMPLATE)
    assert response.status_code == 200
    assert "alice already has a repository named" in response.content.decode()
    assert list(Repository.objects.all()) == [taken]
    assert [path.name for path in settings.GIT_ROOT.iterdir()] == [taken.path.name]
    assert not Environment.objects.exists() and not Build.objects.exists() and not Push.objects.exists()
    assert git.branches(taken.path) == []


def test_an_unknown_template_is_refused_by_the_form(client, alice, settings):
    client.force_login(alice)
    response = new(client, template="kitchen-sink")
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert nothing_made(settings)
