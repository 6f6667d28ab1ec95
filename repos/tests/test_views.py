"""The repository pages through the Django client, against real bare repositories on disk."""

import re

import asyncssh
import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from portal import services as accounts
from portal.models import AuditEvent, SshKey
from repos import git, services, templates
from repos.access import NO_ACCESS, role_for
from repos.models import Repository, Role, TeamRepository, Visibility


def _public_key(comment: str = "deploy@ci") -> str:
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    return key.export_public_key("openssh").decode().strip()


def _login(client, user):
    client.force_login(user)
    return client


def _new(client, **data):
    payload = {"owner": "alice", "name": "tool", "description": "", "visibility": "private", "default_branch": "main"}
    return client.post("/new", payload | data)


# Creating


@pytest.mark.parametrize("visibility", ["private", "internal", "public"])
def test_it_creates_a_repository_with_each_visibility(client, alice, settings, visibility):
    response = _new(_login(client, alice), visibility=visibility, description="A tool")
    assert response.status_code == 302
    assert response["Location"] == "/alice/tool"
    repo = Repository.objects.get(owner=alice, name="tool")
    assert repo.visibility == visibility
    assert repo.description == "A tool"
    assert (settings.GIT_ROOT / f"{repo.pk}.git").is_dir()
    assert git.branches(repo.path) == []


def test_new_repository_form_defaults_to_private_and_main(client, alice):
    page = _login(client, alice).get("/new").content.decode()
    assert re.search(r'value="private"[^>]*checked', page)
    assert not re.search(r'value="(internal|public)"[^>]*checked', page)
    assert re.search(r'name="default_branch" value="main"', page)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("..", "cannot start or end with"),
        ("-x", "cannot start with &#x27;-&#x27;"),
        ("a/b", "may only use letters"),
        ("rеpo", "ASCII"),  # the "е" is Cyrillic
        ("tool.git", ".git"),
        ("new", "reserved"),
        ("", "This field is required"),
    ],
)
def test_bad_names_show_the_reason_and_create_nothing(client, alice, settings, name, reason):
    response = _new(_login(client, alice), name=name)
    assert response.status_code == 200
    assert reason in response.content.decode()
    assert not Repository.objects.exists()
    assert list(settings.GIT_ROOT.iterdir()) == []


def test_a_taken_name_is_refused_case_insensitively(client, alice, settings):
    services.create_repository(actor=alice, owner=alice, name="Tool")
    response = _new(_login(client, alice), name="tool")
    assert "alice already has a repository named" in response.content.decode()
    assert Repository.objects.count() == 1
    assert len(list(settings.GIT_ROOT.iterdir())) == 1


def test_a_bad_default_branch_is_refused(client, alice, settings):
    response = _new(_login(client, alice), default_branch="-x")
    assert "is not a valid branch name" in response.content.decode()
    assert not Repository.objects.exists()
    assert list(settings.GIT_ROOT.iterdir()) == []


def test_initialize_with_readme_commits_on_main(client, alice):
    _new(_login(client, alice), initialize="on", description="Does things")
    repo = Repository.objects.get(name="tool")
    commit = git.head_commit(repo.path, "main")
    assert commit is not None
    assert commit.summary == "Initial commit"
    assert [b.name for b in git.branches(repo.path)] == ["main"]


def test_it_creates_in_an_organization_the_user_owns_but_not_elsewhere(client, alice, bob):
    org = accounts.create_organization(actor=alice, name="acme")
    _login(client, alice)
    assert 'value="acme"' in client.get("/new").content.decode()
    assert _new(client, owner="acme")["Location"] == "/acme/tool"
    assert Repository.objects.get(name="tool").owner == org
    response = _new(client, owner="bob", name="other")
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Repository.objects.filter(owner=bob).exists()


def test_a_registered_template_is_offered_and_its_creator_makes_the_repository(client, alice, monkeypatch):
    made = []

    def create(*, actor, owner, name, description, visibility, default_branch):
        made.append(name)
        return services.create_repository(
            actor=actor,
            owner=owner,
            name=name,
            description=description,
            visibility=visibility,
            default_branch=default_branch,
            initialize=True,
        )

    template = templates.RepositoryTemplate("notes", "Start with notes", "A README to take notes in.", create)
    monkeypatch.setitem(templates._registry, "notes", template)
    _login(client, alice)
    page = client.get("/new").content.decode()
    assert 'name="template" value="notes"' in page
    assert "Start with notes" in page and "A README to take notes in." in page

    assert _new(client, template="notes")["Location"] == "/alice/tool"
    assert made == ["tool"]
    assert git.head_commit(Repository.objects.get(name="tool").path, "main").summary == "Initial commit"


def test_without_a_registered_template_the_form_offers_no_choice(client, alice, monkeypatch):
    monkeypatch.setattr(templates, "_registry", {})
    _login(client, alice)
    assert 'name="template"' not in client.get("/new").content.decode()
    assert _new(client, template="release")["Location"] == "/alice/tool"
    assert git.branches(Repository.objects.get(name="tool").path) == []


def test_anonymous_users_are_sent_to_sign_in_to_create(client, db):
    response = client.get("/new")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


# The repository page


def test_an_empty_repository_shows_clone_urls_and_push_instructions(client, alice):
    repo = services.create_repository(actor=alice, owner=alice, name="empty")
    page = _login(client, alice).get("/alice/empty").content.decode()
    assert repo.ssh_url in page
    assert repo.http_url in page
    assert 'data-copy="#clone-ssh"' in page and 'data-copy="#clone-http"' in page
    assert "Create a new repository on the command line" in page
    assert "Push an existing repository from the command line" in page
    assert f"git remote add origin {repo.ssh_url}" in page
    assert f"git remote add origin {repo.http_url}" in page
    assert "git push -u origin main" in page


def test_a_repository_with_history_shows_its_default_branch_and_clone_urls(client, private_repo, alice):
    git.commit_files(private_repo.path, "feature", {"a.txt": b"a"}, "Add a", name="Bob", email="bob@example.com")
    page = _login(client, alice).get("/alice/project").content.decode()
    assert private_repo.ssh_url in page and private_repo.http_url in page
    assert "Push an existing repository" not in page
    assert "Initial commit" in page and 'href="/alice/project/blob/main/README.md"' in page
    assert git.branch_sha(private_repo.path, "main")[:7] in page
    branches = client.get("/alice/project/branches").content.decode()
    assert "feature" in branches and "Add a" in branches


def test_the_settings_link_is_shown_to_admins_only(client, private_repo, alice, carol):
    settings_link = 'href="/alice/project/settings"'
    assert settings_link in _login(client, alice).get("/alice/project").content.decode()
    assert settings_link not in _login(client, carol).get("/alice/project").content.decode()


def test_internal_and_public_repositories_are_readable_as_their_visibility_says(client, alice, mallory):
    services.create_repository(actor=alice, owner=alice, name="inside", visibility=Visibility.INTERNAL)
    services.create_repository(actor=alice, owner=alice, name="open", visibility=Visibility.PUBLIC)
    assert client.get("/alice/inside").status_code == 404
    assert client.get("/alice/open").status_code == 200
    _login(client, mallory)
    assert client.get("/alice/inside").status_code == 200
    assert client.get("/alice/open").status_code == 200


def test_a_repository_is_found_by_its_path_in_any_case_and_by_no_pattern(client, alice, mallory):
    services.create_repository(actor=alice, owner=alice, name="open_tool", visibility=Visibility.PUBLIC)
    services.update_repository(
        Repository.objects.get(name="open_tool"), actor=alice, description="Found by its own name"
    )
    services.create_repository(actor=alice, owner=alice, name="secret", visibility=Visibility.PRIVATE)
    page = client.get("/ALICE/Open_Tool")
    assert page.status_code == 200 and "Found by its own name" in page.content.decode()
    # The path is a name, not a pattern: LIKE's wildcards match nothing else.
    for path in (
        *("/alice/open_too_", "/alice/open%25", "/al_ce/open_tool", "/alice/%25", "/%25/open_tool"),
        *("/alice%00/open_tool", "/alice/open_tool%00", "/alice/open_tool%00/tree/main"),
    ):
        assert client.get(path).status_code == 404, path
    # A private repository stays hidden in any case, and is found by those who may read it.
    assert client.get("/alice/SECRET").status_code == 404
    _login(client, mallory)
    assert client.get("/Alice/Secret").status_code == 404
    _login(client, alice)
    assert client.get("/Alice/Secret").status_code == 200


# Access to pages and settings

SETTINGS_PAGES = ["settings", "settings/collaborators", "settings/keys"]
SETTINGS_POSTS = [
    ("settings", {"description": "x", "default_branch": "main", "visibility": "public"}),
    ("settings/rename", {"name": "stolen"}),
    ("settings/transfer", {"new_owner": "mallory"}),
    ("settings/delete", {"confirm": "alice/project"}),
    ("settings/collaborators", {"username": "mallory", "role": "admin"}),
    ("settings/collaborators/carol/role", {"role": "admin"}),
    ("settings/collaborators/carol/remove", {}),
    ("settings/keys", {"title": "x", "public_key": _public_key()}),
]


@pytest.mark.parametrize("who", ["anonymous", "mallory"])
def test_outsiders_get_404_on_every_private_repository_page(client, private_repo, mallory, who):
    if who == "mallory":
        _login(client, mallory)
    assert client.get("/alice/project").status_code == 404
    for page in SETTINGS_PAGES:
        assert client.get(f"/alice/project/{page}").status_code == 404, page
    for page, data in SETTINGS_POSTS:
        assert client.post(f"/alice/project/{page}", data).status_code == 404, page
    private_repo.refresh_from_db()
    assert private_repo.full_name == "alice/project" and private_repo.visibility == Visibility.PRIVATE
    assert role_for(mallory, private_repo) == NO_ACCESS


@pytest.mark.parametrize("who", ["bob", "carol"])
def test_readers_and_writers_get_403_on_settings(client, private_repo, request, who):
    _login(client, request.getfixturevalue(who))
    assert client.get("/alice/project").status_code == 200
    for page in SETTINGS_PAGES:
        assert client.get(f"/alice/project/{page}").status_code == 403, page
    for page, data in SETTINGS_POSTS:
        assert client.post(f"/alice/project/{page}", data).status_code == 403, page
    assert Repository.objects.get(pk=private_repo.pk).full_name == "alice/project"
    assert not SshKey.objects.exists()


def test_admins_see_every_settings_page(client, private_repo, alice, admin):
    for user in (alice, admin):
        _login(client, user)
        for page in SETTINGS_PAGES:
            assert client.get(f"/alice/project/{page}").status_code == 200, page


def test_a_maintainer_is_not_an_admin(client, private_repo, alice, mallory):
    services.set_collaborator(private_repo, mallory, actor=alice, role=Role.MAINTAIN)
    assert _login(client, mallory).get("/alice/project/settings").status_code == 403


# General settings


def test_admin_changes_description_default_branch_and_visibility(client, private_repo, alice):
    git.commit_files(private_repo.path, "develop", {"b.txt": b"b"}, "Add b", name="A", email="a@example.com")
    response = _login(client, alice).post(
        "/alice/project/settings", {"description": "New words", "default_branch": "develop", "visibility": "internal"}
    )
    assert response.status_code == 302
    private_repo.refresh_from_db()
    assert (private_repo.description, private_repo.default_branch, private_repo.visibility) == (
        "New words",
        "develop",
        "internal",
    )
    actions = set(AuditEvent.objects.filter(target_id=str(private_repo.pk)).values_list("action", flat=True))
    assert {"repo.update", "repo.visibility"} <= actions


def test_the_default_branch_must_be_an_existing_branch(client, private_repo, alice):
    response = _login(client, alice).post(
        "/alice/project/settings", {"description": "", "default_branch": "nope", "visibility": "private"}
    )
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    private_repo.refresh_from_db()
    assert private_repo.default_branch == "main"


def test_rename_keeps_the_directory_and_the_old_address_is_gone(client, private_repo, alice):
    path = private_repo.path
    response = _login(client, alice).post("/alice/project/settings/rename", {"name": "renamed"})
    assert response["Location"] == "/alice/renamed/settings"
    private_repo.refresh_from_db()
    assert private_repo.name == "renamed"
    assert private_repo.path == path and path.is_dir()
    assert client.get("/alice/project").status_code == 404
    assert client.get("/alice/renamed").status_code == 200


def test_rename_to_a_bad_name_shows_why(client, private_repo, alice):
    response = _login(client, alice).post("/alice/project/settings/rename", {"name": "../x"})
    assert response.status_code == 400
    assert "may only use letters" in response.content.decode()
    assert Repository.objects.get(pk=private_repo.pk).name == "project"


def test_transfer_to_an_organization_the_admin_owns(client, private_repo, alice):
    accounts.create_organization(actor=alice, name="acme")
    response = _login(client, alice).post("/alice/project/settings/transfer", {"new_owner": "acme"})
    assert response.status_code == 200 and "Transfer alice/project to acme?" in response.content.decode()
    assert Repository.objects.get(pk=private_repo.pk).owner == alice
    response = client.post("/alice/project/settings/transfer", {"new_owner": "acme", "confirmed": "1"})
    assert response["Location"] == "/acme/project"
    private_repo.refresh_from_db()
    assert private_repo.full_name == "acme/project"
    assert client.get("/alice/project").status_code == 404
    assert client.get("/acme/project").status_code == 200


def test_transfer_to_someone_else_is_refused_with_a_reason(client, private_repo, alice, mallory):
    _login(client, alice)
    response = client.post("/alice/project/settings/transfer", {"new_owner": "mallory", "confirmed": "1"})
    assert response.status_code == 400
    assert "You cannot move repositories to mallory" in response.content.decode()
    response = client.post("/alice/project/settings/transfer", {"new_owner": "nobody"})
    assert "There is no user or organization named" in response.content.decode()
    assert Repository.objects.get(pk=private_repo.pk).owner == alice


def test_delete_requires_the_exact_full_name(client, private_repo, alice):
    _login(client, alice)
    for typed in ("project", "alice/Project", "bob/project"):
        response = client.post("/alice/project/settings/delete", {"confirm": typed})
        assert response.status_code == 400
        assert "Type alice/project to confirm" in response.content.decode()
    assert client.post("/alice/project/settings/delete", {"confirm": ""}).status_code == 400
    assert Repository.objects.filter(pk=private_repo.pk).exists()
    assert private_repo.path.is_dir()


def test_delete_removes_the_row_and_the_directory(client, private_repo, alice, django_capture_on_commit_callbacks):
    path = private_repo.path
    _login(client, alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/alice/project/settings/delete", {"confirm": "alice/project"})
    assert response["Location"] == "/alice"
    assert not Repository.objects.filter(pk=private_repo.pk).exists()
    assert not path.exists()
    assert client.get("/alice/project").status_code == 404
    assert AuditEvent.objects.filter(action="repo.delete", target_repr="alice/project").exists()


# Collaborators and teams


def test_collaborators_are_added_changed_and_removed(client, private_repo, alice, mallory):
    _login(client, alice)
    response = client.post("/alice/project/settings/collaborators", {"username": "mallory", "role": "read"})
    assert response["Location"] == "/alice/project/settings/collaborators"
    assert role_for(mallory, private_repo) == Role.READ
    assert "mallory" in client.get("/alice/project/settings/collaborators").content.decode()

    client.post("/alice/project/settings/collaborators/mallory/role", {"role": "write"})
    assert role_for(mallory, private_repo) == Role.WRITE

    client.post("/alice/project/settings/collaborators/mallory/remove", {"confirmed": "1"})
    assert role_for(mallory, private_repo) == NO_ACCESS
    actions = list(AuditEvent.objects.filter(subject=mallory).values_list("action", flat=True))
    assert sorted(actions) == ["repo.collaborator_remove", "repo.collaborator_set", "repo.collaborator_set"]


def test_adding_an_unknown_user_or_an_organization_as_collaborator_is_refused(client, private_repo, alice):
    accounts.create_organization(actor=alice, name="acme")
    _login(client, alice)
    for name in ("nobody", "acme"):
        response = client.post("/alice/project/settings/collaborators", {"username": name, "role": "read"})
        assert response.status_code == 400
        assert "There is no active user named" in response.content.decode()
    assert private_repo.collaborators.count() == 2


def test_a_bad_role_is_refused(client, private_repo, alice, carol):
    _login(client, alice)
    response = client.post("/alice/project/settings/collaborators", {"username": "mallory", "role": "owner"})
    assert response.status_code == 400
    client.post("/alice/project/settings/collaborators/carol/role", {"role": "owner"})
    assert role_for(carol, private_repo) == Role.READ


def test_teams_of_the_owning_organization_get_roles(client, alice, bob):
    org = accounts.create_organization(actor=alice, name="acme")
    team = accounts.create_team(org, actor=alice, name="devs")
    accounts.add_team_member(team, bob, actor=alice)
    repo = services.create_repository(actor=alice, owner=org, name="app")
    assert role_for(bob, repo) == NO_ACCESS

    _login(client, alice)
    assert "Add a team" in client.get("/acme/app/settings/collaborators").content.decode()
    client.post("/acme/app/settings/teams", {"team": "devs", "role": "write"})
    assert role_for(bob, repo) == Role.WRITE
    client.post("/acme/app/settings/teams/devs/role", {"role": "admin"})
    assert role_for(bob, repo) == Role.ADMIN
    client.post("/acme/app/settings/teams/devs/remove", {"confirmed": "1"})
    assert role_for(bob, repo) == NO_ACCESS
    assert not TeamRepository.objects.exists()


def test_personal_repositories_have_no_teams(client, private_repo, alice):
    _login(client, alice)
    assert "Add a team" not in client.get("/alice/project/settings/collaborators").content.decode()
    assert client.post("/alice/project/settings/teams", {"team": "owners", "role": "read"}).status_code == 404


# Deploy keys


def test_deploy_keys_are_added_listed_and_removed(client, private_repo, alice):
    public_key = _public_key("ci@build")
    _login(client, alice)
    response = client.post("/alice/project/settings/keys", {"title": "CI", "public_key": public_key, "writable": "on"})
    assert response["Location"] == "/alice/project/settings/keys"
    key = SshKey.objects.get(repository=private_repo)
    assert (key.title, key.writable, key.user) == ("CI", True, None)
    page = client.get("/alice/project/settings/keys").content.decode()
    assert key.fingerprint in page and "Read and write" in page and "Never used" in page

    client.post(f"/alice/project/settings/keys/{key.pk}/remove", {"confirmed": "1"})
    assert not SshKey.objects.exists()
    assert key.fingerprint not in client.get("/alice/project/settings/keys").content.decode()
    actions = list(AuditEvent.objects.filter(target_id=str(private_repo.pk)).values_list("action", flat=True))
    assert "deploy_key.add" in actions and "deploy_key.remove" in actions


def test_deploy_keys_are_read_only_unless_chosen(client, private_repo, alice):
    _login(client, alice).post("/alice/project/settings/keys", {"title": "", "public_key": _public_key("mirror@host")})
    key = SshKey.objects.get(repository=private_repo)
    assert key.writable is False
    assert key.title == "mirror@host"


def test_a_key_registered_anywhere_is_refused_as_a_deploy_key(client, private_repo, alice):
    public_key = _public_key()
    accounts.add_ssh_key(alice, actor=alice, title="laptop", public_key=public_key)
    response = _login(client, alice).post("/alice/project/settings/keys", {"title": "CI", "public_key": public_key})
    assert response.status_code == 400
    assert "This key is already registered" in response.content.decode()
    assert not SshKey.objects.deploy_keys().exists()


def test_a_private_key_is_refused_with_the_reason(client, private_repo, alice):
    private = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    response = _login(client, alice).post("/alice/project/settings/keys", {"title": "CI", "public_key": private})
    assert response.status_code == 400
    page = response.content.decode()
    assert "That is a private key: paste the public key (the .pub file)" in page
    assert "PRIVATE KEY" not in page and private.splitlines()[1] not in page
    assert not SshKey.objects.exists()


def test_a_deploy_key_of_another_repository_cannot_be_removed_here(client, private_repo, alice):
    other = services.create_repository(actor=alice, owner=alice, name="other")
    key = services.add_deploy_key(actor=alice, title="x", public_key=_public_key(), repository=other)
    response = _login(client, alice).post(f"/alice/project/settings/keys/{key.pk}/remove", {"confirmed": "1"})
    assert response.status_code == 404
    assert SshKey.objects.filter(pk=key.pk).exists()


# Owner pages


def test_a_user_page_lists_only_repositories_the_viewer_can_read(client, private_repo, alice, mallory):
    services.create_repository(actor=alice, owner=alice, name="open", visibility=Visibility.PUBLIC)
    page = _login(client, mallory).get("/alice").content.decode()
    assert "open" in page and "project" not in page
    page = _login(client, alice).get("/alice").content.decode()
    assert "open" in page and "project" in page


def test_unknown_and_deactivated_owners_are_404(client, alice, admin, mallory):
    accounts.set_user_active(alice, actor=admin, active=False)
    _login(client, mallory)
    assert client.get("/nobody").status_code == 404
    assert client.get("/alice").status_code == 404


def test_deploy_key_services_refuse_everyone_but_admins(private_repo, alice, bob, mallory):
    with pytest.raises(PermissionDenied):
        services.add_deploy_key(actor=bob, title="x", public_key=_public_key(), repository=private_repo)
    with pytest.raises(Http404):
        services.add_deploy_key(actor=mallory, title="x", public_key=_public_key(), repository=private_repo)
    key = services.add_deploy_key(actor=alice, title="x", public_key=_public_key(), repository=private_repo)
    with pytest.raises(PermissionDenied):
        services.remove_deploy_key(key, actor=bob)
    assert SshKey.objects.filter(pk=key.pk).exists()


def test_an_empty_repository_keeps_its_default_branch_when_settings_are_saved(client, alice):
    repo = services.create_repository(actor=alice, owner=alice, name="empty", default_branch="trunk")
    response = _login(client, alice).post(
        "/alice/empty/settings", {"description": "Soon", "default_branch": "trunk", "visibility": "private"}
    )
    assert response.status_code == 302
    repo.refresh_from_db()
    assert (repo.description, repo.default_branch) == ("Soon", "trunk")
    assert "git push -u origin trunk" in client.get("/alice/empty").content.decode()
