"""Production mode: it refuses to start half-configured, and passes Django's deployment checks when configured."""

import os
import re
import secrets
import subprocess
import sys

from django.conf import settings


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# Settings this test decides, and what browser tests may have exported into this process (which a deployment
# check rightly refuses).
PRODUCTION_OVERRIDES = (
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "PORTAL_BASE_URL",
    "DEBUG",
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
)


def production_env(tmp_path, **overrides: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in PRODUCTION_OVERRIDES}
    env.update(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="git.example.com",
        PORTAL_BASE_URL="https://git.example.com",
        PORTAL_VAR_DIR=str(tmp_path / "var"),
    )
    env.update(overrides)
    return {name: value for name, value in env.items() if value is not None}


def test_production_mode_refuses_to_start_without_a_secret_key(tmp_path):
    env = production_env(tmp_path)
    del env["SECRET_KEY"]

    result = manage("check", env=env)

    assert result.returncode != 0
    assert "DEBUG is off (production mode), so SECRET_KEY must be set in the environment" in result.stderr


def test_production_mode_refuses_to_start_without_allowed_hosts(tmp_path):
    env = production_env(tmp_path, ALLOWED_HOSTS="")

    result = manage("check", env=env)

    assert result.returncode != 0
    assert "so ALLOWED_HOSTS must be set" in result.stderr


def test_production_mode_names_every_missing_setting(tmp_path):
    env = production_env(tmp_path, ALLOWED_HOSTS="", SECRET_KEY="")

    result = manage("check", env=env)

    assert result.returncode != 0
    assert "so SECRET_KEY and ALLOWED_HOSTS must be set" in result.stderr


def test_a_configured_production_setup_passes_the_deployment_checks(tmp_path):
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(tmp_path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_deployment_checks_catch_a_weak_secret_key(tmp_path):
    # The checks are live: a short key is a warning, and warnings fail the deployment check.
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(tmp_path, SECRET_KEY="short"))

    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr


def test_development_mode_needs_no_configuration(tmp_path):
    env = production_env(tmp_path, DEBUG="1")
    for name in ("SECRET_KEY", "ALLOWED_HOSTS", "PORTAL_BASE_URL"):
        del env[name]

    result = manage("check", env=env)

    assert result.returncode == 0, result.stderr


def test_env_example_lists_every_setting_read_from_the_environment():
    source = (settings.BASE_DIR / "portal" / "settings.py").read_text()
    read = set(re.findall(r"(?:env(?:bool|int|list|path)|os\.environ\.get)\(\s*\"([A-Z0-9_]+)\"", source))
    listed = set(re.findall(r"^#?([A-Z0-9_]+)=", (settings.BASE_DIR / ".env.example").read_text(), re.MULTILINE))

    assert {"DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL"} <= read
    assert read - listed == set(), "settings.py reads these, but .env.example does not list them"


HOOK_CALL = """
import os
from django.test import Client
client = Client()
host, remote_addr = os.environ["TEST_HOOK_HOST"], os.environ["TEST_HOOK_REMOTE_ADDR"]
hook = client.post(
    "/-/internal/hooks/pre-receive", data=b"not json", content_type="application/json", HTTP_HOST=host,
    REMOTE_ADDR=remote_addr,
)
print("hook", hook.status_code, hook.content.decode())
page = client.get("/", HTTP_HOST="git.example.com")
print("page", page.status_code, page.get("Location"))
"""


def hook_call(env: dict[str, str], host: str, remote_addr: str) -> str:
    result = manage("shell", "-c", HOOK_CALL, env=env | {"TEST_HOOK_HOST": host, "TEST_HOOK_REMOTE_ADDR": remote_addr})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_production_mode_answers_the_hooks_through_the_socket_only(tmp_path):
    # Through gunicorn's unix socket (REMOTE_ADDR ''), the hooks name the public host over plain HTTP: neither
    # refused nor redirected to HTTPS, or every push would be refused.
    output = hook_call(production_env(tmp_path), "git.example.com", "")
    assert "hook 400 " in output and "the hook did not send JSON" in output, output
    # Everything else is still sent to HTTPS.
    assert "page 301 https://git.example.com/" in output
    # Over TCP the endpoint does not exist.
    assert "hook 404 " in hook_call(production_env(tmp_path), "git.example.com", "127.0.0.1")


def test_production_mode_answers_the_hooks_on_an_explicit_internal_url(tmp_path):
    # Several nodes: the hooks call the web process over TCP on PORTAL_INTERNAL_URL, whose host is allowed.
    env = production_env(tmp_path, PORTAL_INTERNAL_URL="http://10.0.0.5:8000")
    output = hook_call(env, "10.0.0.5:8000", "10.0.0.7")
    assert "hook 400 " in output and "the hook did not send JSON" in output, output
