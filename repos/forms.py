"""Forms of the repository pages: they shape input; the services decide and validate for good."""

from django import forms

from portal.forms import PublicKeyTextarea
from portal.models import Team, User
from portal.validators import validate_owner_name, validate_repo_name
from repos import templates
from repos.models import Repository, Role, Visibility

ROLE_CHOICES = [(role.label, role.label.capitalize()) for role in Role]

VISIBILITY_HELP = {
    Visibility.PRIVATE: "Only you, collaborators and teams you choose can see it.",
    Visibility.INTERNAL: "Every signed-in user can see and clone it.",
    Visibility.PUBLIC: "Anyone, signed in or not, can see and clone it.",
}


class NewRepositoryForm(forms.Form):
    owner = forms.ChoiceField()
    name = forms.CharField(max_length=100, validators=[validate_repo_name])
    description = forms.CharField(max_length=500, required=False)
    visibility = forms.ChoiceField(choices=Visibility.choices, initial=Visibility.PRIVATE, widget=forms.RadioSelect)
    default_branch = forms.CharField(max_length=255, initial="main")
    initialize = forms.BooleanField(required=False, label="Initialize this repository with a README")
    template = forms.ChoiceField(required=False, label="Template", widget=forms.RadioSelect)

    def __init__(self, *args, owners: list[User], **kwargs):
        super().__init__(*args, **kwargs)
        self.owners = {owner.username: owner for owner in owners}
        self.fields["owner"].choices = [(name, name) for name in self.owners]
        # The templates other apps registered (repos.templates); without any, the form has no choice to offer.
        self.templates = {template.key: template for template in templates.registered()}
        if self.templates:
            self.fields["template"].choices = [
                ("", "None: an empty repository, or one with a README as asked above")
            ] + [(key, template.label) for key, template in self.templates.items()]
            self.fields["template"].initial = ""
        else:
            del self.fields["template"]

    @property
    def template_help(self) -> dict[str, str]:
        """What each template makes, shown beside its choice."""
        return {key: template.description for key, template in self.templates.items()}

    def clean_owner(self) -> User:
        return self.owners[self.cleaned_data["owner"]]

    def clean_template(self) -> templates.RepositoryTemplate | None:
        return self.templates.get(self.cleaned_data.get("template") or "")


class RepositorySettingsForm(forms.Form):
    description = forms.CharField(max_length=500, required=False)
    default_branch = forms.ChoiceField()
    visibility = forms.ChoiceField(choices=Visibility.choices, widget=forms.RadioSelect)

    def __init__(self, *args, repo: Repository, branch_names: list[str], **kwargs):
        kwargs.setdefault(
            "initial",
            {"description": repo.description, "default_branch": repo.default_branch, "visibility": repo.visibility},
        )
        super().__init__(*args, **kwargs)
        # An empty repository has no branches yet: its default branch is the one the first push should create.
        names = branch_names or [repo.default_branch]
        self.fields["default_branch"].choices = [(name, name) for name in names]


class RenameForm(forms.Form):
    name = forms.CharField(max_length=100, label="New name", validators=[validate_repo_name])


class TransferForm(forms.Form):
    new_owner = forms.CharField(max_length=40, label="New owner")

    def clean_new_owner(self) -> User:
        name = self.cleaned_data["new_owner"].strip()
        owner = User.objects.filter(username__iexact=name, is_active=True).first()
        if owner is None:
            raise forms.ValidationError(f"There is no user or organization named {name!r}.")
        return owner


class DeleteForm(forms.Form):
    confirm = forms.CharField(max_length=200, label="Type the full name of the repository to confirm")


class CollaboratorForm(forms.Form):
    username = forms.CharField(max_length=40, validators=[validate_owner_name])
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=Role.WRITE.label)

    def clean_username(self) -> User:
        name = self.cleaned_data["username"]
        user = User.objects.people().filter(username__iexact=name, is_active=True).first()
        if user is None:
            raise forms.ValidationError(f"There is no active user named {name!r}.")
        return user

    def clean_role(self) -> Role:
        return Role.from_name(self.cleaned_data["role"])


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES)

    def clean_role(self) -> Role:
        return Role.from_name(self.cleaned_data["role"])


class TeamGrantForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Team.objects.none(), to_field_name="name")
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=Role.WRITE.label)

    def __init__(self, *args, repo: Repository, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = Team.objects.filter(organization=repo.owner)

    def clean_role(self) -> Role:
        return Role.from_name(self.cleaned_data["role"])


class DeployKeyForm(forms.Form):
    title = forms.CharField(max_length=100, required=False, help_text="Defaults to the key's comment.")
    public_key = forms.CharField(widget=PublicKeyTextarea(attrs={"rows": 5, "placeholder": "ssh-ed25519 AAAA…"}))
    writable = forms.BooleanField(required=False, label="Allow write access (this key can push)")
