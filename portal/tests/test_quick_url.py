"""{% quick_url %}: the links every page repeats, as {% url %} would write them."""

from django.urls import reverse

from portal.templatetags.urls import quick_url


def test_quick_url_gives_what_reverse_gives(db):
    for owner, name in [("alice", "tool"), ("quickurlarg1x", "evil"), ("a b", "c%d"), ("bob", "quickurlarg0x")]:
        assert quick_url("repos:detail", owner, name) == reverse("repos:detail", args=[owner, name])
        assert quick_url("browse:commits", owner, name) == reverse("browse:commits", args=[owner, name])
    assert quick_url("repos:owner", "alice") == reverse("repos:owner", args=["alice"])
    assert quick_url("account_login") == reverse("account_login")
    # A route of an app that is not there is no link, as {% url ... as var %} gives.
    assert quick_url("nowhere:list", "alice", "tool") == ""
