"""The build pages over real builds (a real rq worker, the real sandbox): the Builds tab and its filters, a build's
page, its log read by offset, its downloads, the badge, the actions on a build and the build settings."""

import hashlib
import json
import re

import pytest
from django.test import Client

from portal.models import AuditEvent
from releases import log_html, logs, services
from releases.models import Build, BuildArtifact, BuildSettings
from releases.provenance import verify
from releases.templatetags.build_tags import seconds
from releases.tests.test_builds import FAILING, push_files
from repos import git

QUICK = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo quick\n"
FULL = (
    "version: 0.2\nproxy:\n  upload-artifacts: yes\n"
    "env:\n  exported-variables:\n    - APP_VERSION\n"
    "phases:\n  build:\n    commands:\n"
    "      - export APP_VERSION=1.2.3\n"
    "      - mkdir -p out && echo made > out/app.txt\n"
    "      - printf '\\033[31mred\\033[0m and \\033[1;92mbold green\\033[0m <script>alert(1)</script>\\n'\n"
    "artifacts:\n  files:\n    - out/**/*\n  name: app\n"
    "reports:\n  unit:\n    files:\n      - 'reports/*.xml'\n"
)
JUNIT = (
    '<testsuite name="unit"><testcase classname="app.Test" name="adds" time="0.25"/>'
    '<testcase classname="app.Test" name="divides" time="1.5"><failure message="division by zero">'
    "Traceback: boom</failure></testcase></testsuite>"
)


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def text_of(response) -> str:
    return response.content.decode()


@pytest.fixture
def full_build(private_repo, bob, run_builds):
    push_files(private_repo, bob, "main", {"buildspec.yml": FULL.encode(), "reports/unit.xml": JUNIT.encode()})
    run_builds()
    return Build.objects.get(repository=private_repo)


@pytest.mark.usefixtures("transactional_db")
def test_the_builds_tab_lists_builds_newest_first_filtered_by_branch_status_and_trigger(
    private_repo,
    alice,
    bob,
    carol,
    run_builds,
):
    push_files(private_repo, bob, "main", {"buildspec.yml": QUICK.encode()})
    push_files(private_repo, bob, "other", {"buildspec.yml": FAILING.encode()})
    run_builds()
    sha = git.branch_sha(private_repo.path, "main")
    services.start_build(private_repo, sha=sha, ref="refs/heads/main", trigger="manual", initiator=alice)
    client = client_for(carol)

    def numbers(query: str = "") -> list[int]:
        response = client.get(f"/alice/project/builds{query}")
        assert response.status_code == 200
        return [
            int(n) for n in re.findall(r'class="build-title" href="/alice/project/builds/(\d+)"', text_of(response))
        ]

    assert numbers() == [3, 2, 1]
    assert numbers("?branch=main") == [3, 1]
    assert numbers("?status=FAILED") == [2]
    assert numbers("?status=SUCCEEDED&branch=main") == [1]
    assert numbers("?trigger=manual") == [3]
    assert numbers("?branch=nowhere") == []
    page = text_of(client.get("/alice/project/builds"))
    # The tab is in the repository's head; a reader gets no Run build form.
    assert 'class="button builds-tab selected" href="/alice/project/builds"' in page
    assert "run-build-form" not in page
    assert "run-build-form" in text_of(client_for(bob).get("/alice/project/builds"))
    assert 'href="/alice/project/builds"' in text_of(client.get("/alice/project"))


@pytest.mark.usefixtures("transactional_db")
def test_the_builds_tab_is_paginated(private_repo, alice):
    sha = git.branch_sha(private_repo.path, "main")
    for _ in range(32):
        services.start_build(private_repo, sha=sha, ref="refs/heads/main", trigger="manual", initiator=alice)
    client = client_for(alice)
    first = text_of(client.get("/alice/project/builds"))
    second = text_of(client.get("/alice/project/builds?page=2"))
    assert "/alice/project/builds/32" in first and '/alice/project/builds/3"' in first
    assert '/alice/project/builds/2"' not in first and "Page 1 of 2" in first
    assert re.findall(r"builds/(\d+)\"", second) == ["2", "1"]


@pytest.mark.usefixtures("transactional_db")
def test_a_build_page_shows_phases_warnings_report_failures_first_artifacts_and_the_log(full_build, carol):
    build = full_build
    assert build.build_status == "SUCCEEDED"
    page = text_of(client_for(carol).get("/alice/project/builds/1"))
    for phase in ("DOWNLOAD_SOURCE", "INSTALL", "PRE_BUILD", "BUILD", "POST_BUILD", "UPLOAD_ARTIFACTS"):
        assert phase in page
    assert 'data-phase="BUILD"' in page
    assert "line 2, proxy: not supported: ignored" in page
    assert build.exported_variables == {"APP_VERSION": "1.2.3"}
    assert re.search(r'<th class="mono">APP_VERSION</th><td class="mono">1\.2\.3</td>', page)
    # The failing test case comes before the passing one, with its message and details.
    assert page.index("divides") < page.index("adds")
    assert "division by zero" in page and "Traceback: boom" in page
    assert "1 failed" in page and "1 succeeded" in page
    [artifact] = build.artifacts.all()
    assert f"sha256:{artifact.sha256}" in page and "out/app.txt" in page
    assert f'href="/alice/project/builds/1/artifacts/{artifact.pk}/app.zip"' in page
    assert f'href="/alice/project/builds/1/artifacts/{artifact.pk}/provenance.json"' in page
    # The log so far, rendered: colours as classes, the build's own markup escaped.
    assert '<span class="ansi-fg-1">red</span>' in page
    assert '<span class="ansi-fg-10 ansi-bold">bold green</span>' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert 'id="L1"' in page and 'href="#L1"' in page
    assert 'class="log-line log-phase" id="L' in page
    # Each phase's header in the log shows how long the phase took.
    build_phase = next(p for p in build.phases if p["name"] == "BUILD")
    header = re.search(r'<div class="log-line log-phase" id="L\d+" data-phase="BUILD">.*?</div>', page).group(0)
    assert f'<span class="log-duration">{build_phase["duration"]:.1f}s</span>' in header
    # A reader sees neither Stop nor Rerun.
    assert "/builds/1/rerun" not in page and "/builds/1/stop" not in page


@pytest.mark.usefixtures("transactional_db")
def test_the_log_endpoint_answers_by_offset_with_rendered_numbered_lines(full_build, carol):
    client = client_for(carol)
    whole = logs.read_all(full_build)
    answer = client.get("/alice/project/builds/1/log?offset=0").json()
    assert answer["ended"] is True and answer["status"] == "SUCCEEDED" and answer["more"] is False
    assert answer["offset"] == len(whole) and answer["line"] == whole.count(b"\n")
    assert "&lt;script&gt;" in answer["html"] and "<script>" not in answer["html"]
    # From the middle: the lines after the offset, numbered after the lines already shown.
    cut = whole.index(b"\n", len(whole) // 2) + 1
    shown = whole[:cut].count(b"\n")
    rest = client.get(f"/alice/project/builds/1/log?offset={cut}&line={shown}").json()
    assert rest["offset"] == len(whole) and rest["line"] == answer["line"]
    assert f'id="L{shown + 1}"' in rest["html"] and f'id="L{shown}"' not in rest["html"]
    durations = {phase["name"]: seconds(phase["duration"]) for phase in full_build.phases}
    assert rest["html"] == log_html.render_lines(whole[cut:], shown + 1, durations)
    assert client.get(f"/alice/project/builds/1/log?offset={len(whole)}").json()["html"] == ""
    assert client.get("/alice/project/builds/1/log?offset=x").status_code == 400
    assert client_for(None).get("/alice/project/builds/1/log").status_code in (302, 404)


def test_while_a_build_runs_the_log_endpoint_answers_whole_lines_only(private_repo, alice, carol, rq_queues):
    sha = git.branch_sha(private_repo.path, "main")
    build = services.start_build(private_repo, sha=sha, ref="refs/heads/main", trigger="manual", initiator=alice)
    services.mark_in_progress(build)
    redis = rq_queues["builds"].connection
    # What the worker's LogWriter sends: the bytes printed so far, the last line not finished yet.
    redis.append(logs.redis_key(build.pk), b"one\n\x1b[34mtwo\x1b[0m\nthr")
    client = client_for(carol)
    first = client.get("/alice/project/builds/1/log?offset=0").json()
    assert (first["offset"], first["line"], first["ended"], first["status"]) == (8 + 9, 2, False, "IN_PROGRESS")
    assert '<span class="ansi-fg-4">two</span>' in first["html"] and "thr" not in first["html"]
    redis.append(logs.redis_key(build.pk), b"ee\n")
    second = client.get(f"/alice/project/builds/1/log?offset={first['offset']}&line=2").json()
    assert second["offset"] == 8 + 9 + 6 and second["line"] == 3
    assert 'id="L3"' in second["html"] and "three" in second["html"]
    page = text_of(client.get("/alice/project/builds/1"))
    assert 'data-follow="1"' in page and 'data-offset="23"' in page


def test_ansi_colours_map_to_the_sixteen_classes_and_other_escapes_are_dropped():
    html = log_html.render_lines(
        b"\x1b[38;5;196mred256\x1b[0m \x1b[48;5;21mbluebg\x1b[0m \x1b[38;2;0;250;0mgreen\x1b[m"
        b" \x1b]0;title\x07\x1b[2Kplain\x1b[1;31m<b>\n",
        7,
    )
    assert '<span class="ansi-fg-9">red256</span>' in html
    assert '<span class="ansi-bg-4">bluebg</span>' in html
    assert '<span class="ansi-fg-10">green</span>' in html
    assert "title" not in html and "\x1b" not in html
    assert '<span class="ansi-fg-1 ansi-bold">&lt;b&gt;</span>' in html
    assert html.startswith('<div class="log-line" id="L7">')


@pytest.mark.usefixtures("transactional_db")
def test_the_raw_log_and_the_artifact_download_are_the_stored_bytes(full_build, carol, mallory):
    client = client_for(carol)
    raw = client.get("/alice/project/builds/1/log.txt")
    assert raw.status_code == 200 and raw["Content-Type"] == "text/plain; charset=utf-8"
    assert b"".join(raw.streaming_content) == logs.read_all(full_build)
    [artifact] = full_build.artifacts.all()
    url = f"/alice/project/builds/1/artifacts/{artifact.pk}/app.zip"
    download = client.get(url)
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    content = b"".join(download.streaming_content)
    assert hashlib.sha256(content).hexdigest() == artifact.sha256 and len(content) == artifact.size_in_bytes
    assert client.get(f"/alice/project/builds/1/artifacts/{artifact.pk}/other.zip").status_code == 404
    assert client_for(mallory).get(url).status_code == 404
    provenance = f"/alice/project/builds/1/artifacts/{artifact.pk}/provenance.json"
    signed = client.get(provenance)
    assert signed.status_code == 200 and json.loads(signed.content) == artifact.provenance
    assert verify(artifact.provenance, content)["subject"][0]["digest"] == {"sha256": artifact.sha256}
    assert "attachment" in signed["Content-Disposition"]
    assert client_for(mallory).get(provenance).status_code == 404
    BuildArtifact.objects.filter(pk=artifact.pk).update(provenance=None)
    assert client.get(provenance).status_code == 404
    assert "Provenance not signed yet" in text_of(client.get("/alice/project/builds/1"))


@pytest.mark.usefixtures("transactional_db")
def test_the_badge_shows_the_latest_ended_build_of_the_branch(
    private_repo,
    bob,
    carol,
    mallory,
    run_builds,
):
    client = client_for(carol)

    def badge(query: str = "") -> str:
        response = client.get(f"/alice/project/builds/badge.svg{query}")
        assert response.status_code == 200
        assert response["Content-Type"] == "image/svg+xml; charset=utf-8"
        assert response["Cache-Control"] == "private, max-age=60"
        return text_of(response)

    assert "no builds" in badge()
    push_files(private_repo, bob, "main", {"buildspec.yml": QUICK.encode()})
    push_files(private_repo, bob, "broken", {"buildspec.yml": FAILING.encode()})
    # Queued builds say nothing yet.
    assert "no builds" in badge()
    run_builds()
    assert "passing" in badge() and "passing" in badge("?branch=main")
    assert "failing" in badge("?branch=broken")
    assert "no builds" in badge("?branch=nowhere")
    assert client_for(mallory).get("/alice/project/builds/badge.svg").status_code == 404
    assert client_for(None).get("/alice/project/builds/badge.svg").status_code in (302, 404)


def test_only_writers_run_a_build_with_variables(private_repo, bob, carol, mallory):
    url = "/alice/project/builds/run"
    data = {"ref": "main", "variables": "GREETING=hello there\n\nOTHER=a=b\n"}
    assert client_for(carol).post(url, data).status_code == 403
    assert client_for(mallory).post(url, data).status_code == 404
    assert not Build.objects.exists()
    client = client_for(bob)
    response = client.post(url, data)
    build = Build.objects.get(repository=private_repo)
    assert response.status_code == 302 and response["Location"] == "/alice/project/builds/1"
    assert (build.trigger, build.initiator, build.ref, build.head_branch) == ("manual", bob, "refs/heads/main", "main")
    assert build.head_sha == git.branch_sha(private_repo.path, "main")
    assert build.start_variables == {"GREETING": "hello there", "OTHER": "a=b"}
    refused = client.post(url, {"ref": "no-such-branch", "variables": ""})
    assert refused.status_code == 400 and "No branch, tag or commit" in text_of(refused)
    refused = client.post(url, {"ref": "main", "variables": "not a variable"})
    assert refused.status_code == 400 and "Line 1 is not NAME=value" in text_of(refused)
    refused = client.post(url, {"ref": "main", "variables": "CODEBUILD_BUILD_ID=x"})
    assert refused.status_code == 400 and "CODEBUILD_BUILD_ID" in text_of(refused)
    # A commit by its sha builds too, named by itself.
    sha = build.head_sha
    assert client.post(url, {"ref": sha}).status_code == 302
    assert Build.objects.get(number=2).ref == sha
    assert Build.objects.count() == 2


def test_only_writers_stop_and_rerun_a_build(private_repo, alice, bob, carol, mallory):
    sha = git.branch_sha(private_repo.path, "main")
    build = services.start_build(
        private_repo, sha=sha, ref="refs/heads/main", trigger="manual", initiator=alice, variables={"A": "1"}
    )
    for url in ("/alice/project/builds/1/stop", "/alice/project/builds/1/rerun"):
        assert client_for(carol).post(url).status_code == 403
        assert client_for(mallory).post(url).status_code == 404
    assert client_for(carol).get("/alice/project/builds/1/stop").status_code == 405
    page = text_of(client_for(bob).get("/alice/project/builds/1"))
    assert "/builds/1/stop" in page and "/builds/1/rerun" in page
    assert '<dd class="build-secrets"><span class="muted">none</span>' in page
    Build.objects.filter(pk=build.pk).update(secret_names=["DEPLOY_TOKEN", "NPM_TOKEN"])
    assert "DEPLOY_TOKEN, NPM_TOKEN" in text_of(client_for(bob).get("/alice/project/builds/1"))
    Build.objects.filter(pk=build.pk).update(secret_names=[], secrets_withheld="a pull request from a reader")
    assert "withheld: a pull request from a reader" in text_of(client_for(bob).get("/alice/project/builds/1"))
    client = client_for(bob)
    assert client.post("/alice/project/builds/1/stop").status_code == 302
    build.refresh_from_db()
    assert build.build_status == "STOPPED"
    assert AuditEvent.objects.filter(action="build.stop", actor=bob).exists()
    again = client.post("/alice/project/builds/1/stop", follow=True)
    assert "has already ended" in text_of(again)
    assert "/builds/1/stop" not in text_of(again)
    response = client.post("/alice/project/builds/1/rerun")
    assert response["Location"] == "/alice/project/builds/2"
    rerun = Build.objects.get(number=2)
    assert (rerun.trigger, rerun.initiator, rerun.head_sha, rerun.ref, rerun.start_variables) == (
        "rerun",
        bob,
        sha,
        "refs/heads/main",
        {"A": "1"},
    )


def test_only_admins_see_and_change_the_build_settings_with_errors_on_their_fields(
    private_repo, alice, bob, carol, mallory
):
    url = "/alice/project/settings/builds"
    assert client_for(bob).get(url).status_code == 403
    assert client_for(carol).get(url).status_code == 403
    assert client_for(mallory).get(url).status_code == 404
    client = client_for(alice)
    page = text_of(client.get(url))
    assert 'value="buildspec.yml"' in page and 'value="60"' in page
    assert 'href="/alice/project/settings/builds" class="active"' in page
    valid = {"buildspec_path": "buildspec.yml", "timeout_minutes": "60"}
    for changes, field, message in [
        ({"timeout_minutes": "0"}, "timeout_minutes", "The time limit is from 1 to 480 minutes."),
        ({"buildspec_path": "../etc/passwd"}, "buildspec_path", "must be a file"),
        ({"timeout_minutes": "soon"}, "timeout_minutes", "Enter a whole number."),
    ]:
        refused = client.post(url, valid | changes)
        assert refused.status_code == 400
        # The message is in the field's own box, under its input.
        box = re.search(
            rf'<div class="field has-error">\s*<label for="id_{field}">.*?</div>\s*</div>', text_of(refused), re.S
        )
        assert box and message in box.group(0), text_of(refused)
    assert not BuildSettings.objects.exists()
    saved = client.post(
        url,
        {
            "branch_filter": "main,release/*",
            "build_tags": "on",
            "stop_running": "on",
            "buildspec_path": "ci/build.yml",
            "network": "on",
            "timeout_minutes": "15",
            "secret_branches": "main",
        },
    )
    assert saved.status_code == 302
    settings = BuildSettings.objects.get(repository=private_repo)
    assert (settings.branch_filter, settings.build_tags, settings.stop_running, settings.network) == (
        "main,release/*",
        True,
        True,
        True,
    )
    assert (settings.buildspec_path, settings.timeout_minutes, settings.secret_branches) == ("ci/build.yml", 15, "main")
    assert AuditEvent.objects.filter(action="build_settings.update", actor=alice).exists()
    assert client_for(bob).post(url, valid).status_code == 403


@pytest.mark.usefixtures("transactional_db")
def test_the_commit_page_the_branch_list_and_the_repository_home_show_the_builds_status(
    private_repo,
    bob,
    carol,
    settings,
    run_builds,
):
    settings.PORTAL_BASE_URL = "https://git.example.com"
    sha = push_files(private_repo, bob, "main", {"buildspec.yml": QUICK.encode()})
    run_builds()
    client = client_for(carol)
    # The commit page and the branch list load their statuses from these (they are cached by sha).
    assert f'data-statuses-url="/alice/project/statuses/{sha}"' in text_of(client.get(f"/alice/project/commit/{sha}"))
    assert 'data-status-batch-url="/alice/project/statuses"' in text_of(client.get("/alice/project/branches"))
    home = text_of(client.get("/alice/project"))
    assert 'data-status-batch-url="/alice/project/statuses"' in home and f'data-status-sha="{sha}"' in home
    fragment = text_of(client.get(f"/alice/project/statuses/{sha}"))
    assert "check-success" in fragment and ">build<" in fragment
    assert 'href="https://git.example.com/alice/project/builds/1"' in fragment
    batch = client.get(f"/alice/project/statuses?sha={sha}").json()["statuses"][sha]
    assert batch["state"] == "success"
    assert batch["statuses"][0]["target_url"] == "https://git.example.com/alice/project/builds/1"
