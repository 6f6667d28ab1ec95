"""Provenance: a real build signs a statement per stored artifact, which verifies against the stored bytes and
against nothing else; the key and the statements are published through the API; the command checks a file."""

import base64
import hashlib
import json
from datetime import datetime

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.management import CommandError, call_command
from django.test import Client

from releases import logs, provenance, services
from releases.models import BuildArtifact
from releases.storage import artifact_storage
from repos import git

SPEC = (
    "version: 0.2\nphases:\n  build:\n    commands:\n"
    '      - mkdir -p out docs && echo "$GREETING" > out/app.txt && echo manual > docs/guide.txt\n'
    "artifacts:\n  files:\n    - out/**/*\n  name: app\n"
    "  secondary-artifacts:\n    docs:\n      files:\n        - docs/*\n      name: docs\n"
)


@pytest.fixture
def built(private_repo, alice, run_builds):  # noqa: F811 (fixture)
    """alice's manual build of main, with a start variable and a time limit of 7 minutes: two artifacts."""
    services.save_build_settings(private_repo, actor=alice, timeout_minutes=7)
    sha = git.commit_files(private_repo.path, "main", {"buildspec.yml": SPEC.encode()}, "b", name="a", email="a@x")
    build = services.start_build(
        private_repo, sha=sha, ref="refs/heads/main", trigger="manual", initiator=alice, variables={"GREETING": "hi"}
    )
    run_builds()
    build.refresh_from_db()
    assert build.build_status == "SUCCEEDED", build.message
    return build


def stored_bytes(artifact: BuildArtifact) -> bytes:
    with artifact_storage().open(artifact.storage_name) as stored:
        return stored.read()


def payload_of(envelope: dict) -> dict:
    return json.loads(base64.b64decode(envelope["payload"]))


def resigned(envelope: dict, statement: dict) -> dict:
    """The envelope with another payload under the same signatures."""
    return envelope | {"payload": base64.b64encode(json.dumps(statement).encode()).decode()}


@pytest.mark.usefixtures("transactional_db")
def test_each_stored_artifact_gets_a_signed_statement_of_where_it_came_from(built, private_repo, settings):
    artifacts = {artifact.name: artifact for artifact in BuildArtifact.objects.filter(build=built)}
    assert sorted(artifacts) == ["app", "docs"]
    key = provenance.public_key()
    for name, artifact in artifacts.items():
        envelope = artifact.provenance
        assert envelope["payloadType"] == "application/vnd.in-toto+json"
        assert [signature["keyid"] for signature in envelope["signatures"]] == [key["keyid"]]
        statement = provenance.verify(envelope, stored_bytes(artifact))
        assert statement == payload_of(envelope)
        assert statement["_type"] == "https://in-toto.io/Statement/v1"
        assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
        assert statement["subject"] == [{"name": f"{name}.zip", "digest": {"sha256": artifact.sha256}}]
    predicate = payload_of(artifacts["app"].provenance)["predicate"]
    definition, run = predicate["buildDefinition"], predicate["runDetails"]
    assert definition["buildType"] == f"{settings.PORTAL_BASE_URL}/-/build-types/buildspec/v0.2"
    assert definition["externalParameters"] == {
        "repository": private_repo.http_url,
        "ref": "refs/heads/main",
        "buildspec": {"path": "buildspec.yml", "digest": {"sha256": hashlib.sha256(SPEC.encode()).hexdigest()}},
        "variables": {"GREETING": "hi"},
    }
    assert definition["internalParameters"] == {
        "trigger": "manual",
        "buildNumber": built.number,
        "network": False,
        "timeoutMinutes": 7,
    }
    assert definition["resolvedDependencies"] == [
        {"uri": private_repo.http_url, "digest": {"gitCommit": built.head_sha}}
    ]
    assert run["builder"] == {"id": settings.PORTAL_BASE_URL}
    assert run["metadata"]["invocationId"] == built.web_url
    started = datetime.fromisoformat(run["metadata"]["startedOn"])
    finished = datetime.fromisoformat(run["metadata"]["finishedOn"])
    assert run["metadata"]["startedOn"].endswith("Z") and started <= finished
    assert abs((started - built.build_started).total_seconds()) < 0.001
    assert abs((finished - built.build_ended).total_seconds()) < 0.001
    log_digest = hashlib.sha256(logs.read_all(built)).hexdigest()
    assert run["byproducts"] == [{"name": "build.log", "digest": {"sha256": log_digest}}]


@pytest.mark.usefixtures("transactional_db")
def test_a_changed_payload_another_artifact_or_another_key_do_not_verify(built, settings):
    artifact = BuildArtifact.objects.get(build=built, name="app")
    envelope, content = artifact.provenance, stored_bytes(artifact)
    # The digest alone does as well as the bytes, with or without its algorithm's name.
    assert provenance.verify(envelope, artifact.sha256) == provenance.verify(envelope, f"sha256:{artifact.sha256}")

    changed = payload_of(envelope)
    changed["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"]["gitCommit"] = "0" * 40
    with pytest.raises(provenance.ProvenanceError, match="No signature verifies with the portal's key"):
        provenance.verify(resigned(envelope, changed), content)

    with pytest.raises(provenance.ProvenanceError, match="is not the statement's subject") as error:
        provenance.verify(envelope, content + b"\0")
    assert hashlib.sha256(content + b"\0").hexdigest() in str(error.value)
    other = BuildArtifact.objects.get(build=built, name="docs")
    with pytest.raises(provenance.ProvenanceError, match="is not the statement's subject"):
        provenance.verify(envelope, stored_bytes(other))

    with pytest.raises(provenance.ProvenanceError, match="payloadType is 'application/json'"):
        provenance.verify(envelope | {"payloadType": "application/json"}, content)
    with pytest.raises(provenance.ProvenanceError, match="Not a DSSE envelope"):
        provenance.verify({"payload": envelope["payload"]}, content)
    with pytest.raises(provenance.ProvenanceError, match="not a sha256 digest"):
        provenance.verify(envelope, "md5:abc")

    # The same statement signed by another key (another portal's, or a forger's) does not verify here.
    settings.SECRET_KEY = "another portal's secret key"
    forged = provenance.sign(payload_of(envelope))
    assert forged["signatures"][0]["keyid"] != envelope["signatures"][0]["keyid"]
    assert provenance.verify(forged, content)["subject"] == payload_of(envelope)["subject"]
    settings.SECRET_KEY = "the secret key after a rotation"
    for signed in (forged, forged | {"signatures": [{"keyid": "", "sig": forged["signatures"][0]["sig"]}]}):
        with pytest.raises(provenance.ProvenanceError, match="signed by another key"):
            provenance.verify(signed, content)


@pytest.mark.usefixtures("transactional_db")
def test_after_the_secret_key_rotates_older_statements_verify_with_the_fallback(built, settings):
    artifact = BuildArtifact.objects.get(build=built, name="app")
    old_key = settings.SECRET_KEY
    old_id = provenance.public_key()["keyid"]
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a new secret key", [old_key]
    assert provenance.public_key()["keyid"] != old_id
    assert provenance.verify(artifact.provenance, artifact.sha256)["subject"][0]["name"] == "app.zip"
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(provenance.ProvenanceError, match="No signature verifies"):
        provenance.verify(artifact.provenance, artifact.sha256)


@pytest.mark.django_db
def test_the_public_key_is_published_to_anyone_and_checks_the_signatures(client):
    statement = {"_type": provenance.STATEMENT_TYPE, "subject": [], "predicateType": provenance.PREDICATE_TYPE}
    envelope = provenance.sign(statement)
    response = Client().get("/api/v1/builds/provenance-key")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"keyid", "public_key", "algorithm"} and body["algorithm"] == "ed25519"
    assert body["keyid"] == envelope["signatures"][0]["keyid"]
    public = serialization.load_pem_public_key(body["public_key"].encode())
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert hashlib.sha256(raw).hexdigest() == body["keyid"]
    payload = base64.b64decode(envelope["payload"])
    # Anyone checks a signature with it and DSSE's pre-authentication encoding, without the portal's code.
    signed = b"DSSEv1 28 application/vnd.in-toto+json %d %b" % (len(payload), payload)
    public.verify(base64.b64decode(envelope["signatures"][0]["sig"]), signed)


@pytest.mark.usefixtures("transactional_db")
def test_attestations_are_found_by_digest_by_those_who_read_the_repository(built, private_repo, carol, mallory):
    artifact = BuildArtifact.objects.get(build=built, name="app")
    url = f"/api/v1/repos/alice/project/attestations/sha256:{artifact.sha256}"
    reader = Client()
    reader.force_login(carol)
    response = reader.get(url)
    assert response.status_code == 200
    [attestation] = response.json()["attestations"]
    assert attestation["repository_id"] == private_repo.pk
    assert attestation["build_url"] == built.web_url
    bundle = attestation["bundle"]
    assert bundle["dsseEnvelope"] == artifact.provenance
    assert bundle["verificationMaterial"] == {"publicKey": {"hint": provenance.public_key()["keyid"]}}
    assert provenance.verify(bundle["dsseEnvelope"], stored_bytes(artifact))["subject"][0]["name"] == "app.zip"

    assert reader.get(url.replace(artifact.sha256, "0" * 64)).json() == {"attestations": []}
    assert reader.get(url, {"per_page": 0}).status_code == 422
    wrong = reader.get(url.replace("sha256:", "md5:"))
    assert wrong.status_code == 422 and "sha256:" in json.dumps(wrong.json())
    outsider = Client()
    outsider.force_login(mallory)
    assert outsider.get(url).status_code == 404
    assert Client().get(url).status_code == 401


@pytest.mark.usefixtures("transactional_db")
def test_the_command_verifies_an_artifact_and_refuses_a_changed_one(built, tmp_path, capsys):
    artifact = BuildArtifact.objects.get(build=built, name="app")
    archive = tmp_path / "app.zip"
    archive.write_bytes(stored_bytes(artifact))
    envelope = tmp_path / "app.intoto.json"
    envelope.write_text(json.dumps(artifact.provenance))
    call_command("verify_provenance", str(archive), str(envelope))
    out = capsys.readouterr().out
    assert f"sha256:{artifact.sha256}" in out
    assert f"repository: {built.repository.http_url}" in out
    assert f"commit: {built.head_sha}" in out
    assert f"build: {built.web_url}" in out
    # A bundle as the attestations API answers it does as well.
    (tmp_path / "bundle.json").write_text(json.dumps({"dsseEnvelope": artifact.provenance}))
    call_command("verify_provenance", str(archive), str(tmp_path / "bundle.json"))

    archive.write_bytes(stored_bytes(artifact) + b"changed")
    with pytest.raises(CommandError, match="does not verify: The artifact's sha256"):
        call_command("verify_provenance", str(archive), str(envelope))
    envelope.write_text("{not json")
    with pytest.raises(CommandError, match="not JSON"):
        call_command("verify_provenance", str(archive), str(envelope))
    with pytest.raises(CommandError, match="No such file"):
        call_command("verify_provenance", str(tmp_path / "missing.zip"), str(envelope))
