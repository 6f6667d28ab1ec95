"""Forms of the environment settings: they shape input into what releases.environments.set_environment takes;
the service decides and refuses field by field."""

import json
import re

from django import forms

from portal.models import Team, User
from releases import batches
from releases.models import Environment, EnvironmentTarget
from repos.models import Repository

CONFIG_CHOICES = [
    *((name, name) for name in batches.PREDEFINED),
    ("HOST_COUNT", "Minimum healthy hosts: a number of hosts"),
    ("FLEET_PERCENT", "Minimum healthy hosts: a percentage of hosts"),
]
TARGET_FIELDS = ("name", "type", "host", "port", "user", "host_key", "health_check")
# Blank target rows offered below the environment's targets.
NEW_TARGET_ROWS = 2


class NewEnvironmentForm(forms.Form):
    name = forms.CharField(
        max_length=100, label="Name", help_text="Such as dev, uat or prod: letters, digits, dots, dashes."
    )


class EnvironmentForm(forms.Form):
    config = forms.ChoiceField(choices=CONFIG_CHOICES, label="Deployment configuration")
    config_value = forms.IntegerField(
        required=False,
        label="Minimum healthy hosts",
        help_text="For a minimum of healthy hosts only: how many hosts, or what percentage of them, stay healthy.",
    )
    reviewers = forms.CharField(
        required=False,
        max_length=2000,
        label="Reviewers",
        help_text="Usernames and team names (of this repository's organization, or organization/team), separated by "
        "commas or spaces. A deployment waits for their approval.",
    )
    required_approvals = forms.IntegerField(
        required=False, min_value=0, label="Approvals required", help_text="How many of the reviewers must approve."
    )
    prevent_self_review = forms.BooleanField(
        required=False, label="The person who requested a deployment may not approve it"
    )
    default_branch = forms.BooleanField(required=False, label="The default branch may deploy")
    protected_branches = forms.BooleanField(required=False, label="Protected branches may deploy")
    patterns = forms.CharField(
        required=False,
        label="Ref patterns",
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "placeholder": "branch:release/*\ntag:v*"}),
        help_text="One a line: branch:…, tag:… or pull:… with a glob. With no rule chosen, any branch, tag or commit "
        "deploys, but no pull request.",
    )
    wait_timer = forms.IntegerField(
        required=False, min_value=0, label="Wait timer (minutes)", help_text="A deployment waits this long first."
    )
    freeze_windows = forms.CharField(
        required=False,
        label="Change-freeze windows",
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text='A JSON list: dated windows {"start": "2026-12-24T00:00", "end": "2027-01-04T08:00", "timezone": '
        '"Europe/Paris"} or repeating ones {"cron": "0 18 * * 5", "duration_minutes": 3840, "timezone": "UTC"}, '
        'each with an optional "name".',
    )

    def clean_patterns(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["patterns"].splitlines() if line.strip()]

    def clean_freeze_windows(self) -> list:
        text = self.cleaned_data["freeze_windows"].strip()
        if not text:
            return []
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(f"Line {error.lineno}, column {error.colno}: {error.msg}.") from None


def initial_of(environment: Environment) -> dict:
    config = environment.deployment_config
    predefined = config.get("name") in batches.PREDEFINED
    policy = environment.ref_policy
    return {
        "config": config.get("name") if predefined else config.get("type"),
        "config_value": None if predefined else config.get("value"),
        "reviewers": " ".join(reviewer_names(environment)),
        "required_approvals": environment.required_approvals,
        "prevent_self_review": environment.prevent_self_review,
        "default_branch": policy.get("default_branch", False),
        "protected_branches": policy.get("protected_branches", False),
        "patterns": "\n".join(policy.get("patterns", [])),
        "wait_timer": environment.wait_timer,
        "freeze_windows": json.dumps(environment.freeze_windows, indent=2) if environment.freeze_windows else "",
    }


def reviewer_names(environment: Environment) -> list[str]:
    owner = environment.repository.owner_id
    names = [user.username for user in environment.reviewer_users.all()]
    for team in environment.reviewer_teams.select_related("organization"):
        names.append(team.name if team.organization_id == owner else f"{team.organization.username}/{team.name}")
    return names


def deployment_config(data: dict) -> object:
    """The form's configuration as set_environment takes it: a predefined name or {type, value}."""
    if data["config"] in batches.PREDEFINED:
        return data["config"]
    return {"type": data["config"], "value": data["config_value"]}


def reviewers(text: str, repository: Repository) -> list[dict]:
    """Names as GitHub's reviewers [{type, id}]: a username, a team of the repository's organization, or
    organization/team; a name that is neither raises a ValidationError naming it."""
    found = []
    for name in (part for part in re.split(r"[\s,]+", text) if part):
        if "/" in name:
            organization, _, team_name = name.partition("/")
            team = Team.objects.filter(organization__username__iexact=organization, name__iexact=team_name).first()
        else:
            team = None
            user = User.objects.filter(username__iexact=name, is_active=True, is_organization=False).first()
            if user is not None:
                found.append({"type": "User", "id": user.pk})
                continue
            if repository.owner.is_organization:
                team = Team.objects.filter(organization=repository.owner, name__iexact=name).first()
        if team is None:
            raise forms.ValidationError(f"There is no user or team named {name}.")
        found.append({"type": "Team", "id": team.pk})
    return found


def target_rows(environment: Environment) -> list[dict]:
    """The environment's targets as rows of the form, then blank rows for new ones."""
    rows = []
    for target in environment.targets.all():
        rows.append(
            {
                "name": target.name,
                "type": target.kind,
                "host": target.host,
                "port": "" if target.port is None else str(target.port),
                "user": target.user,
                "host_key": target.host_key,
                "health_check": target.health_command or target.health_url,
                "deploy_key": target.deploy_key_public,
                "errors": {},
            }
        )
    return rows + [blank_row() for _ in range(NEW_TARGET_ROWS)]


def blank_row() -> dict:
    return {key: "" for key in TARGET_FIELDS} | {"type": EnvironmentTarget.Kind.LOCAL, "deploy_key": "", "errors": {}}


def posted_rows(post, environment: Environment) -> list[dict]:
    """The target rows as posted (target-N-name, …), with the deploy key of a target that keeps its name."""
    keys = {target.name.lower(): target.deploy_key_public for target in environment.targets.all()}
    try:
        count = min(int(post.get("target_count", "0")), 500)
    except ValueError:
        count = 0
    rows = []
    for index in range(count):
        row = {key: post.get(f"target-{index}-{key}", "").strip() for key in TARGET_FIELDS}
        row["host_key"] = post.get(f"target-{index}-host_key", "").strip()
        row["type"] = row["type"] or EnvironmentTarget.Kind.LOCAL
        row["deploy_key"] = keys.get(row["name"].lower(), "") if row["type"] == EnvironmentTarget.Kind.SSH else ""
        row["errors"] = {}
        rows.append(row)
    return rows


def targets_of(rows: list[dict]) -> tuple[list[dict], list[int]]:
    """The filled rows as set_environment's targets, and the row each came from (for its errors); a port that is
    not a number is the row's own error."""
    targets, origins = [], []
    for index, row in enumerate(rows):
        if not any(row[key] for key in TARGET_FIELDS if key != "type"):
            continue
        target = {"name": row["name"], "type": row["type"]}
        if row["health_check"]:
            target["health_check"] = row["health_check"]
        if row["type"] == EnvironmentTarget.Kind.SSH or any(row[key] for key in ("host", "port", "user", "host_key")):
            port = row["port"]
            if port and not port.isdigit():
                row["errors"]["port"] = "A port is a number from 1 to 65535."
            target |= {"host": row["host"], "port": int(port) if port.isdigit() else None}
            target |= {"user": row["user"], "host_key": row["host_key"]}
        targets.append(target)
        origins.append(index)
    return targets, origins
