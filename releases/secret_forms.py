"""The forms of the "Secrets and variables" pages; releases.variables checks names and values."""

from django import forms


class SecretTextarea(forms.Textarea):
    """A textarea that never renders its value: a secret typed in is not sent back, not even with an error."""

    def format_value(self, value):
        return None


class VariableForm(forms.Form):
    name = forms.CharField(max_length=255, help_text="Letters, digits and underscores, not starting with a digit.")
    value = forms.CharField(
        strip=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "autocomplete": "off"}),
    )

    def clean_value(self) -> str:
        # Browsers send a textarea's line breaks as CRLF; the build reads them as the shell does, LF.
        return self.cleaned_data["value"].replace("\r\n", "\n")


class SecretForm(VariableForm):
    value = forms.CharField(
        strip=False,
        help_text="Saved encrypted, and never shown again.",
        widget=SecretTextarea(attrs={"rows": 3, "spellcheck": "false", "autocomplete": "off"}),
    )
