"""A team's first hour on the repository pages: comparing refs with pickers and on to a pull request, highlighted
diffs, clone URLs named by their scheme, and addresses with a trailing slash."""

import re
import uuid

import pytest
from django.test import Client

from repos import code, render
from repos import services as repo_services
from repos.models import Role, Visibility, clone_url_label
from repos.tests.worktree import commit_all, run

APP = "def greet(name):\n    return 'hello ' + name\n\n\nCOUNT = 1\n"


@pytest.fixture
def app_source():
    """app.py with a line of its own, so that its blobs are new to the process's cache of highlighted files."""
    return f"# {uuid.uuid4()}\n{APP}"


@pytest.fixture
def app_repo(alice, bob, carol, work, app_source):
    """alice/app (private; bob writes, carol reads): main with app.py, a branch that changes it, and a tag."""
    repo = repo_services.create_repository(actor=alice, owner=alice, name="app")
    repo_services.set_collaborator(repo, bob, actor=alice, role=Role.WRITE)
    repo_services.set_collaborator(repo, carol, actor=alice, role=Role.READ)
    (work / "app.py").write_text(app_source)
    (work / "notes.txt").write_text("plain\n")
    commit_all(work, "Start")
    run(work, "tag", "v1.0")
    run(work, "checkout", "-q", "-b", "feature/count")
    (work / "app.py").write_text(app_source.replace("COUNT = 1", "COUNT = 2"))
    (work / "notes.txt").write_text("plain and simple\n")
    repo.feature_sha = commit_all(work, "Count two")
    run(work, "checkout", "-q", "main")
    run(work, "push", "-q", str(repo.path), "main", "feature/count", "v1.0")
    return repo


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def text(response) -> str:
    return response.content.decode()


# Compare: pickers, and on to a pull request.


def test_compare_page_has_base_and_head_pickers_listing_branches_and_tags(app_repo, carol):
    page = text(client_for(carol).get("/alice/app/compare/main...feature/count"))
    form = re.search(
        r'<form class="toolbar compare-pickers" method="get" action="/alice/app/compare">.*?</form>', page, re.S
    )
    assert form, page
    pickers = form.group(0)
    base, head = re.findall(r'<select name="(base|head)"', pickers)
    assert (base, head) == ("base", "head")
    assert '<option value="main" selected>main</option>' in pickers
    assert '<option value="feature/count" selected>feature/count</option>' in pickers
    assert '<option value="v1.0">v1.0</option>' in pickers


def test_the_pickers_form_lands_on_the_comparison(app_repo, carol):
    client = client_for(carol)
    response = client.get("/alice/app/compare", {"base": "main", "head": "feature/count"})
    assert response.status_code == 302
    assert response["Location"] == "/alice/app/compare/main...feature/count"
    assert "Count two" in text(client.get(response["Location"]))


def test_the_bare_compare_page_offers_the_pickers_with_the_default_branch_as_base(app_repo, carol):
    response = client_for(carol).get("/alice/app/compare")
    page = text(response)
    assert response.status_code == 200
    assert "Compare changes" in page
    assert '<option value="main" selected>main</option>' in page
    assert '<option value="" selected disabled>Choose a branch</option>' in page
    assert "Create pull request" not in page


def test_a_sha_named_in_the_url_is_offered_in_the_pickers(app_repo, carol):
    page = text(client_for(carol).get(f"/alice/app/compare/main...{app_repo.feature_sha}"))
    assert f'<option value="{app_repo.feature_sha}" selected>' in page
    # A commit is not a branch: there is nothing to open a pull request from.
    assert "Create pull request" not in page


def test_signed_in_readers_comparing_two_branches_get_a_create_pull_request_link(app_repo, carol):
    page = text(client_for(carol).get("/alice/app/compare/main...feature/count"))
    assert (
        '<a class="button primary create-pull" href="/alice/app/pulls/new?base=main&amp;head=feature%2Fcount">' in page
    )


@pytest.mark.parametrize("spec", ["main...v1.0", "main...main"])
def test_no_create_pull_request_link_unless_two_different_branches(app_repo, carol, spec):
    assert "Create pull request" not in text(client_for(carol).get(f"/alice/app/compare/{spec}"))


def test_visitors_get_no_create_pull_request_link(app_repo, alice):
    repo_services.set_visibility(app_repo, actor=alice, visibility=Visibility.PUBLIC)
    response = client_for(None).get("/alice/app/compare/main...feature/count")
    assert response.status_code == 200
    assert "Create pull request" not in text(response)


def test_the_anonymous_compare_page_follows_new_branches(app_repo, alice, work):
    repo_services.set_visibility(app_repo, actor=alice, visibility=Visibility.PUBLIC)
    visitor = client_for(None)
    assert "later" not in text(visitor.get("/alice/app/compare/main...feature/count"))
    run(work, "push", "-q", str(app_repo.path), "main:refs/heads/later")
    assert '<option value="later">later</option>' in text(visitor.get("/alice/app/compare/main...feature/count"))


def test_branches_page_offers_a_new_pull_request_for_each_branch_but_the_default(app_repo, carol):
    page = text(client_for(carol).get("/alice/app/branches"))
    assert page.count("New pull request") == 1
    assert 'href="/alice/app/pulls/new?base=main&amp;head=feature%2Fcount">New pull request</a>' in page
    assert "head=main" not in page


def test_the_pickers_and_branch_links_open_the_pull_request_form_on_those_branches(app_repo, carol):
    form = text(client_for(carol).get("/alice/app/pulls/new?base=main&head=feature%2Fcount"))
    assert re.search(r'<option value="feature/count"[^>]*selected', form), form
    assert "Count two" in form


# Highlighted diffs.


def test_a_commit_diff_is_highlighted_with_pygments_classes(app_repo, carol):
    page = text(client_for(carol).get(f"/alice/app/commit/{app_repo.feature_sha}"))
    python = page[page.index('data-path="app.py"') :]
    # Context lines and changed lines alike carry the lexer's token classes, changed words marked inside them.
    assert '<span class="k">return</span> <span class="s1">&#x27;hello &#x27;</span>' in python
    assert '<ins><span class="mi">2</span></ins>' in python and '<del><span class="mi">1</span></del>' in python
    # Plain text stays plain.
    notes = page[page.index('data-path="notes.txt"') :]
    assert "plain<ins> and simple</ins>" in notes


def test_split_view_highlights_both_sides(app_repo, carol):
    page = text(client_for(carol).get(f"/alice/app/commit/{app_repo.feature_sha}?view=split"))
    assert '<td class="line-code diff-del"><span class="n">COUNT</span>' in page
    assert '<td class="line-code diff-add"><span class="n">COUNT</span>' in page


def test_each_side_is_highlighted_once_and_cached_by_its_blob(app_repo, carol, monkeypatch):
    calls = []
    real = render.highlight_lines
    monkeypatch.setattr(render, "highlight_lines", lambda text, name: calls.append(name) or real(text, name))
    client = client_for(carol)
    client.get(f"/alice/app/commit/{app_repo.feature_sha}")
    assert calls == ["app.py", "app.py"]
    # Another diff of the same blobs (here, the compare page) highlights nothing again.
    client.get("/alice/app/compare/main...feature/count?view=split")
    assert calls == ["app.py", "app.py"]


def test_files_past_the_size_limit_are_shown_plain(app_repo, carol, work, monkeypatch):
    monkeypatch.setattr(code, "DIFF_HIGHLIGHT_MAX_BYTES", 32)
    page = text(client_for(carol).get(f"/alice/app/commit/{app_repo.feature_sha}"))
    assert "COUNT = <ins>2</ins>" in page
    assert '<span class="k">return</span>' not in page


def test_files_past_the_budget_of_one_view_are_shown_plain(app_repo, carol, work, app_source, monkeypatch):
    (work / "a.py").write_text(app_source)
    (work / "b.py").write_text(app_source)
    sha = commit_all(work, "Two more")
    run(work, "push", "-q", str(app_repo.path), "main")
    # Room for a.py (added: one side), not for b.py after it.
    monkeypatch.setattr(code, "DIFF_HIGHLIGHT_BUDGET", len(app_source.encode()) + 10)
    page = text(client_for(carol).get(f"/alice/app/commit/{sha}"))
    first, second = page[page.index('data-path="a.py"') :], page[page.index('data-path="b.py"') :]
    assert '<span class="k">def</span>' in first[: first.index('data-path="b.py"')]
    assert '<span class="k">def</span>' not in second and "+def greet(name):" in second


def test_a_diff_line_keeps_its_text_when_the_file_says_otherwise():
    # The highlighted line is of other text (a whitespace-blind diff, another encoding): the diff's own text wins.
    assert render.diff_line("x = 1", '<span class="n">y</span> = 1') == "x = 1"
    assert render.diff_line("a <b>", '<span class="n">a</span> &lt;b&gt;', [(2, 5)], "ins") == (
        '<span class="n">a</span> <ins>&lt;b&gt;</ins>'
    )


# Clone URLs.


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("ssh://git@example.com:2222/alice/app.git", "SSH"),
        ("git@example.com:alice/app.git", "SSH"),
        ("https://git.example.com/alice/app.git", "HTTPS"),
        ("http://localhost:8000/alice/app.git", "HTTP"),
    ],
)
def test_clone_urls_are_labelled_by_their_scheme(url, label):
    assert clone_url_label(url) == label


def test_the_clone_box_names_each_url_by_its_real_scheme(app_repo, carol, settings):
    settings.PORTAL_BASE_URL = "http://localhost:8000"
    settings.PORTAL_SSH_PORT = 22
    page = text(client_for(carol).get("/alice/app"))
    assert (
        '<span class="clone-label">HTTP</span><input type="text" id="clone-http" value="http://localhost:8000/alice/app.git"'
        in page
    )
    assert (
        f'<span class="clone-label">SSH</span><input type="text" id="clone-ssh" value="git@{settings.PORTAL_SSH_DOMAIN}:alice/app.git"'
        in page
    )
    assert "HTTPS" not in page
    settings.PORTAL_BASE_URL = "https://git.example.com"
    assert '<span class="clone-label">HTTPS</span>' in text(client_for(carol).get("/alice/app"))


# Trailing slashes.


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("/alice/app/", "/alice/app"),
        ("/alice/", "/alice"),
        ("/alice/app/commits/", "/alice/app/commits"),
        ("/alice/app/branches/?x=1", "/alice/app/branches?x=1"),
        ("/alice/app/pulls//", "/alice/app/pulls"),
        ("/alice/app/compare/", "/alice/app/compare"),
    ],
)
def test_addresses_with_a_trailing_slash_move_to_the_one_without(app_repo, carol, url, target):
    client = client_for(carol)
    response = client.get(url)
    assert (response.status_code, response["Location"]) == (301, target)
    assert client.head(url).status_code == 301
    assert client.get(target).status_code == 200


def test_a_folder_with_a_trailing_slash_still_shows(app_repo, carol, work):
    (work / "src").mkdir()
    (work / "src" / "a.py").write_text("A = 1\n")
    commit_all(work, "Add src")
    run(work, "push", "-q", str(app_repo.path), "main")
    assert client_for(carol).get("/alice/app/tree/main/src/").status_code == 200


def test_a_post_with_a_trailing_slash_is_not_redirected(app_repo, alice):
    assert client_for(alice).post("/alice/app/settings/", {"description": "x"}).status_code == 404


def test_private_repositories_redirect_without_checking_then_404(app_repo, mallory):
    for client in (client_for(None), client_for(mallory)):
        response = client.get("/alice/app/")
        assert (response.status_code, response["Location"]) == (301, "/alice/app")
        assert client.get("/alice/app").status_code in (404, 302)
        assert client.get("/alice/nothing/").status_code == 301
    assert client_for(mallory).get("/alice/app").status_code == 404


@pytest.mark.parametrize("url", ["//evil.example/", "/\\evil.example/"])
def test_a_trailing_slash_never_redirects_to_another_site(db, url):
    response = Client().get(url)
    assert response.status_code != 301 or not response["Location"].startswith(("//", "/\\"))


@pytest.mark.parametrize("url", ["/accounts/login/", "/accounts/signup/", "/settings/"])
def test_addresses_that_end_in_a_slash_on_purpose_still_answer(client, db, url):
    assert client.get(url).status_code in (200, 302)


def test_smart_http_and_the_api_are_left_alone(app_repo, carol):
    client = client_for(carol)
    assert client.get("/api/v1/repos/alice/app/").status_code == 404
    assert client.get("/alice/app.git/info/refs?service=git-upload-pack").status_code == 401


def test_highlighted_diff_lines_stay_escaped():
    source = "<script>alert('x')</script> <img src=x onerror=alert(1)>"
    highlighted = render.highlight_lines(source + "\n", "page.html")[0]
    line = render.diff_line(source, highlighted, [(8, 13)], "ins")
    assert "<script" not in line and "<img" not in line
    assert '<span class="p">&lt;</span><span class="nt">script</span>' in line and "<ins>" in line
