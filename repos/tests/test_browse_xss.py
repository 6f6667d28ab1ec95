"""Hostile file names, commit messages, branch names, README Markdown and file contents render inert on every page."""

import re
from html.parser import HTMLParser

import pytest
from django.test import Client

from repos import services as repo_services
from repos.tests.worktree import commit_all, run

NAME = '"><img src=x onerror=alert(1)>.txt'
MESSAGE = "<script>alert('message')</script> <img src=x onerror=alert(2)> [x](javascript:alert(3))"
BRANCH = "feat/<svg-onload=alert(4)>"
README = """# Hello <script>alert(5)</script>

<img src=x onerror=alert(6)>
<a href="javascript:alert(7)">click</a> [click](javascript:alert(8)) [data](data:text/html,<script>alert(9)</script>)
<svg onload=alert(10)><script>alert(11)</script></svg>
<iframe src="https://example.com"></iframe>
<details open ontoggle=alert(12)>x</details>
"""
SVG = '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(13)"><script>alert(14)</script></svg>'
SCRIPT = "</script><script>alert(15)</script>\n<!-- <img src=x onerror=alert(16)> -->\n"


class Inspector(HTMLParser):
    """Every element and attribute the browser would build from a page."""

    def __init__(self):
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script" and not (attributes.get("src") or "").startswith("/static/"):
            self.problems.append(f"inline script {attrs}")
        if tag in ("svg", "iframe", "object", "embed", "math", "style"):
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"event handler {name}={value!r} on <{tag}>")
            if name in ("href", "src", "action", "formaction") and value:
                if re.match(r"\s*(javascript|data|vbscript):", value, re.I):
                    self.problems.append(f"{name}={value!r} on <{tag}>")


def assert_inert(page: str, where: str):
    inspector = Inspector()
    inspector.feed(page)
    assert not inspector.problems, f"{where}: {inspector.problems}"


@pytest.fixture
def hostile_repo(alice, work):
    repo = repo_services.create_repository(actor=alice, owner=alice, name="hostile")
    (work / "README.md").write_text(README)
    (work / NAME).write_text("x\n")
    (work / "evil.svg").write_text(SVG)
    (work / "evil.js").write_text(SCRIPT)
    (work / "page.html").write_text(SCRIPT)
    first = commit_all(work, MESSAGE)
    run(work, "checkout", "-q", "-b", BRANCH)
    (work / "evil.js").write_text(SCRIPT + "<img src=x onerror=alert(17)>\n")
    commit_all(work, MESSAGE + " again")
    run(work, "tag", "-a", "v<b>1</b>", "-m", MESSAGE)
    run(work, "push", "-q", str(repo.path), "main", BRANCH, "v<b>1</b>")
    repo.first = first
    return repo


def test_every_page_renders_hostile_content_inert(alice, hostile_repo):
    client = Client()
    client.force_login(alice)
    quoted_name = "%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E.txt"
    quoted_branch = "feat/%3Csvg-onload%3Dalert%284%29%3E"
    urls = [
        "/alice/hostile",
        "/alice/hostile/tree/main",
        f"/alice/hostile/tree/{quoted_branch}",
        f"/alice/hostile/blob/main/{quoted_name}",
        "/alice/hostile/blob/main/README.md",
        "/alice/hostile/blob/main/README.md?plain=1",
        "/alice/hostile/blob/main/evil.svg",
        f"/alice/hostile/blob/{quoted_branch}/evil.js",
        "/alice/hostile/blame/main/evil.js",
        "/alice/hostile/commits/main",
        f"/alice/hostile/commits/{quoted_branch}/evil.js",
        f"/alice/hostile/commit/{hostile_repo.first}",
        f"/alice/hostile/commit/{hostile_repo.first}?view=split",
        f"/alice/hostile/compare/main...{quoted_branch}",
        f"/alice/hostile/compare/main...{quoted_branch}?view=split",
        "/alice/hostile/compare",
        "/alice/hostile/branches",
        "/alice/hostile/tags",
        f"/alice/hostile/refs?page=blob&path={quoted_name}",
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_inert(response.content.decode(), url)
    # The payloads are there, shown as text.
    assert "&lt;script&gt;alert(&#x27;message&#x27;)" in client.get("/alice/hostile/commits/main").content.decode()
    assert "&lt;svg-onload=alert(4)&gt;" in client.get("/alice/hostile/branches").content.decode()


def test_raw_hostile_files_are_served_as_text(alice, hostile_repo):
    client = Client()
    client.force_login(alice)
    for name in ("evil.svg", "page.html", "evil.js"):
        response = client.get(f"/alice/hostile/raw/main/{name}")
        assert response["Content-Type"].startswith("text/plain"), name
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in response["Content-Security-Policy"]
