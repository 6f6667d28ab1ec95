"""Forms of the branch protection, approval rule and merging settings: they shape input; the services decide."""

import re

from django import forms

from portal.models import Team, User
from reviews.models import ApprovalRule, BranchProtection, MergeStrategy, ReviewSettings

PATTERN_HELP = "An fnmatch pattern: main, release/*, or * for every branch."
TEAMS_HELP = "Teams of {owner}. Leave users and teams empty to allow everyone with write access."


def _branch_pattern(value: str) -> str:
    value = value.strip()
    # Branch names never contain whitespace, so "main, release/*" would silently match nothing.
    if re.search(r"\s", value):
        raise forms.ValidationError(
            "A pattern cannot contain spaces. Use one pattern here, and add another for the rest."
        )
    return value


class UsernamesField(forms.CharField):
    """Usernames separated by commas or spaces, cleaned to the active people they name."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.TextInput(attrs={"placeholder": "alice, bob"}))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(user.username for user in value)
        return value

    def clean(self, value) -> list[User]:
        text = super().clean(value) or ""
        users, unknown = User.objects.named(re.split(r"[\s,]+", text))
        if unknown:
            label = "user" if len(unknown) == 1 else "users"
            raise forms.ValidationError(f"There is no active {label} named {', '.join(unknown)}.")
        return users


def _teams_field(label: str) -> forms.ModelMultipleChoiceField:
    return forms.ModelMultipleChoiceField(
        queryset=Team.objects.none(), required=False, label=label, widget=forms.CheckboxSelectMultiple
    )


def _offer_teams(form: forms.Form, owner: User, names: list[str]) -> None:
    """Offer the owning organization's teams; a personal account has none, so its forms have no team fields."""
    for name in names:
        if owner.is_organization:
            form.fields[name].queryset = Team.objects.filter(organization=owner).order_by("name")
            form.fields[name].help_text = TEAMS_HELP.format(owner=owner.username)
        else:
            del form.fields[name]


class BranchProtectionForm(forms.Form):
    branch_pattern = forms.CharField(max_length=255, help_text=PATTERN_HELP)
    require_pull_request = forms.BooleanField(
        required=False,
        initial=True,
        label="Require a pull request before merging",
        help_text="Nobody pushes to matching branches directly; changes land by merging a pull request.",
    )
    required_checks = forms.CharField(
        required=False,
        label="Required status checks",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "ci/build\nlint"}),
        help_text="One check context per line. A pull request merges only when each has succeeded on its head.",
    )
    require_up_to_date = forms.BooleanField(
        required=False,
        label="Require the branch to be up to date before merging",
        help_text="The head branch must contain the latest commit of the base branch, so checks ran on what merges.",
    )
    block_force_push = forms.BooleanField(
        required=False,
        initial=True,
        label="Block force pushes",
        help_text="Nobody may rewrite the history of matching branches.",
    )
    block_deletion = forms.BooleanField(
        required=False, initial=True, label="Block deletion", help_text="Nobody may delete matching branches."
    )
    push_users = UsernamesField(label="Users who may push")
    push_teams = _teams_field("Teams who may push")
    merge_users = UsernamesField(label="Users who may merge")
    merge_teams = _teams_field("Teams who may merge")
    required_approvals = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=50,
        initial=0,
        label="Require approvals",
        help_text="How many approvals of its current code a pull request into matching branches needs; 0 for none.",
    )
    approval_users = UsernamesField(
        label="Approvers",
        help_text="Whose approvals count. Leave approvers and teams empty to count anyone with write access.",
    )
    approval_teams = _teams_field("Approver teams")
    dismiss_stale_approvals = forms.BooleanField(
        required=False,
        initial=True,
        label="Dismiss approvals when new code is pushed",
        help_text="Off: approvals of older code stay on the page, marked stale. Either way they do not count; "
        "a rebase that keeps the change keeps its approvals.",
    )
    block_on_rejected_reviews = forms.BooleanField(
        required=False,
        initial=True,
        label="Block merging while a reviewer requests changes",
        help_text="Off: a change request no longer stops pull requests into matching branches.",
    )
    block_on_official_review_requests = forms.BooleanField(
        required=False,
        label="Block merging while a requested review is unanswered",
        help_text="Every user or team asked to review must have reviewed first.",
    )
    block_admin_merge_override = forms.BooleanField(
        required=False,
        label="Do not let admins override the approval rules",
        help_text="Pull requests into matching branches merge only with their approvals, whoever merges.",
    )

    def __init__(self, *args, owner: User, protection: BranchProtection | None = None, **kwargs):
        self.protection = protection
        if protection is not None:
            rule = ApprovalRule.objects.filter(branch_protection=protection).first()
            kwargs.setdefault(
                "initial",
                {
                    "branch_pattern": protection.branch_pattern,
                    "require_pull_request": protection.require_pull_request,
                    "required_checks": "\n".join(protection.required_checks),
                    "require_up_to_date": protection.require_up_to_date,
                    "block_force_push": protection.block_force_push,
                    "block_deletion": protection.block_deletion,
                    "push_users": list(protection.push_users.order_by("username")),
                    "push_teams": list(protection.push_teams.all()),
                    "merge_users": list(protection.merge_users.order_by("username")),
                    "merge_teams": list(protection.merge_teams.all()),
                    "required_approvals": rule.required_approvals if rule else 0,
                    "approval_users": list(rule.users.order_by("username")) if rule else [],
                    "approval_teams": list(rule.teams.all()) if rule else [],
                    "dismiss_stale_approvals": protection.dismiss_stale_approvals,
                    "block_on_rejected_reviews": protection.block_on_rejected_reviews,
                    "block_on_official_review_requests": protection.block_on_official_review_requests,
                    "block_admin_merge_override": protection.block_admin_merge_override,
                },
            )
        super().__init__(*args, **kwargs)
        _offer_teams(self, owner, ["push_teams", "merge_teams", "approval_teams"])
        if "approval_teams" in self.fields:
            self.fields["approval_teams"].help_text = f"Teams of {owner.username} whose members' approvals count."

    def clean_required_approvals(self) -> int:
        return self.cleaned_data["required_approvals"] or 0

    def clean(self) -> dict:
        cleaned = super().clean()
        # Approvals of older code never count, so without dismissal they are kept on the page and ignored; with it,
        # Gitea's ignore flag means nothing and keeps what the API was last told.
        if not cleaned.get("dismiss_stale_approvals", True):
            cleaned["ignore_stale_approvals"] = True
        else:
            cleaned["ignore_stale_approvals"] = bool(self.protection and self.protection.ignore_stale_approvals)
        return cleaned

    def clean_branch_pattern(self) -> str:
        return _branch_pattern(self.cleaned_data["branch_pattern"])

    def clean_required_checks(self) -> list[str]:
        lines = (line.strip() for line in self.cleaned_data["required_checks"].splitlines())
        return list(dict.fromkeys(line for line in lines if line))


class ApprovalRuleForm(forms.Form):
    name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"placeholder": "Code owners"}))
    branch_pattern = forms.CharField(
        max_length=255,
        initial="*",
        help_text="The base branches of the pull requests this rule applies to. " + PATTERN_HELP,
    )
    repository_pattern = forms.CharField(
        max_length=100,
        initial="*",
        label="Repository pattern",
        help_text="Which of the organization's repositories the rule applies to, as an fnmatch pattern: * for all.",
    )
    required_approvals = forms.IntegerField(
        min_value=1, max_value=50, initial=1, label="Required approvals", help_text="From 1 to 50."
    )
    users = UsernamesField(
        label="Approvers",
        help_text="Whose approvals count. Leave approvers and teams empty to count anyone with write access.",
    )
    teams = _teams_field("Approver teams")
    exclude_committers = forms.BooleanField(
        required=False,
        label="Exclude anyone who committed to the pull request",
        help_text="Their approvals do not count toward this rule. The author's never do.",
    )
    dismissal = forms.ChoiceField(
        choices=ApprovalRule.Dismissal.choices,
        initial=ApprovalRule.Dismissal.NEW_CODE,
        widget=forms.RadioSelect,
        label="Dismiss approvals",
    )

    def __init__(self, *args, owner: User, template: bool = False, rule: ApprovalRule | None = None, **kwargs):
        if rule is not None:
            kwargs.setdefault(
                "initial",
                {
                    "name": rule.name,
                    "branch_pattern": rule.branch_pattern,
                    "repository_pattern": rule.repository_pattern,
                    "required_approvals": rule.required_approvals,
                    "users": list(rule.users.order_by("username")),
                    "teams": list(rule.teams.all()),
                    "exclude_committers": rule.exclude_committers,
                    "dismissal": rule.dismissal,
                },
            )
        super().__init__(*args, **kwargs)
        if not template:
            del self.fields["repository_pattern"]
        _offer_teams(self, owner, ["teams"])
        if "teams" in self.fields:
            self.fields["teams"].help_text = f"Teams of {owner.username} whose members' approvals count."

    def clean_branch_pattern(self) -> str:
        return _branch_pattern(self.cleaned_data["branch_pattern"])

    def clean_repository_pattern(self) -> str:
        return _branch_pattern(self.cleaned_data["repository_pattern"])


class MergingForm(forms.Form):
    allow_merge = forms.BooleanField(
        required=False, label=MergeStrategy.MERGE.label, help_text="All commits of the head, joined by a merge commit."
    )
    allow_squash = forms.BooleanField(
        required=False, label=MergeStrategy.SQUASH.label, help_text="The whole change as one new commit on the base."
    )
    allow_rebase = forms.BooleanField(
        required=False,
        label=MergeStrategy.REBASE.label,
        help_text="Each commit of the head replayed on the base, without a merge commit.",
    )
    allow_fast_forward = forms.BooleanField(
        required=False,
        label=MergeStrategy.FAST_FORWARD.label,
        help_text="The base moves to the head as it is; only when the head already contains the base.",
    )
    distinct_approvers = forms.BooleanField(
        required=False,
        label="An approver counts toward only one rule",
        help_text="Off: one approval counts toward every rule whose approvers include its author. "
        "On: two rules needing one approval each need two different people.",
    )
    delete_branch_after_merge = forms.BooleanField(
        required=False,
        label="Delete the head branch after merge by default",
        help_text="After a merge the head branch is deleted, unless whoever merges chooses to keep it.",
    )

    def __init__(self, *args, settings: ReviewSettings, **kwargs):
        kwargs.setdefault("initial", {name: getattr(settings, name) for name in self.base_fields})
        super().__init__(*args, **kwargs)
