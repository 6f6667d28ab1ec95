"""Code browsing pages on a repository built here with the real git: branches with '/', tags, a rename, binary,
non-UTF-8 and symlinked files, a submodule, and an empty repository."""

import gzip
import io
import re
import tarfile
import time
import uuid
import zipfile

import pytest
from django.test import Client

from repos import git
from repos import services as repo_services
from repos.models import Role, Visibility
from repos.tests.worktree import commit_all, run

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)
LATIN1_NAME = b"caf\xe9.txt"


@pytest.fixture
def code_repo(alice, bob, carol, work):
    """alice/code (private; bob writes, carol reads) with history worth browsing."""
    repo = repo_services.create_repository(actor=alice, owner=alice, name="code")
    repo_services.set_collaborator(repo, bob, actor=alice, role=Role.WRITE)
    repo_services.set_collaborator(repo, carol, actor=alice, role=Role.READ)
    (work / "src").mkdir()
    (work / "docs").mkdir()
    (work / "README.md").write_text("# Code\n\nRead [the guide](docs/guide.md).\n\n![logo](logo.png)\n")
    (work / "src" / "main.c").write_text("int main(void) {\n  /* a\n     comment */\n  return 0;\n}\n")
    (work / "docs" / "guide.md").write_text("# Guide\n\nHello.\n" * 20)
    (work / "logo.png").write_bytes(PNG)
    first = commit_all(work, "Start the project")
    (work / "src" / "main.c").write_text("int main(void) {\n  /* a\n     comment */\n  return 1;\n}\n")
    run(work, "mv", "docs/guide.md", "docs/manual.md")
    (work / LATIN1_NAME.decode("utf-8", "surrogateescape")).write_bytes(b"caf\xe9 cr\xe8me\n")
    (work / "link").symlink_to("src/main.c")
    second = commit_all(work, "Return 1, rename the guide, add a Latin-1 file")
    # A submodule: a gitlink entry and its .gitmodules.
    (work / ".gitmodules").write_text(
        '[submodule "vendor/lib"]\n\tpath = vendor/lib\n\turl = https://example.com/lib.git\n'
    )
    run(work, "update-index", "--add", "--cacheinfo", f"160000,{first},vendor/lib")
    run(work, "add", ".gitmodules")
    run(work, "commit", "-q", "-m", "Add a submodule")
    run(work, "tag", "-a", "v1.0", "-m", "Release 1.0")
    run(work, "checkout", "-q", "-b", "feature/login")
    (work / "src" / "login.c").write_text("int login(void) { return 0; }\n")
    commit_all(work, "Add login")
    run(work, "checkout", "-q", "main")
    run(work, "push", "-q", str(repo.path), "main", "feature/login", "v1.0")
    repo.shas = {"first": first, "second": second, "main": run(work, "rev-parse", "main")}
    return repo


@pytest.fixture
def as_alice(alice):
    client = Client()
    client.force_login(alice)
    return client


def text(response) -> str:
    return response.content.decode()


def test_home_shows_tree_readme_clone_urls_and_latest_commit(as_alice, code_repo):
    response = as_alice.get("/alice/code")
    assert response.status_code == 200
    page = text(response)
    assert code_repo.ssh_url in page and code_repo.http_url in page
    assert 'href="/alice/code/tree/main/src"' in page
    assert 'href="/alice/code/blob/main/README.md"' in page
    # The README, rendered, with its relative links pointing into the repository.
    assert '<div class="box-header">README.md</div>' in page
    assert "<h1" in page and 'href="/alice/code/blob/main/docs/guide.md"' in page
    assert 'src="/alice/code/raw/main/logo.png"' in page
    assert "Add a submodule" in page
    assert 'data-menu-url="/alice/code/refs?page=tree&amp;path="' in page


def test_ref_menu_links_each_branch_and_tag_to_the_same_page_and_path(as_alice, code_repo):
    page = text(as_alice.get("/alice/code/blob/main/src/main.c"))
    assert 'data-menu-url="/alice/code/refs?page=blob&amp;path=src/main.c"' in page
    menu = text(as_alice.get("/alice/code/refs?page=blob&path=src/main.c"))
    assert 'href="/alice/code/blob/feature/login/src/main.c"' in menu
    assert 'href="/alice/code/blob/v1.0/src/main.c"' in menu
    latin = text(as_alice.get("/alice/code/refs?page=blob&path=caf%E9.txt"))
    assert 'href="/alice/code/blob/main/caf%E9.txt"' in latin
    assert as_alice.get("/alice/code/refs?page=settings").status_code == 404


def test_tree_lists_directories_first_with_symlink_and_submodule(as_alice, code_repo):
    page = text(as_alice.get("/alice/code/tree/main"))
    names = re.findall(r'<tr data-name="([^"]+)"', page)
    assert names[:3] == ["docs", "src", "vendor"]
    assert "symlink" in page
    assert '<span class="submodule">lib</span>' in text(as_alice.get("/alice/code/tree/main/vendor"))


def test_tree_of_a_subdirectory_has_breadcrumbs(as_alice, code_repo):
    page = text(as_alice.get("/alice/code/tree/main/src"))
    assert 'href="/alice/code/tree/main"' in page
    assert 'href="/alice/code/blob/main/src/main.c"' in page


def test_tree_last_commits_fragment_names_each_entry(as_alice, code_repo):
    data = as_alice.get("/alice/code/tree/main?fragment=commits").json()
    assert data["complete"]
    entries = data["entries"]
    assert entries["src"]["summary"] == "Return 1, rename the guide, add a Latin-1 file"
    assert entries["logo.png"]["summary"] == "Start the project"
    assert entries["vendor"]["summary"] == "Add a submodule"
    assert entries["caf%E9.txt"]["sha"] == code_repo.shas["second"]


def test_branch_names_with_slashes_resolve(as_alice, code_repo):
    response = as_alice.get("/alice/code/blob/feature/login/src/login.c")
    assert response.status_code == 200
    assert "login" in text(response)
    assert as_alice.get("/alice/code/tree/feature/login/src").status_code == 200


def test_tags_and_shas_resolve(as_alice, code_repo):
    assert as_alice.get("/alice/code/blob/v1.0/src/main.c").status_code == 200
    first = code_repo.shas["first"]
    page = text(as_alice.get(f"/alice/code/blob/{first}/src/main.c"))
    assert "return</span> <span" in page or "return" in page
    assert "0" in page
    assert as_alice.get(f"/alice/code/blob/{first[:10]}/docs/guide.md").status_code == 200


def test_blob_is_highlighted_with_line_anchors(as_alice, code_repo):
    page = text(as_alice.get("/alice/code/blob/main/src/main.c"))
    assert '<tr id="L1"><td data-line="1"></td>' in page and '<td data-line="5"></td>' in page
    assert '<span class="kt">int</span>' in page or 'class="kt"' in page
    assert "5 lines" in page


def test_markdown_blob_renders_with_a_source_toggle(as_alice, code_repo):
    page = text(as_alice.get("/alice/code/blob/main/docs/manual.md"))
    assert '<div class="markdown-body">' in page and "<h1" in page
    source = text(as_alice.get("/alice/code/blob/main/docs/manual.md?plain=1"))
    assert '<tr id="L1">' in source


def test_image_binary_and_symlink_blobs(as_alice, code_repo):
    assert '<img src="/alice/code/raw/main/logo.png"' in text(as_alice.get("/alice/code/blob/main/logo.png"))
    assert "Symbolic link to <code>src/main.c</code>" in text(as_alice.get("/alice/code/blob/main/link"))
    assert "Submodule at commit" in text(as_alice.get("/alice/code/blob/main/vendor/lib"))


def test_non_utf8_name_and_content_display(as_alice, code_repo):
    page = text(as_alice.get("/alice/code/tree/main"))
    assert 'href="/alice/code/blob/main/caf%E9.txt"' in page
    assert "café.txt" in page
    blob = as_alice.get("/alice/code/blob/main/caf%E9.txt")
    assert blob.status_code == 200
    assert "café crème" in text(blob) and "windows-1252" in text(blob)
    raw = as_alice.get("/alice/code/raw/main/caf%E9.txt")
    assert raw.content == b"caf\xe9 cr\xe8me\n"
    assert raw["Content-Type"] == "text/plain; charset=windows-1252"


def test_big_files_are_too_large_with_a_raw_link(as_alice, code_repo, work):
    (work / "big.txt").write_bytes(b"x" * 100 + b"\n" * (2 * 1024 * 1024))
    commit_all(work, "Big")
    run(work, "push", "-q", str(code_repo.path), "main")
    page = text(as_alice.get("/alice/code/blob/main/big.txt"))
    assert "too large to show" in page and 'href="/alice/code/raw/main/big.txt"' in page


def test_raw_serves_bytes_with_a_safe_type_and_etag(as_alice, code_repo, work):
    (work / "page.html").write_text("<script>alert(1)</script>")
    (work / "pic.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>')
    commit_all(work, "Dangerous files")
    run(work, "push", "-q", str(code_repo.path), "main")
    html = as_alice.get("/alice/code/raw/main/page.html")
    assert html.content == b"<script>alert(1)</script>"
    assert html["Content-Type"].startswith("text/plain")
    assert html["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in html["Content-Security-Policy"]
    assert as_alice.get("/alice/code/raw/main/pic.svg")["Content-Type"].startswith("text/plain")
    png = as_alice.get("/alice/code/raw/main/logo.png")
    assert png["Content-Type"] == "image/png" and png.content == PNG
    etag = png["ETag"]
    assert as_alice.get("/alice/code/raw/main/logo.png", headers={"if-none-match": etag}).status_code == 304


def test_commits_lists_history_paginated_and_per_path_following_renames(as_alice, code_repo, work):
    # A second apart, so that newest-first has one answer.
    start = int(time.time()) + 10
    for n in range(55):
        (work / "counter.txt").write_text(str(n))
        commit_all(work, f"Count {n}", when=start + n)
    run(work, "push", "-q", str(code_repo.path), "main")
    first_page = text(as_alice.get("/alice/code/commits/main"))
    assert "Count 54<" in first_page and "Count 5<" in first_page and "Count 4<" not in first_page
    assert "?page=2" in first_page
    second_page = text(as_alice.get("/alice/code/commits/main?page=2"))
    assert "Start the project" in second_page
    assert "Count 54" in text(as_alice.get("/alice/code/commits"))
    # A file's history ends at the commit that renamed it, and links to the history under its old name there.
    history = text(as_alice.get("/alice/code/commits/main/docs/manual.md"))
    assert "Return 1, rename the guide" in history and "Start the project" not in history
    assert "Count" not in history
    old_history = f"/alice/code/commits/{code_repo.shas['first']}/docs/guide.md"
    assert "Renamed from <code>docs/guide.md</code>" in history and f'href="{old_history}"' in history
    assert f'href="/alice/code/commit/{code_repo.shas["second"]}"' in history
    assert "Start the project" in text(as_alice.get(old_history))
    # A file that was only ever added says nothing of the kind.
    assert "Renamed from" not in text(as_alice.get("/alice/code/commits/main/src/main.c"))


def test_a_renamed_files_history_is_paginated_and_links_its_old_name_on_its_last_page(as_alice, code_repo, work):
    start = int(time.time()) + 10
    for n in range(55):
        (work / "docs" / "manual.md").write_text(f"# Manual\n\nEdition {n}.\n")
        commit_all(work, f"Edition {n}", when=start + n)
    run(work, "push", "-q", str(code_repo.path), "main")
    first_page = text(as_alice.get("/alice/code/commits/main/docs/manual.md"))
    assert "Edition 54<" in first_page and "Edition 5<" in first_page and "Edition 4<" not in first_page
    assert "?page=2" in first_page and "Renamed from" not in first_page
    last_page = text(as_alice.get("/alice/code/commits/main/docs/manual.md?page=2"))
    assert "Edition 4<" in last_page and "Return 1, rename the guide" in last_page and "?page=3" not in last_page
    assert f'href="/alice/code/commits/{code_repo.shas["first"]}/docs/guide.md"' in last_page
    assert as_alice.get("/alice/code/commits/main/docs/manual.md?page=3").status_code == 404


def test_commit_shows_message_parents_stats_and_diff(as_alice, code_repo):
    sha = code_repo.shas["second"]
    response = as_alice.get(f"/alice/code/commit/{sha}")
    page = text(response)
    assert response["Cache-Control"].endswith("immutable") and response["ETag"]
    assert code_repo.shas["first"] in page
    assert "docs/guide.md → docs/manual.md" in page and "renamed" in page
    # The changed word, not the whole line, marked inside the highlighted code.
    assert '<ins><span class="mi">1</span></ins>' in page and '<del><span class="mi">0</span></del>' in page
    assert "café.txt" in page and "link" in page
    assert as_alice.get(f"/alice/code/commit/{sha}", headers={"if-none-match": response["ETag"]}).status_code == 304
    split = text(as_alice.get(f"/alice/code/commit/{sha}?view=split"))
    assert "diff-split" in split


def test_root_commit_diff_is_against_nothing(as_alice, code_repo):
    page = text(as_alice.get(f"/alice/code/commit/{code_repo.shas['first']}"))
    assert "README.md" in page and "added" in page


def test_ignore_whitespace_hides_indentation_changes(as_alice, code_repo, work):
    (work / "src" / "main.c").write_text("int main(void) {\n    /* a\n     comment */\n    return 1;\n}\n")
    sha = commit_all(work, "Reindent")
    run(work, "push", "-q", str(code_repo.path), "main")
    assert "diff-add" in text(as_alice.get(f"/alice/code/commit/{sha}"))
    assert "diff-add" not in text(as_alice.get(f"/alice/code/commit/{sha}?w=1"))


def test_mode_change_and_binary_are_described(as_alice, code_repo, work):
    (work / "src" / "main.c").chmod(0o755)
    (work / "logo.png").write_bytes(PNG + b"more")
    sha = commit_all(work, "Executable main, new logo")
    run(work, "push", "-q", str(code_repo.path), "main")
    page = text(as_alice.get(f"/alice/code/commit/{sha}"))
    assert "mode 100644 → 100755" in page
    assert "Binary file not shown." in page


def test_compare_diffs_from_the_merge_base(as_alice, code_repo):
    page = text(as_alice.get("/alice/code/compare/main...feature/login"))
    assert "Add login" in page and "src/login.c" in page
    assert "1 changed file" in page


def test_big_compare_renders_first_files_and_loads_the_rest(as_alice, code_repo, work):
    run(work, "checkout", "-q", "-b", "big")
    for n in range(60):
        (work / f"f{n:02}.txt").write_text("line\n" * 5)
    (work / "huge.txt").write_text("".join(f"{n}\n" for n in range(3000)))
    commit_all(work, "Many files")
    run(work, "push", "-q", str(code_repo.path), "big")
    page = text(as_alice.get("/alice/code/compare/main...big"))
    assert page.count('class="diff-file"') + page.count('class="diff-file diff-pending"') == 61
    assert 'id="diff-0"' in page and "diff-pending" in page
    pending = re.findall(r'data-fragment-url="([^"]+)"', page)
    assert pending
    fragment = as_alice.get(pending[-1].replace("&amp;", "&"))
    assert fragment.status_code == 200 and 'class="diff-file"' in text(fragment) and "<html" not in text(fragment)
    # The huge file is collapsed behind a button that loads it alone.
    urls = re.findall(r'class="diff-load" data-fragment-url="([^"]+)"', page + text(fragment))
    if not urls:
        for url in set(pending):
            urls += re.findall(
                r'class="diff-load" data-fragment-url="([^"]+)"', text(as_alice.get(url.replace("&amp;", "&")))
            )
    assert urls
    whole = text(as_alice.get(urls[0].replace("&amp;", "&")))
    assert "+2999" in whole


def test_blame_names_commit_author_and_age(as_alice, code_repo):
    page = text(as_alice.get("/alice/code/blame/main/src/main.c"))
    assert "Return 1, rename the guide" in page and "Start the project" in page
    assert 'class="blame-commit"' in page and "data-age=" in page
    assert page.count("<tr id=") == 5


def test_branches_and_tags_pages(as_alice, code_repo):
    branches = text(as_alice.get("/alice/code/branches"))
    assert "feature/login" in branches and "/alice/code/compare/main...feature/login" in branches
    tags = text(as_alice.get("/alice/code/tags"))
    assert "v1.0" in tags and "Release 1.0" in tags and "/alice/code/archive/v1.0.tar.gz" in tags


def test_archives_stream_tar_gz_and_zip(as_alice, code_repo):
    response = as_alice.get("/alice/code/archive/feature/login.tar.gz")
    assert response.status_code == 200 and response.streaming
    data = b"".join(response.streaming_content)
    names = tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))).getnames()
    assert "code-feature-login/src/login.c" in names
    response = as_alice.get("/alice/code/archive/v1.0.zip")
    names = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()
    assert "code-v1.0/README.md" in names
    assert as_alice.get("/alice/code/archive/main.rar").status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/alice/code/tree/nope",
        "/alice/code/tree/main/nope",
        "/alice/code/blob/main/src/nope.c",
        "/alice/code/raw/main/src",
        "/alice/code/blame/main/src",
        "/alice/code/commits/nope",
        "/alice/code/commit/0123456789abcdef0123456789abcdef01234567",
        "/alice/code/commit/not-a-sha",
        "/alice/code/compare/main...nope",
        "/alice/code/compare/main",
        "/alice/code/archive/nope.zip",
        "/alice/code/commits/main?page=999",
        "/alice/code/commits/main?page=x",
        "/alice/code/commit/main?start=x",
    ],
)
def test_unknown_refs_and_paths_are_404(as_alice, code_repo, url):
    assert as_alice.get(url).status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/alice/code/tree/--output=x",
        "/alice/code/blob/-main/README.md",
        "/alice/code/tree/main..feature",
        "/alice/code/compare/--upload-pack=x...main",
        "/alice/code/compare/main..feature/login...main",
        "/alice/code/archive/--format=zip.zip",
        "/alice/code/commits/--all",
        "/alice/code/blame/main/../../etc/passwd",
        "/alice/code/raw/main/..%2F..%2F..%2Fetc%2Fpasswd",
        "/alice/code/raw/main/%2Fetc%2Fpasswd",
    ],
)
def test_option_like_refs_and_escaping_paths_are_refused(as_alice, code_repo, url):
    response = as_alice.get(url)
    assert response.status_code == 404
    assert b"root:" not in response.content


@pytest.mark.parametrize(
    "url",
    [
        "/alice/code/raw/main/README.md%00.png",
        "/alice/code/raw/main/src/main.c%00",
        "/alice/code/blob/main/README.md%00.png",
        "/alice/code/blob/main/src%00/main.c",
        "/alice/code/tree/main/src%00.d",
        "/alice/code/tree/main%00/src",
        "/alice/code/blame/main/src/main.c%00.txt",
        "/alice/code/commits/main/src/main.c%00.txt",
        "/alice/code/commit/%00",
        "/alice/code/compare/main...feature/login%00",
        "/alice/code/archive/main%00.zip",
        "/alice/code/refs?page=blob&path=README.md%00.png",
        "/alice/code/tree/main%0A",
        "/alice/code/raw/main%09/README.md",
        "/alice/code/compare/main%7F...feature/login",
    ],
)
def test_nul_and_control_characters_in_refs_and_paths_are_404(as_alice, code_repo, url):
    # libgit2 reads paths as C strings: without the check, README.md%00.png would serve README.md.
    response = as_alice.get(url)
    assert response.status_code == 404
    assert b"# Code" not in response.content


def test_a_ref_named_like_a_path_outside_is_only_a_ref(as_alice, code_repo, work):
    run(work, "branch", "etc")
    run(work, "push", "-q", str(code_repo.path), "etc")
    assert as_alice.get("/alice/code/raw/etc/passwd").status_code == 404


def test_empty_repository_pages(alice):
    repo = repo_services.create_repository(actor=alice, owner=alice, name="empty")
    client = Client()
    client.force_login(alice)
    assert "Quick setup" in text(client.get("/alice/empty"))
    for url in ("/alice/empty/tree/main", "/alice/empty/commits", "/alice/empty/archive/main.zip"):
        assert client.get(url).status_code == 404, url
    assert client.get("/alice/empty/branches").status_code == 200
    assert client.get("/alice/empty/tags").status_code == 200
    assert repo.path.exists()


def test_public_repository_is_browsable_anonymously(alice, code_repo):
    repo_services.update_repository(code_repo, actor=alice, visibility=Visibility.PUBLIC)
    assert Client().get("/alice/code/blob/main/src/main.c").status_code == 200


def test_blame_is_computed_once_per_commit_and_path(as_alice, code_repo, monkeypatch):
    sha = code_repo.shas["main"]
    first = table(text(as_alice.get(f"/alice/code/blame/{sha}/src/main.c")))
    calls = []
    real = git.blame
    monkeypatch.setattr(git, "blame", lambda *args: calls.append(args) or real(*args))
    assert table(text(as_alice.get(f"/alice/code/blame/{sha}/src/main.c"))) == first
    assert calls == []


def table(page: str) -> str:
    return page[page.index("<table") : page.index("</table>")]


def test_anonymous_pages_are_cached_whole_but_follow_pushes_and_settings(alice, code_repo, work):
    repo_services.update_repository(code_repo, actor=alice, visibility=Visibility.PUBLIC)
    anonymous = Client()
    assert "Add a submodule" in text(anonymous.get("/alice/code"))
    (work / "news.txt").write_text("news\n")
    commit_all(work, "Add news")
    run(work, "push", "-q", str(code_repo.path), "main")
    assert "Add news" in text(anonymous.get("/alice/code"))
    repo_services.update_repository(code_repo, actor=alice, description="Now with a description")
    assert "Now with a description" in text(anonymous.get("/alice/code"))
    # A signed-in visitor gets their own page, not the cached one.
    signed_in = Client()
    signed_in.force_login(alice)
    assert 'class="me">alice<' in text(signed_in.get("/alice/code"))
    repo_services.update_repository(code_repo, actor=alice, visibility=Visibility.PRIVATE)
    assert anonymous.get("/alice/code").status_code in (302, 404)
    assert anonymous.get("/alice/code/tree/main").status_code in (302, 404)


def test_pages_are_computed_while_the_cache_is_unreachable(alice, code_repo, settings, tmp_path, caplog):
    repo_services.update_repository(code_repo, actor=alice, visibility=Visibility.PUBLIC)
    # The shared cache is a Redis that is not there (stopped, or its host down).
    settings.CACHES = {
        "default": {"BACKEND": "portal.cache.FailSafeRedisCache", "LOCATION": f"unix://{tmp_path / 'gone.sock'}"}
    }
    signed_in = Client()
    signed_in.force_login(alice)
    pages = ["/", "/alice/code", "/alice/code/tree/main/src", "/alice/code/blob/main/src/main.c"]
    for client in (Client(), signed_in):
        for url in [*pages, f"/alice/code/commit/{code_repo.shas['second']}", "/alice/code/blame/main/src/main.c"]:
            assert client.get(url).status_code == 200, url
    assert ">return<" in text(Client().get("/alice/code/blob/main/src/main.c"))
    # Said once, not once a page.
    assert [record.levelname for record in caplog.records if record.name == "portal.cache"] == ["WARNING"]


def test_blame_of_a_binary_file_says_so(as_alice, code_repo):
    page = text(as_alice.get("/alice/code/blame/main/logo.png"))
    assert "binary or too large to blame" in page and 'href="/alice/code/raw/main/logo.png"' in page


def test_tags_of_a_blob_or_a_tree_are_left_out_and_name_no_commit(as_alice, code_repo, work):
    # As git's own history has (junio-gpg-pub is a tag of a blob).
    blob = run(work, "rev-parse", "main:README.md").strip()
    tree = run(work, "rev-parse", "main:src").strip()
    run(work, "tag", "-a", "-m", "A key", "a-key", blob)
    run(work, "tag", "a-folder", tree)
    run(work, "push", "-q", str(code_repo.path), "--tags")
    tags = as_alice.get("/alice/code/tags")
    assert tags.status_code == 200
    assert "v1.0" in text(tags) and "a-key" not in text(tags) and "a-folder" not in text(tags)
    for ref in ("a-key", "a-folder"):
        assert as_alice.get(f"/alice/code/tree/{ref}").status_code == 404
        assert as_alice.get(f"/alice/code/commits/{ref}").status_code == 404
    assert as_alice.get(f"/alice/code/tree/{blob[:12]}").status_code == 404


def test_tags_are_paginated(as_alice, code_repo, work):
    for n in range(55):
        run(work, "tag", f"t{n:02}")
    run(work, "push", "-q", str(code_repo.path), "--tags")
    first = text(as_alice.get("/alice/code/tags"))
    # 56 tags with v1.0, and a header row on each page.
    assert first.count("<tr>") == 1 + 50 and "?page=2" in first
    assert text(as_alice.get("/alice/code/tags?page=2")).count("<tr>") == 1 + 6
    assert as_alice.get("/alice/code/tags?page=3").status_code == 404


def test_last_commits_wait_their_turn_when_every_slot_is_taken(as_alice, code_repo, work):
    from repos import code

    # A commit no other test made, so that nothing is cached for it yet.
    (work / "src" / "unique.txt").write_text(str(uuid.uuid4()))
    commit_all(work, "Something new")
    run(work, "push", "-q", str(code_repo.path), "main")
    taken = [code._LAST_COMMITS_SLOTS.acquire(blocking=False) for _ in range(2)]
    try:
        busy = as_alice.get("/alice/code/tree/main/src?fragment=commits")
        assert busy.status_code == 503 and busy["Retry-After"] == "2"
    finally:
        for _ in filter(None, taken):
            code._LAST_COMMITS_SLOTS.release()
    assert as_alice.get("/alice/code/tree/main/src?fragment=commits").json()["complete"]
