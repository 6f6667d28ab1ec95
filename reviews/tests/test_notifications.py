"""Notifications: who is told, what the preferences change, the emails a real worker sends, and the pages."""

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from portal import services as accounts
from portal.models import User
from repos import services as repo_services
from reviews import jobs
from reviews.models import Notification, NotificationPreference
from reviews.notifications import (
    mark_all_read,
    mark_read,
    notify,
    set_preferences,
    unread_count,
)

REVIEW_REQUESTED = Notification.Kind.REVIEW_REQUESTED


def enqueued_ids(rq_queues) -> list[list[int]]:
    return [job.args[0] for job in rq_queues["default"].get_jobs()]


def recipients_of(rows: list[Notification]) -> set[str]:
    return {row.user.username for row in rows}


# notify(): who is told.


def test_notify_skips_the_actor_outsiders_and_duplicates(pull_request, alice, bob, carol, mallory):
    rows = notify(
        REVIEW_REQUESTED, pull_request, actor=bob, recipients=[alice, bob, carol, carol, mallory], text="bob asks"
    )

    assert recipients_of(rows) == {"alice", "carol"}
    stored = Notification.objects.filter(pull_request=pull_request)
    assert sorted(stored.values_list("user__username", flat=True)) == ["alice", "carol"]
    row = stored.get(user=carol)
    assert (row.kind, row.actor, row.text, row.in_portal) == (REVIEW_REQUESTED, bob, "bob asks", True)
    assert row.url == "/alice/project/pulls/3"
    assert row.read_at is None and row.emailed_at is None


def test_notify_skips_inactive_users_and_organizations(pull_request, alice, bob, carol, admin):
    accounts.set_user_active(carol, actor=admin, active=False)
    org = accounts.create_organization(actor=alice, name="acme")

    rows = notify(REVIEW_REQUESTED, pull_request, actor=alice, recipients=[bob, carol, org], text="review please")

    assert recipients_of(rows) == {"bob"}


def test_notify_skips_someone_who_lost_access(pull_request, alice, bob, carol):
    repo_services.remove_collaborator(pull_request.repository, carol, actor=alice)

    rows = notify(Notification.Kind.MERGED, pull_request, actor=None, recipients=[bob, carol], text="merged")

    assert recipients_of(rows) == {"bob"}
    assert Notification.objects.get().actor is None


def test_notify_keeps_a_given_url(pull_request, alice, bob):
    rows = notify(
        Notification.Kind.COMMENT, pull_request, actor=alice, recipients=[bob], text="alice commented", url="/x#c-9"
    )

    assert rows[0].url == "/x#c-9"


def test_notify_follows_each_recipients_preferences(
    pull_request, alice, bob, carol, rq_queues, django_capture_on_commit_callbacks
):
    set_preferences(actor=alice, web_off=[REVIEW_REQUESTED], email_off=[])
    set_preferences(actor=bob, web_off=[], email_off=[REVIEW_REQUESTED])
    set_preferences(actor=carol, web_off=[REVIEW_REQUESTED], email_off=[REVIEW_REQUESTED])

    with django_capture_on_commit_callbacks(execute=True):
        rows = notify(REVIEW_REQUESTED, pull_request, actor=None, recipients=[alice, bob, carol], text="review")

    # Both off: carol gets nothing at all.
    assert recipients_of(rows) == {"alice", "bob"}
    alice_row = Notification.objects.get(user=alice)
    bob_row = Notification.objects.get(user=bob)
    assert alice_row.in_portal is False
    assert bob_row.in_portal is True
    # Only alice still wants the email.
    assert enqueued_ids(rq_queues) == [[alice_row.pk]]


def test_preferences_only_touch_the_kinds_turned_off(
    pull_request, alice, bob, rq_queues, django_capture_on_commit_callbacks
):
    set_preferences(actor=bob, web_off=[Notification.Kind.MERGED], email_off=[Notification.Kind.MERGED])

    with django_capture_on_commit_callbacks(execute=True):
        notify(REVIEW_REQUESTED, pull_request, actor=alice, recipients=[bob], text="review")

    row = Notification.objects.get(user=bob)
    assert row.in_portal is True
    assert enqueued_ids(rq_queues) == [[row.pk]]


def test_nothing_is_enqueued_before_the_transaction_commits(
    pull_request, alice, bob, rq_queues, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        notify(REVIEW_REQUESTED, pull_request, actor=alice, recipients=[bob], text="review")

    assert len(callbacks) == 1
    assert rq_queues["default"].count == 0


def test_a_queue_outage_does_not_fail_notify(transactional_db, pull_request, alice, bob, settings, caplog):
    # A real commit: the enqueue runs after it, outside any transaction, as it does in production.
    settings.RQ_QUEUES = {"default": {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 600}}

    rows = notify(REVIEW_REQUESTED, pull_request, actor=alice, recipients=[bob], text="review")

    assert Notification.objects.filter(pk=rows[0].pk, emailed_at__isnull=True).exists()
    assert "could not enqueue notification emails" in caplog.text


def test_notify_refuses_an_unknown_kind(pull_request, alice, bob):
    with pytest.raises(ValueError):
        notify("poked", pull_request, actor=alice, recipients=[bob], text="poke")

    assert not Notification.objects.exists()


def test_set_preferences_refuses_unknown_kinds(alice):
    with pytest.raises(ValidationError):
        set_preferences(actor=alice, web_off=["everything"], email_off=[])

    assert not NotificationPreference.objects.filter(user=alice).exists()


def test_set_preferences_replaces_the_previous_choice(alice):
    set_preferences(actor=alice, web_off=[REVIEW_REQUESTED], email_off=[REVIEW_REQUESTED, REVIEW_REQUESTED])
    set_preferences(actor=alice, web_off=[], email_off=[Notification.Kind.MERGED])

    preference = NotificationPreference.objects.get(user=alice)
    assert (preference.web_off, preference.email_off) == ([], ["merged"])


# Reading.


def test_mark_read_and_mark_all_read(pull_request, alice, bob, carol):
    notify(REVIEW_REQUESTED, pull_request, actor=alice, recipients=[bob, carol], text="one")
    notify(Notification.Kind.COMMENT, pull_request, actor=alice, recipients=[bob, carol], text="two")
    first = Notification.objects.filter(user=bob).last()
    assert unread_count(bob) == 2

    mark_read(first, actor=bob)
    read_at = Notification.objects.get(pk=first.pk).read_at
    assert read_at is not None and unread_count(bob) == 1
    # Reading it again keeps the first time.
    mark_read(first, actor=bob)
    assert Notification.objects.get(pk=first.pk).read_at == read_at

    assert mark_all_read(actor=bob) == 1
    assert unread_count(bob) == 0
    assert unread_count(carol) == 2


def test_mark_read_refuses_someone_elses_notification(pull_request, alice, bob, mallory):
    (row,) = notify(REVIEW_REQUESTED, pull_request, actor=alice, recipients=[bob], text="review")

    with pytest.raises(PermissionDenied):
        mark_read(row, actor=mallory)
    assert Notification.objects.get(pk=row.pk).read_at is None


def test_unread_count_leaves_out_hidden_rows_and_lost_repositories(pull_request, alice, bob, carol):
    set_preferences(actor=bob, web_off=[Notification.Kind.MERGED], email_off=[])
    notify(Notification.Kind.MERGED, pull_request, actor=alice, recipients=[bob, carol], text="merged")
    notify(REVIEW_REQUESTED, pull_request, actor=alice, recipients=[bob, carol], text="review")
    assert (unread_count(bob), unread_count(carol)) == (1, 2)

    repo_services.remove_collaborator(pull_request.repository, carol, actor=alice)

    assert unread_count(carol) == 0


def test_unread_count_is_one_query(pull_request, alice, bob, django_assert_num_queries):
    notify(REVIEW_REQUESTED, pull_request, actor=alice, recipients=[bob], text="review")

    with django_assert_num_queries(1):
        assert unread_count(bob) == 1


# Emails, sent by a real rq worker.


def test_a_real_worker_emails_each_recipient_once(
    pull_request, alice, bob, carol, rq_queues, email_backend, django_capture_on_commit_callbacks, run_worker
):
    with django_capture_on_commit_callbacks(execute=True):
        notify(REVIEW_REQUESTED, pull_request, actor=bob, recipients=[alice, carol], text="bob asked you to review")

    run_worker()

    assert sorted(message.to[0] for message in mail.outbox) == ["alice@example.com", "carol@example.com"]
    for message in mail.outbox:
        assert message.subject == "[alice/project] #3 Fix the parser: review requested"
        assert "bob asked you to review" in message.body
        assert "https://git.example.com/alice/project/pulls/3" in message.body
    assert not Notification.objects.filter(emailed_at__isnull=True).exists()
    assert rq_queues["default"].failed_job_registry.count == 0

    # A second delivery of the same job finds every row claimed and sends nothing.
    ids = list(Notification.objects.values_list("pk", flat=True))
    rq_queues["default"].enqueue("reviews.jobs.send_notification_emails", ids)
    run_worker()
    assert len(mail.outbox) == 2


def test_the_email_job_skips_people_without_email_or_access(pull_request, alice, bob, carol, email_backend):
    rows = notify(REVIEW_REQUESTED, pull_request, actor=alice, recipients=[bob, carol], text="review")
    User.objects.filter(pk=bob.pk).update(email="")
    repo_services.remove_collaborator(pull_request.repository, carol, actor=alice)

    jobs.send_notification_emails([row.pk for row in rows])

    assert mail.outbox == []
    assert not Notification.objects.filter(emailed_at__isnull=False).exists()


def test_the_email_job_skips_a_row_claimed_by_another_delivery(pull_request, alice, bob, email_backend):
    (row,) = notify(REVIEW_REQUESTED, pull_request, actor=alice, recipients=[bob], text="review")
    Notification.objects.filter(pk=row.pk).update(emailed_at=row.created)

    jobs.send_notification_emails([row.pk, 999999])

    assert mail.outbox == []


def test_a_failed_send_gives_the_claim_back(pull_request, alice, bob, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2
    (row,) = notify(REVIEW_REQUESTED, pull_request, actor=alice, recipients=[bob], text="review")

    with pytest.raises(OSError):
        jobs.send_notification_emails([row.pk])

    assert Notification.objects.get(pk=row.pk).emailed_at is None


# The pages.


def test_the_list_shows_only_my_notifications(client, pull_request, alice, bob, carol):
    notify(REVIEW_REQUESTED, pull_request, actor=bob, recipients=[alice], text="for alice")
    notify(REVIEW_REQUESTED, pull_request, actor=alice, recipients=[carol], text="for carol")
    client.force_login(alice)

    response = client.get(reverse("notifications:list"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "for alice" in page and "for carol" not in page
    assert "alice/project #3" in page and "Fix the parser" in page
    assert "Notifications (1)" in page


def test_the_list_shows_unread_first_and_read_ones_on_request(client, pull_request, alice, bob):
    (old,) = notify(REVIEW_REQUESTED, pull_request, actor=bob, recipients=[alice], text="already seen")
    mark_read(old, actor=alice)
    notify(Notification.Kind.COMMENT, pull_request, actor=bob, recipients=[alice], text="not seen yet")
    client.force_login(alice)

    unread_only = client.get(reverse("notifications:list")).content.decode()
    everything = client.get(reverse("notifications:list"), {"all": "1"}).content.decode()

    assert "not seen yet" in unread_only and "already seen" not in unread_only
    assert everything.index("not seen yet") < everything.index("already seen")


def test_the_list_hides_notifications_of_repositories_i_can_no_longer_read(client, pull_request, alice, carol):
    notify(REVIEW_REQUESTED, pull_request, actor=alice, recipients=[carol], text="secret work")
    repo_services.remove_collaborator(pull_request.repository, carol, actor=alice)
    client.force_login(carol)

    response = client.get(reverse("notifications:list"), {"all": "1"})

    assert "secret work" not in response.content.decode()


def test_reading_a_notification_marks_it_and_goes_to_it(client, pull_request, alice, bob):
    (row,) = notify(REVIEW_REQUESTED, pull_request, actor=bob, recipients=[alice], text="review")
    client.force_login(alice)

    response = client.post(reverse("notifications:read", args=[row.pk]))

    assert response.status_code == 302
    assert response.url == "/alice/project/pulls/3"
    row.refresh_from_db()
    assert row.read_at is not None


def test_reading_needs_a_post(client, pull_request, alice, bob):
    (row,) = notify(REVIEW_REQUESTED, pull_request, actor=bob, recipients=[alice], text="review")
    client.force_login(alice)

    assert client.get(reverse("notifications:read", args=[row.pk])).status_code == 405
    row.refresh_from_db()
    assert row.read_at is None


def test_someone_elses_notification_is_not_found(client, pull_request, alice, bob, mallory):
    (row,) = notify(REVIEW_REQUESTED, pull_request, actor=bob, recipients=[alice], text="review")
    client.force_login(mallory)

    response = client.post(reverse("notifications:read", args=[row.pk]))

    assert response.status_code == 404
    row.refresh_from_db()
    assert row.read_at is None


def test_read_all_marks_only_my_notifications(client, pull_request, alice, bob, carol):
    notify(REVIEW_REQUESTED, pull_request, actor=bob, recipients=[alice, carol], text="review")
    notify(Notification.Kind.COMMENT, pull_request, actor=bob, recipients=[alice], text="comment")
    client.force_login(alice)

    response = client.post(reverse("notifications:read_all"))

    assert response.status_code == 302 and response.url == reverse("notifications:list")
    assert unread_count(alice) == 0
    assert unread_count(carol) == 1


def test_the_settings_page_shows_the_grid_and_saves_it(client, alice):
    client.force_login(alice)
    page = client.get(reverse("notifications:settings")).content.decode()
    assert page.count('type="checkbox"') == 2 * len(Notification.Kind.values)
    assert page.count(" checked") == 2 * len(Notification.Kind.values)

    wanted_web = [kind for kind in Notification.Kind.values if kind != "comment"]
    response = client.post(reverse("notifications:settings"), {"web": wanted_web, "email": ["merged"]})

    assert response.status_code == 302 and response.url == reverse("notifications:settings")
    preference = NotificationPreference.objects.get(user=alice)
    assert preference.web_off == ["comment"]
    assert preference.email_off == sorted(kind for kind in Notification.Kind.values if kind != "merged")
    page = client.get(reverse("notifications:settings")).content.decode()
    assert (
        'value="comment" id="web-comment" aria-label="Comments on my pull requests and threads in the portal">' in page
    )
    assert 'value="merged" id="email-merged" aria-label="Merges by email" checked>' in page


@pytest.mark.parametrize(
    ("method", "name", "args"),
    [("get", "list", []), ("get", "settings", []), ("post", "read_all", []), ("post", "read", [1])],
)
def test_anonymous_visitors_are_sent_to_sign_in(client, db, method, name, args):
    response = getattr(client, method)(reverse(f"notifications:{name}", args=args))

    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))
