"""What a deployment may not do, through the real deployment job: a target named out of its directory, a hook reaching
out of its revision (the host's files, its loopback services), an artifact changed after its build, a branch the
environment does not take, a secret showing in a log.

The sandbox alone is tried in test_sandbox.py and the local target alone in test_local_target.py; here the same
escapes go through an environment, a real build's artifact and the rq worker."""

import base64
import hashlib
import json
import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

import django_rq
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from releases import deployments, environments, logs
from releases.local_target import LocalTarget
from releases.masking import MASK
from releases.models import BuildArtifact, Deployment
from releases.storage import artifact_storage
from releases.tests.deploying import HOOK, release_files, set_targets, statuses
from reviews.models import BranchProtection
from reviews.tests.test_job_faults import wait_for

pytestmark = pytest.mark.usefixtures("transactional_db")


def deploy(repo, environment, actor, build, run_deploys) -> Deployment:
    deployment = deployments.request_deployment(repo, environment, actor=actor, sha=build.head_sha)
    run_deploys()
    deployment.refresh_from_db()
    return deployment


def version_on(repo, environment: str, name: str) -> str:
    return (LocalTarget(repo.pk, environment, name).current / "root/srv/app/version.txt").read_text()


def hook_files(version: str, event: str, script: str) -> dict[str, bytes]:
    """A deployable commit whose hook for event is script (after the usual line saying which hook it is)."""
    files = release_files(version)
    files[f"scripts/{event}.sh"] = HOOK.format(version=version, extra=script).encode()
    return files


def files_under(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in root.rglob("*") if path.is_file() and not path.is_symlink()}


# Names.


@pytest.mark.parametrize("name", ["..", ".", "../other", "a/b", "/etc", "a/../../b"])
def test_a_local_target_name_that_leaves_its_directory_is_refused(private_repo, alice, name):
    targets = [{"name": "web", "type": "local"}, {"name": name, "type": "local"}]

    with pytest.raises(ValidationError) as refused:
        environments.set_environment(private_repo, "dev", actor=alice, targets=targets)

    assert refused.value.params == {"field": "targets.1.name"}
    assert "cannot name a local target's directory" in refused.value.message
    assert not private_repo.environments.filter(name="dev", targets__name=name).exists()


# Hooks.


@pytest.fixture
def listener():
    """A socket listening on the host's loopback, standing for any service of the host's."""
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    yield server
    server.close()


@pytest.fixture
def open_targets_root(deploys, settings):
    """A targets root open to everyone on the host (the sandbox alone keeps hooks out of it), and outside /tmp,
    which the sandbox replaces with its own."""
    root = Path(tempfile.mkdtemp(prefix="portal-targets-", dir="/var/tmp"))  # noqa: S108 (a host path hooks try)
    root.chmod(0o777)
    settings.PORTAL_TARGETS_ROOT = root
    yield root
    shutil.rmtree(root)


def _connect(address: str) -> str:
    """A hook's line that connects to a host:port or a unix socket's path and, when it gets through, says so."""
    if address.startswith("/"):
        family, where = "socket.AF_UNIX", repr(address)
    else:
        host, port = address.rsplit(":", 1)
        family, where = "socket.AF_INET", repr((host, int(port)))
    code = (
        f"import socket; s = socket.socket({family}); s.settimeout(2); s.connect({where}); "
        "s.sendall(b'SET pwned-by-a-hook 1\\r\\n'); print('connected to', s.recv(64))"
    )
    return f"python3 -c {json.dumps(code)} 2>&1 | tail -1"


def test_a_hook_writes_nothing_outside_its_revision_and_reaches_no_loopback_service(
    private_repo, alice, bob, built, run_deploys, open_targets_root, listener
):
    dev = set_targets(private_repo, "dev", ["a", "b"], alice, deployment_config={"name": "OneAtATime"})
    first = deploy(private_repo, dev, bob, built(private_repo, bob, release_files("v1")), run_deploys)
    assert first.deployment_status == "Succeeded", first.message
    a, b = (LocalTarget(private_repo.pk, "dev", name) for name in ("a", "b"))
    # Open to everyone on the host, so that only the sandbox keeps the hooks out: the targets' tree, each target's
    # live revision and its files.
    deploys = open_targets_root
    environment_dir = deploys / str(private_repo.pk) / "dev"
    for directory in (deploys / str(private_repo.pk), environment_dir, a.base, b.base):
        directory.chmod(0o777)
    for target in (a, b):
        for path in (target.revisions, target.revision(first.pk), target.revision(first.pk) / "root"):
            path.chmod(0o777)
        (target.current / "root/srv/app/version.txt").chmod(0o666)
    host_tmp = Path("/tmp") / f"pwned-{uuid.uuid4().hex}"  # noqa: S108 (the host's /tmp is what the hook tries)
    var_dir = Path(settings.VAR_DIR)
    outside = [
        deploys / "pwned",
        environment_dir / "pwned",
        a.base / "pwned",
        b.base / "pwned",
        a.current / "root/srv/app/version.txt",
        b.current / "root/srv/app/version.txt",
        b.current / "root/pwned",
        var_dir / "pwned",
        host_tmp,
    ]
    redis_url = os.environ["REDIS_URL"]
    redis_address = (
        redis_url.removeprefix("unix://").split("?")[0]
        if redis_url.startswith("unix://")
        else f"{django_rq.get_connection('deploys').connection_pool.connection_kwargs['host']}:"
        f"{django_rq.get_connection('deploys').connection_pool.connection_kwargs['port']}"
    )
    script = "".join(f"echo pwned > '{path}' 2>/dev/null && echo 'wrote {path}'\n" for path in outside)
    script += f"{_connect(redis_address)}\n{_connect(f'127.0.0.1:{listener.getsockname()[1]}')}\n"
    script += 'echo mine > "$PORTAL_TARGET_ROOT/mine.txt" && echo "wrote my root"\n'
    before = files_under(deploys)
    var_before = files_under(var_dir)

    second = deploy(
        private_repo, dev, bob, built(private_repo, bob, hook_files("v2", "AfterInstall", script)), run_deploys
    )

    assert second.deployment_status == "Succeeded", second.message
    redis = django_rq.get_connection("deploys")
    for run in second.targets.all():
        said = logs.read_all(run).decode()
        # The hook got as far as its own root, and the sandbox's own /tmp; nothing of the host's.
        assert "wrote my root" in said
        assert f"wrote {host_tmp}" in said
        assert [line for line in said.splitlines() if line.startswith("wrote /") and str(host_tmp) not in line] == []
        assert "connected to" not in said
        assert "ConnectionRefusedError: [Errno 111] Connection refused" in said
        assert (LocalTarget(private_repo.pk, "dev", run.name).current / "root/mine.txt").read_text() == "mine\n"
    # ... and from the host's side: nothing written, nothing connected.
    for path in outside:
        assert not path.exists() or b"pwned" not in path.read_bytes(), path
    after = files_under(deploys)
    assert {path: data for path, data in after.items() if path in before} == before
    assert files_under(var_dir) == var_before
    assert not host_tmp.exists()
    assert redis.exists("pwned-by-a-hook") == 0
    with pytest.raises(BlockingIOError):
        listener.accept()


# The artifact and the ref at the door.


def _tamper_bytes(artifact) -> None:
    with open(artifact_storage().path(artifact.storage_name), "ab") as stored:
        stored.write(b"\0")


def _tamper_provenance(artifact) -> None:
    envelope = artifact.provenance
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["buildDefinition"]["externalParameters"]["ref"] = "refs/heads/main-changed"
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    artifact.provenance = envelope
    artifact.save(update_fields=["provenance"])


def _tamper_bytes_and_digest(artifact) -> None:
    """The bytes changed and the digest the build recorded changed to match: the signed statement still names
    the old bytes."""
    data = Path(artifact_storage().path(artifact.storage_name)).read_bytes() + b"\0"
    artifact.sha256 = hashlib.sha256(data).hexdigest()
    artifact.save(update_fields=["sha256"])
    # The store keeps bytes under their digest's name.
    changed = Path(artifact_storage().path(artifact.storage_name))
    changed.parent.mkdir(parents=True, exist_ok=True)
    changed.write_bytes(data)


def _swap_provenance(artifact) -> None:
    """The provenance of another build's artifact: signed by the portal, but for other bytes."""
    other = BuildArtifact.objects.exclude(pk=artifact.pk).get(build__repository=artifact.build.repository)
    artifact.provenance = other.provenance
    artifact.save(update_fields=["provenance"])


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_tamper_bytes, "The artifact's bytes changed since the build: sha256 "),
        (_tamper_provenance, "The artifact's provenance does not verify: "),
        (_tamper_bytes_and_digest, "The artifact's provenance does not verify: "),
        (_swap_provenance, "The artifact's provenance does not verify: "),
    ],
    ids=["bytes", "provenance", "bytes-and-digest", "another-artifacts-provenance"],
)
def test_an_artifact_changed_after_its_build_is_refused_at_the_door(
    private_repo, alice, bob, built, run_deploys, deploys, tamper, reason
):
    dev = set_targets(private_repo, "dev", ["a", "b"], alice)
    first = deploy(private_repo, dev, bob, built(private_repo, bob, release_files("v1")), run_deploys)
    assert first.deployment_status == "Succeeded", first.message
    build = built(private_repo, bob, release_files("v2"))
    tamper(build.artifacts.get())
    targets_before = files_under(deploys)

    refused = deploy(private_repo, dev, bob, build, run_deploys)

    assert refused.deployment_status == "Failed"
    assert refused.message.startswith(reason), refused.message
    assert f"Refused: {refused.message}" in logs.read_all(refused).decode()
    assert statuses(refused) == ["queued", "in_progress", "failure"]
    # No target was touched, so there is nothing to roll back.
    assert refused.targets.count() == 0
    assert files_under(deploys) == targets_before
    assert not Deployment.objects.filter(rollback_of=refused).exists()
    assert [version_on(private_repo, "dev", name) for name in ("a", "b")] == ["v1\n", "v1\n"]


@pytest.mark.parametrize(
    ("policy", "takes"),
    [
        ({"patterns": ["branch:main", "tag:v*"]}, "branch:main or tag:v*"),
        ({"protected_branches": True}, "protected branches"),
    ],
    ids=["patterns", "protected"],
)
def test_a_branch_the_environment_does_not_take_cannot_reach_it(
    private_repo, alice, bob, built, run_deploys, deploys, policy, takes
):
    main = built(private_repo, bob, release_files("v1"))
    feature = built(private_repo, bob, release_files("feature"), branch="feature/x")
    BranchProtection.objects.create(repository=private_repo, branch_pattern="main", require_pull_request=False)
    dev = set_targets(private_repo, "dev", ["a"], alice, deployment_branch_policy=policy)
    first = deploy(private_repo, dev, bob, main, run_deploys)
    assert first.deployment_status == "Succeeded", first.message
    assert "Verified: built from refs/heads/main, which dev takes" in logs.read_all(first).decode()

    refused = deploy(private_repo, dev, bob, feature, run_deploys)

    assert refused.deployment_status == "Failed"
    assert refused.message == f"Built from refs/heads/feature/x, and dev takes only {takes}."
    assert refused.targets.count() == 0
    assert not Deployment.objects.filter(rollback_of=refused).exists()
    assert version_on(private_repo, "dev", "a") == "v1\n"


# Secrets.

SECRET = "s3cr3t-token-7f1d2a"


def test_hooks_get_the_environments_secrets_and_no_log_shows_them(private_repo, alice, bob, built, run_deploys):
    dev = set_targets(private_repo, "dev", ["a"], alice)
    environments.set_variable(dev, "API_TOKEN", SECRET, secret=True, actor=alice)
    environments.set_variable(dev, "GREETING", "hello from dev", secret=False, actor=alice)
    script = (
        'echo "token: $API_TOKEN, greeting: $GREETING"\n'
        'printf %s "$API_TOKEN" | base64\n'
        'printf %s "$API_TOKEN" > "$PORTAL_TARGET_ROOT/token.txt"\n'
    )

    deployment = deploy(
        private_repo, dev, bob, built(private_repo, bob, hook_files("v1", "ApplicationStart", script)), run_deploys
    )

    assert deployment.deployment_status == "Succeeded", deployment.message
    # The hook had the secret: it wrote it to its own root.
    assert (LocalTarget(private_repo.pk, "dev", "a").current / "root/token.txt").read_text() == SECRET
    (run,) = deployment.targets.all()
    said = logs.read_all(run).decode()
    assert f"token: {MASK}, greeting: hello from dev" in said
    encoded = base64.b64encode(SECRET.encode()).decode()
    # Wherever the log is kept: the store, the worker's disk, the live copy in Redis.
    with artifact_storage().open(logs.stored_name(run), "rb") as stored:
        kept = {"store": stored.read(), "disk": logs.local_path(run).read_bytes()}
    kept["redis"] = django_rq.get_connection("deploys").get(run.log_key) or b""
    assert kept["store"] == said.encode()
    for where, data in kept.items():
        assert SECRET.encode() not in data and encoded.encode() not in data, where
    assert SECRET not in logs.read_all(deployment).decode()


def command_lines() -> dict[int, bytes]:
    """Every host process's command line, which any user of the host may read (ps shows them)."""
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
    return found


def test_a_secret_is_not_on_any_command_line_of_the_host_while_hooks_run(
    private_repo, alice, bob, built, deploy_worker_env, rq_workers
):
    dev = set_targets(private_repo, "dev", ["a"], alice)
    environments.set_variable(dev, "API_TOKEN", SECRET, secret=True, actor=alice)
    build = built(private_repo, bob, hook_files("v1", "ApplicationStart", 'echo "running"; sleep 2'))
    deployment = deployments.request_deployment(private_repo, dev, actor=bob, sha=build.head_sha)
    worker = rq_workers(deploy_worker_env, "deploys")

    def hook_runs() -> bool:
        run = deployment.targets.first()
        return run is not None and "running" in logs.read_all(run).decode()

    wait_for(hook_runs, timeout=30)
    seen = command_lines()
    assert worker.wait(timeout=60) == 0

    deployment.refresh_from_db()
    assert deployment.deployment_status == "Succeeded", deployment.message
    # The hook was running (its sandbox's processes among those seen), and no command line held the secret.
    assert any(b"ApplicationStart.sh" in line for line in seen.values())
    assert [pid for pid, line in seen.items() if SECRET.encode() in line] == []
