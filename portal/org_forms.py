"""Forms of the organization and team pages."""

from django import forms

from portal.models import User
from portal.validators import validate_owner_name


class OrganizationForm(forms.Form):
    name = forms.CharField(max_length=40, validators=[validate_owner_name], help_text="Used in URLs: acme/tool.")
    full_name = forms.CharField(max_length=200, required=False, label="Display name")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


class TeamForm(forms.Form):
    name = forms.CharField(max_length=40, validators=[validate_owner_name])
    description = forms.CharField(max_length=255, required=False)


class MemberForm(forms.Form):
    username = forms.CharField(max_length=40, label="Add a member")

    def clean_username(self) -> User:
        name = self.cleaned_data["username"].strip()
        user = User.objects.people().filter(username__iexact=name, is_active=True).first()
        if user is None:
            raise forms.ValidationError(f"There is no active user named {name!r}.")
        return user
