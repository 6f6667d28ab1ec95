"""Who may do what on a pull request: the named checks of reviews.access that services and pages both use."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied

from repos import services as repo_services
from repos.models import Role
from reviews import access, services
from reviews.models import Comment, PullRequest


@pytest.fixture
def people(alice, bob, carol, mallory, private_repo):
    """alice admins alice/project, mallory maintains it, bob writes, carol reads."""
    repo_services.set_collaborator(private_repo, mallory, actor=alice, role=Role.MAINTAIN)
    return {"alice": alice, "mallory": mallory, "bob": bob, "carol": carol}


def _pull(repo, author, number: int) -> PullRequest:
    return PullRequest.objects.create(
        repository=repo,
        number=number,
        title=f"Change {number}",
        author=author,
        base_branch="main",
        head_branch=f"change-{number}",
        head_sha="a" * 40,
        base_sha="b" * 40,
    )


def _who(people: dict, check) -> set[str]:
    return {name for name, user in people.items() if check(user)}


def test_the_author_or_a_writer_edits_and_applies_suggestions(people, private_repo):
    by_carol, by_bob = _pull(private_repo, people["carol"], 1), _pull(private_repo, people["bob"], 2)
    assert _who(people, lambda u: access.can_edit_pull(u, by_carol)) == {"alice", "mallory", "bob", "carol"}
    assert _who(people, lambda u: access.can_edit_pull(u, by_bob)) == {"alice", "mallory", "bob"}
    assert _who(people, lambda u: access.can_apply_suggestion(u, by_carol)) == {"alice", "mallory", "bob", "carol"}
    assert _who(people, lambda u: access.can_apply_suggestion(u, by_bob)) == {"alice", "mallory", "bob"}
    assert not access.can_edit_pull(AnonymousUser(), by_bob)


def test_roles_decide_merging_dismissing_and_overriding(people, private_repo):
    pr = _pull(private_repo, people["carol"], 1)
    assert _who(people, lambda u: access.can_merge(u, pr)) == {"alice", "mallory", "bob"}
    assert _who(people, lambda u: access.can_dismiss_review(u, pr)) == {"alice", "mallory"}
    assert _who(people, lambda u: access.can_override_rules(u, pr)) == {"alice"}
    assert _who(people, lambda u: access.can_give_verdict(u, pr)) == {"alice", "mallory", "bob"}
    assert not access.can_give_verdict(AnonymousUser(), pr)


def test_comments_are_their_authors_and_threads_are_resolved_by_those_in_them(people, private_repo):
    pr = _pull(private_repo, people["bob"], 1)
    thread = Comment.objects.create(pull_request=pr, author=people["mallory"], body="Why?", path="a.c", line=1)
    reply = Comment.objects.create(pull_request=pr, author=people["carol"], body="Because.", reply_to=thread)
    assert _who(people, lambda u: access.can_edit_comment(u, reply)) == {"carol"}
    assert _who(people, lambda u: access.can_delete_comment(u, reply)) == {"alice", "mallory", "carol"}
    assert _who(people, lambda u: access.can_delete_comment(u, thread)) == {"alice", "mallory"}
    # The thread's author, the pull request's author (bob) or a writer; a reply stands for its thread.
    assert _who(people, lambda u: access.can_resolve_thread(u, thread)) == {"alice", "mallory", "bob"}
    assert _who(people, lambda u: access.can_resolve_thread(u, reply)) == {"alice", "mallory", "bob"}
    assert not access.can_resolve_thread(AnonymousUser(), thread)


def test_the_services_refuse_what_the_checks_refuse(people, private_repo):
    pr = _pull(private_repo, people["bob"], 1)
    thread = Comment.objects.create(pull_request=pr, author=people["mallory"], body="Why?", path="a.c", line=1)
    with pytest.raises(PermissionDenied):
        services.resolve_thread(thread, actor=people["carol"])
    with pytest.raises(PermissionDenied):
        services.delete_comment(thread, actor=people["bob"])
    with pytest.raises(PermissionDenied):
        services.edit_comment(thread, actor=people["alice"], body="Mine now")
    with pytest.raises(PermissionDenied):
        services.close_pull_request(pr, actor=people["carol"])
    services.resolve_thread(thread, actor=people["bob"])
    thread.refresh_from_db()
    assert thread.resolved_by == people["bob"]
    assert Comment.objects.filter(pk=thread.pk, body="Why?").exists()
