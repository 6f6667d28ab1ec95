"""Forms of the build pages: they shape input; releases.services decides and refuses field by field."""

from django import forms

from releases.buildspec import VARIABLE_NAME
from releases.models import MAX_TIMEOUT_MINUTES


class RunBuildForm(forms.Form):
    ref = forms.CharField(
        max_length=255,
        label="Branch, tag or commit",
        help_text="The build checks out the commit this names now.",
    )
    variables = forms.CharField(
        required=False,
        label="Variables",
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "NAME=value"}),
        help_text="One NAME=value a line. They override the repository's and the buildspec's variables and are kept "
        "on the build, so put no secret here.",
    )

    def clean_variables(self) -> dict[str, str]:
        variables: dict[str, str] = {}
        for number, line in enumerate(self.cleaned_data["variables"].splitlines(), start=1):
            if not line.strip():
                continue
            name, equals, value = line.partition("=")
            name = name.strip()
            if not equals or not VARIABLE_NAME.match(name):
                raise forms.ValidationError(f"Line {number} is not NAME=value with a variable's name: {line[:80]!r}.")
            variables[name] = value
        return variables


class BuildSettingsForm(forms.Form):
    branch_filter = forms.CharField(
        max_length=500,
        required=False,
        label="Branches to build",
        help_text="A glob with {a,b} alternatives, such as main,release/*. Empty: every branch.",
    )
    build_tags = forms.BooleanField(required=False, label="Build pushed tags")
    stop_running = forms.BooleanField(
        required=False,
        label="A newer push stops the running build of its branch",
        help_text="A newer push always stops the older build still queued.",
    )
    buildspec_path = forms.CharField(max_length=500, label="Buildspec path")
    network = forms.BooleanField(
        required=False,
        label="Give builds outbound network",
        help_text="Still without a route to anything on the portal's own machine.",
    )
    # The bounds are the service's to check, so that its message is the one shown on the field.
    timeout_minutes = forms.IntegerField(
        label="Time limit (minutes)", help_text=f"From 1 to {MAX_TIMEOUT_MINUTES} (8 hours)."
    )
    secret_branches = forms.CharField(
        max_length=500,
        required=False,
        label="Branches whose builds get secrets",
        help_text="In the same syntax as the branches to build. Empty: the protected branches.",
    )
