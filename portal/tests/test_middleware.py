"""The Content-Security-Policy middleware: django-csp's policy, built once."""

import pytest
from csp.utils import build_policy
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.test import Client

from portal.middleware import ContentSecurityPolicy


def test_a_page_gets_the_policy_the_settings_describe(db):
    response = Client().get("/")
    assert response["Content-Security-Policy"] == build_policy()
    assert "default-src 'self'" in response["Content-Security-Policy"]


def test_a_policy_a_view_set_itself_is_kept(rf):
    middleware = ContentSecurityPolicy(lambda request: HttpResponse(headers={"Content-Security-Policy": "sandbox"}))
    assert middleware(rf.get("/"))["Content-Security-Policy"] == "sandbox"


def test_a_report_only_policy_is_refused_rather_than_left_out(settings):
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = {"DIRECTIVES": {"default-src": ["'self'"]}}
    with pytest.raises(ImproperlyConfigured):
        ContentSecurityPolicy(lambda request: HttpResponse())


def test_a_page_whose_address_holds_a_nul_byte_is_not_found(client, alice):
    # The owner's page and a query's value reached PostgreSQL, which refused the NUL (500).
    for path in ("/alice%00", "/alice%00/", "/alice?tab=x%00", "/-/nowhere%00"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response["X-Frame-Options"] == "DENY"
    assert client.get("/alice").status_code == 200
