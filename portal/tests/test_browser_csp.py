"""The Content-Security-Policy in a real browser: our pages run under it, and it stops injected code."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_api_docs_and_account_pages_run_under_the_policy(sign_in_page, alice):
    # new_page fails the test if Chromium reports anything the policy blocked on these pages.
    page = sign_in_page(alice)
    page.goto("/api/v1/docs")
    page.wait_for_selector(".swagger-ui .opblock")
    for url in ("/settings/keys", "/accounts/email/", "/accounts/2fa/", "/notifications/"):
        assert page.goto(url).ok, url


def test_it_blocks_a_script_injected_into_a_page(browser, live_server):
    context = browser.new_context(base_url=live_server.url)
    reports = []
    context.on("console", lambda message: reports.append(message.text))
    page = context.new_page()
    page.goto("/")
    page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.injected = true";
            document.head.appendChild(script);
        }"""
    )
    page.wait_for_timeout(200)
    assert page.evaluate("() => window.injected") is None
    assert any("Content Security Policy" in text for text in reports), reports
    context.close()
