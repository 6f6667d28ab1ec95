"""The pull request lists' queries, as queryset methods: what each user's dashboard tabs hold."""

import pytest

from portal import services as portal_services
from reviews import services
from reviews.models import PullRequest, ReviewRequest
from reviews.tests.conftest import make_branch


@pytest.fixture
def pulls(private_repo, alice, bob):
    """Two pull requests bob opened in alice/project and one alice opened."""
    opened = []
    for number, (author, branch) in enumerate([(bob, "one"), (bob, "two"), (alice, "three")], start=1):
        make_branch(private_repo, branch, {f"{branch}.txt": b"change\n"})
        pr = services.open_pull_request(private_repo, actor=author, title=f"Change {number}", base="main", head=branch)
        opened.append(pr)
    return opened


def _numbers(queryset) -> list[int]:
    return sorted(queryset.values_list("number", flat=True))


def test_awaiting_review_by_holds_direct_and_team_requests_until_the_member_reviews(pulls, alice, bob, carol):
    one, two, three = pulls
    services.request_review(one, actor=bob, users=[carol])
    org = portal_services.create_organization(actor=alice, name="acme")
    team = portal_services.create_team(org, actor=alice, name="core")
    portal_services.add_team_member(team, carol, actor=alice)
    ReviewRequest.objects.create(pull_request=two, team=team, requested_by=bob)
    ReviewRequest.objects.create(pull_request=three, user=alice, requested_by=alice)

    assert _numbers(PullRequest.objects.awaiting_review_by(carol)) == [1, 2]
    # Nobody waits on their own pull request.
    assert _numbers(PullRequest.objects.awaiting_review_by(alice)) == []
    services.submit_review(two, actor=carol, event="COMMENT", body="Looks fine.")
    assert _numbers(PullRequest.objects.awaiting_review_by(carol)) == [1]


def test_involving_counts_published_comments_and_reviews_only(pulls, alice, carol):
    one, two, three = pulls
    services.add_comment(one, actor=carol, body="A question.")
    services.add_comment(two, actor=carol, body="Not sent yet.", path="two.txt", line=1, pending=True)
    services.submit_review(three, actor=carol, event="COMMENT", body="Fine.")
    assert _numbers(PullRequest.objects.involving(carol)) == [1, 3]
    assert _numbers(PullRequest.objects.authored_by(alice)) == [3]


def test_the_list_filters_by_author_reviewer_and_repository(pulls, bob, carol, mallory):
    one, _two, _three = pulls
    services.request_review(one, actor=bob, users=[carol])
    assert _numbers(PullRequest.objects.opened_by_name("BOB")) == [1, 2]
    assert _numbers(PullRequest.objects.with_reviewer_named("carol")) == [1]
    assert _numbers(PullRequest.objects.in_repository_named("alice/PROJECT")) == [1, 2, 3]
    assert _numbers(PullRequest.objects.in_repository_named("alice/other")) == []
    assert _numbers(PullRequest.objects.visible_to(carol)) == [1, 2, 3]
    assert _numbers(PullRequest.objects.visible_to(mallory)) == []
    assert [pr.comment_count for pr in PullRequest.objects.for_list().order_by("number")] == [0, 0, 0]
