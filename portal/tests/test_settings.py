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
# check rightly refuses). Without DATABASE_URL each start keeps its own SQLite database under its PORTAL_VAR_DIR.
PRODUCTION_OVERRIDES = (
    "DATABASE_URL",
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


def fresh_start_env(tmp_path) -> dict[str, str]:
    """What `make run` gets on a new machine: nothing set but where the data goes."""
    env = {name: value for name, value in os.environ.items() if name not in PRODUCTION_OVERRIDES}
    return env | {"PORTAL_VAR_DIR": str(tmp_path / "var")}


SHOW_SETTINGS = "from django.conf import settings; print(settings.DEBUG, settings.SECRET_KEY, settings.ALLOWED_HOSTS)"


def test_a_fresh_start_is_production_mode_with_a_secret_key_it_made_and_keeps(tmp_path):
    first = manage("shell", "--no-imports", "-c", SHOW_SETTINGS, env=fresh_start_env(tmp_path))
    again = manage("shell", "--no-imports", "-c", SHOW_SETTINGS, env=fresh_start_env(tmp_path))

    assert first.returncode == 0, first.stderr
    debug, key, _ = first.stdout.split(" ", 2)
    assert debug == "False"
    key_file = tmp_path / "var" / "secret_key"
    assert key_file.read_text().strip() == key
    assert len(key) >= 50
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert again.stdout == first.stdout


def test_a_secret_key_in_the_environment_wins_over_the_file(tmp_path):
    manage("check", env=fresh_start_env(tmp_path))

    result = manage(
        "shell", "--no-imports", "-c", SHOW_SETTINGS, env=fresh_start_env(tmp_path) | {"SECRET_KEY": "x" * 60}
    )

    assert result.stdout.split(" ")[1] == "x" * 60


def test_allowed_hosts_are_the_public_host_and_the_local_names(tmp_path):
    env = fresh_start_env(tmp_path) | {"PORTAL_BASE_URL": "https://git.example.com"}

    result = manage("shell", "--no-imports", "-c", SHOW_SETTINGS, env=env)

    assert result.stdout.split(" ", 2)[2].strip() == "['git.example.com', 'localhost', '127.0.0.1', '[::1]']"
    given = manage(
        "shell", "--no-imports", "-c", SHOW_SETTINGS, env=env | {"ALLOWED_HOSTS": "a.example.com,b.example.com"}
    )
    # The public host is always allowed: git's hooks name it when they call through the web process's socket.
    assert given.stdout.split(" ", 2)[2].strip() == "['a.example.com', 'b.example.com', 'git.example.com']"


def test_a_plain_http_start_fails_the_deployment_checks_only_on_what_needs_tls(tmp_path):
    result = manage("check", "--deploy", env=fresh_start_env(tmp_path))

    assert result.returncode == 0, result.stderr
    found = sorted(set(re.findall(r"\(security\.(W\d+)\)", result.stdout + result.stderr)))
    # HSTS, the redirect to https and the two secure cookies: what README's Production section sets behind TLS.
    assert found == ["W004", "W008", "W012", "W016"]


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
    # Pages, the portal's own 404 among them, read the site's settings from the database.
    assert manage("migrate", "--noinput", env=env).returncode == 0
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


SHOW_ARTIFACT_STORAGE = """
from releases.storage import artifact_storage
storage = artifact_storage()
print(type(storage).__name__, getattr(storage, "bucket_name", ""), getattr(storage, "endpoint_url", ""))
print(getattr(storage, "location", ""), getattr(storage, "addressing_style", ""), getattr(storage, "default_acl", ""))
"""


def test_artifacts_are_kept_on_the_filesystem_unless_an_s3_store_is_configured(tmp_path):
    result = manage("shell", "--no-imports", "-c", SHOW_ARTIFACT_STORAGE, env=production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split() == ["FileSystemStorage"]
    assert result.stdout.splitlines()[1].split() == [str(tmp_path / "var" / "builds" / "store")]

    s3 = production_env(
        tmp_path,
        PORTAL_ARTIFACT_STORAGE="s3",
        AWS_STORAGE_BUCKET_NAME="portal-artifacts",
        AWS_S3_ENDPOINT_URL="https://s3.internal:9000",
        AWS_S3_ADDRESSING_STYLE="path",
        AWS_LOCATION="portal",
    )
    result = manage("shell", "--no-imports", "-c", SHOW_ARTIFACT_STORAGE, env=s3)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["S3Storage portal-artifacts https://s3.internal:9000", "portal path None"]


def test_an_s3_store_without_a_bucket_or_an_unknown_store_refuses_to_start(tmp_path):
    for env, message in (
        ({"PORTAL_ARTIFACT_STORAGE": "s3"}, "PORTAL_ARTIFACT_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME."),
        ({"PORTAL_ARTIFACT_STORAGE": "ftp"}, "PORTAL_ARTIFACT_STORAGE is 'ftp'"),
    ):
        result = manage("check", env=production_env(tmp_path, **env))
        assert result.returncode != 0
        assert message in result.stderr
