"""Outbound requests reach public receivers and never the portal's own network, unless the site allows it.

Connections go only to receivers on the loopback; private, link-local and metadata addresses are tested on the
address check alone.
"""

import ipaddress

import pytest

from portal.outbound import MAX_RESPONSE_BYTES, Allowed, OutboundRefused, address_blocker, checked_addresses, post


@pytest.fixture
def only_127_0_0_1(settings):
    settings.PORTAL_WEBHOOK_ALLOWED_HOSTS = "127.0.0.1"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.10.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "metadata"),
        ("fc00::1", "private"),
        ("127.0.0.2", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "metadata"),
        ("100.64.0.1", "private or reserved"),
        ("224.0.0.1", "multicast"),
    ],
)
def test_the_address_check_refuses_what_is_not_public(address, reason):
    assert reason in address_blocker(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"])
def test_the_address_check_lets_public_addresses_through(address):
    assert address_blocker(ipaddress.ip_address(address)) is None


def test_the_site_allows_names_and_networks():
    allowed = Allowed.parse("ci.internal, 10.1.0.0/16 ,127.0.0.1,")
    assert allowed.admits("CI.internal.", ipaddress.ip_address("10.9.9.9"))
    assert allowed.admits("anything", ipaddress.ip_address("10.1.2.3"))
    assert allowed.admits("localhost", ipaddress.ip_address("127.0.0.1"))
    assert not allowed.admits("anything", ipaddress.ip_address("10.2.0.1"))
    assert not allowed.admits("localhost", ipaddress.ip_address("127.0.0.2"))
    # Resolution is checked too: localhost resolves to the loopback, refused unless allowed.
    with pytest.raises(OutboundRefused, match="loopback"):
        checked_addresses("localhost", 80, Allowed())


def test_an_allowed_receiver_gets_the_request(receivers, only_127_0_0_1):
    receiver = receivers("127.0.0.1", status=202, body=b"thanks", headers={"X-Receiver": "yes"})
    answer = post(receiver.url, b'{"ref": "main"}', {"Content-Type": "application/json", "X-Gitea-Event": "push"})
    assert (answer.status, answer.body, answer.headers["X-Receiver"]) == (202, b"thanks", "yes")
    assert receiver.requests == [("POST", "/hook", b'{"ref": "main"}')]
    assert answer.duration > 0


@pytest.mark.parametrize("host", ["127.0.0.2", "::1"])
def test_receivers_outside_what_the_site_allows_get_nothing(receivers, only_127_0_0_1, host):
    receiver = receivers(host)
    with pytest.raises(OutboundRefused, match="loopback address; the site allows it with PORTAL_WEBHOOK_ALLOWED_HOSTS"):
        post(receiver.url, b"{}", {})
    assert receiver.requests == []


def test_a_redirect_to_another_host_is_not_followed(receivers, only_127_0_0_1):
    inside = receivers("127.0.0.2")
    allowed = receivers("127.0.0.1", status=307, headers={"Location": inside.url})
    with pytest.raises(OutboundRefused, match=r"redirected to another host \(127.0.0.2\)"):
        post(allowed.url, b"{}", {})
    assert len(allowed.requests) == 1
    assert inside.requests == []


def test_a_redirect_within_the_host_is_checked_and_followed(receivers, only_127_0_0_1):
    receiver = receivers("127.0.0.1")
    mover = receivers("127.0.0.1", status=308, headers={"Location": receiver.url + "?moved=1"})
    answer = post(mover.url, b"payload", {})
    assert answer.status == 200
    assert answer.redirects == [receiver.url + "?moved=1"]
    assert receiver.requests == [("POST", "/hook?moved=1", b"payload")]


def test_the_answer_is_read_only_up_to_the_limit(receivers, only_127_0_0_1):
    receiver = receivers("127.0.0.1", body=b"x" * (MAX_RESPONSE_BYTES * 3))
    assert len(post(receiver.url, b"{}", {}).body) == MAX_RESPONSE_BYTES


def test_a_slow_receiver_times_out(receivers, only_127_0_0_1):
    receiver = receivers("127.0.0.1", delay=2)
    with pytest.raises(TimeoutError):
        post(receiver.url, b"{}", {}, timeout=0.5)


@pytest.mark.parametrize(
    ("url", "reason"),
    [("ftp://127.0.0.1/x", "not an http"), ("http://user:pw@127.0.0.1/x", "credentials"), ("http:///x", "not an http")],
)
def test_urls_it_will_not_use(only_127_0_0_1, url, reason):
    with pytest.raises(OutboundRefused, match=reason):
        post(url, b"{}", {})
