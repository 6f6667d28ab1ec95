"""Forms of the pull request pages: they shape input; the services decide and validate for good."""

import re

from django import forms
from django.core.exceptions import ValidationError

from portal.models import Team, User
from repos import git
from repos.models import Repository
from reviews.models import Comment, MergeStrategy

_NAMES = re.compile(r"[\s,]+")
EVENT_CHOICES = [
    ("COMMENT", "Comment"),
    ("APPROVE", "Approve"),
    ("REQUEST_CHANGES", "Request changes"),
]


class ShaField(forms.CharField):
    """A full commit id, as git writes it."""

    default_error_messages = {"invalid": "Enter a full commit id."}

    def validate(self, value: str) -> None:
        super().validate(value)
        if value and not git.is_sha(value):
            raise ValidationError(self.error_messages["invalid"], code="invalid")


def _names(value: str) -> list[str]:
    return [name.lstrip("@") for name in _NAMES.split(value.strip()) if name.lstrip("@")]


def people_named(value: str) -> list[User]:
    """The active people among space- or comma-separated usernames; ValidationError naming the unknown ones."""
    users, unknown = User.objects.named(_names(value))
    if unknown:
        raise forms.ValidationError(f"There is no user named {unknown[0]}.")
    return users


def teams_named(value: str, repo: Repository) -> list[Team]:
    """Teams of the repository's organization, by name; ValidationError naming the unknown ones."""
    wanted = _names(value)
    if not wanted:
        return []
    if not repo.owner.is_organization:
        raise forms.ValidationError(f"{repo.owner.username} is not an organization, so it has no teams.")
    teams = []
    for name in wanted:
        team = Team.objects.filter(organization=repo.owner, name__iexact=name.split("/")[-1]).first()
        if team is None:
            raise forms.ValidationError(f"{repo.owner.username} has no team named {name}.")
        teams.append(team)
    return teams


class NewPullRequestForm(forms.Form):
    base = forms.ChoiceField()
    head = forms.ChoiceField()
    title = forms.CharField(max_length=255)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 8}))
    draft = forms.BooleanField(required=False, label="Open as a draft")
    reviewers = forms.CharField(required=False, help_text="Usernames, separated by spaces or commas.")
    teams = forms.CharField(required=False, help_text="Team names of the organization.")

    def __init__(self, *args, repo: Repository, branch_names: list[str], **kwargs):
        super().__init__(*args, label_suffix="", **kwargs)
        self.repo = repo
        choices = [(name, name) for name in branch_names]
        self.fields["base"].choices = choices
        self.fields["head"].choices = choices

    def clean_reviewers(self) -> list[User]:
        return people_named(self.cleaned_data["reviewers"])

    def clean_teams(self) -> list[Team]:
        return teams_named(self.cleaned_data["teams"], self.repo)


class EditForm(forms.Form):
    """Only the fields a form sends change: a title edit leaves the description alone."""

    title = forms.CharField(max_length=255, required=False)
    description = forms.CharField(required=False)
    base = forms.CharField(max_length=255, required=False)
    draft = forms.ChoiceField(choices=[("", ""), ("1", "draft"), ("0", "ready")], required=False)

    def changes(self) -> dict:
        data = self.cleaned_data
        changes = {name: data[name] for name in ("title", "description", "base") if name in self.data}
        if data.get("draft"):
            changes["draft"] = data["draft"] == "1"
        return changes


class ReviewersForm(forms.Form):
    users = forms.CharField(required=False)
    teams = forms.CharField(required=False)
    remove_user = forms.CharField(required=False)
    remove_team = forms.CharField(required=False)

    def __init__(self, *args, repo: Repository, **kwargs):
        super().__init__(*args, **kwargs)
        self.repo = repo

    def clean_users(self) -> list[User]:
        return people_named(self.cleaned_data["users"])

    def clean_teams(self) -> list[Team]:
        return teams_named(self.cleaned_data["teams"], self.repo)

    def clean_remove_user(self) -> User | None:
        found = people_named(self.cleaned_data["remove_user"])
        return found[0] if found else None

    def clean_remove_team(self) -> Team | None:
        found = teams_named(self.cleaned_data["remove_team"], self.repo)
        return found[0] if found else None


class CommentForm(forms.Form):
    body = forms.CharField()
    path = forms.CharField(required=False, max_length=4096, strip=False)
    side = forms.ChoiceField(choices=Comment.Side.choices, required=False)
    line = forms.IntegerField(required=False, min_value=1)
    start_line = forms.IntegerField(required=False, min_value=1)
    commit_sha = ShaField(required=False)
    reply_to = forms.IntegerField(required=False, min_value=1)
    pending = forms.BooleanField(required=False)


class BodyForm(forms.Form):
    body = forms.CharField()


class SuggestionForm(forms.Form):
    """The commit a suggestion becomes: a summary line and an optional description, as typed."""

    summary = forms.CharField(max_length=500, required=False)
    description = forms.CharField(required=False, strip=False)

    def message(self) -> str:
        summary, description = self.cleaned_data["summary"].strip(), self.cleaned_data["description"].strip()
        return f"{summary}\n\n{description}" if summary and description else summary or description


class ReviewForm(forms.Form):
    event = forms.ChoiceField(choices=EVENT_CHOICES)
    body = forms.CharField(required=False)
    commit_sha = ShaField(required=False)


class MergeForm(forms.Form):
    strategy = forms.ChoiceField(choices=MergeStrategy.choices)
    head_sha = ShaField()
    message = forms.CharField(required=False)
    delete_branch = forms.BooleanField(required=False)


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500)
