"""Browser forms of nurturing. Sections: templates first, then sequences.

The checks are the sandbox's and the services'; the forms only carry inputs and put messages back on them."""

from django import forms

from .rendering import MAX_BODY, MAX_SUBJECT
from .services.templates import MAX_FOLDER_NAME, MAX_NAME

# ----------------------------------------------------------------------------------------------- templates


class TemplateForm(forms.Form):
    name = forms.CharField(max_length=MAX_NAME)
    folder = forms.CharField(max_length=MAX_FOLDER_NAME, required=False,
                             help_text="Pick a folder or type a new name; empty: no folder.",
                             widget=forms.TextInput(attrs={"list": "folder-names", "autocomplete": "off"}))
    subject = forms.CharField(max_length=MAX_SUBJECT, strip=False)
    html = forms.CharField(label="HTML body", max_length=MAX_BODY, strip=False,
                           widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "false", "class": "code"}))
    text = forms.CharField(label="Plain-text body", max_length=MAX_BODY, strip=False, required=False,
                           help_text="For mail programs that do not show HTML.",
                           widget=forms.Textarea(attrs={"rows": 8}))

    def add_problems(self, errors: dict[str, list[str]]) -> None:
        """Messages of the sandbox or the services, on their inputs (the rest above the form)."""
        for key, messages in errors.items():
            self.add_error(key if key in self.fields else None, messages)


class PreviewForm(TemplateForm):
    """The editor's inputs plus the lead to preview with (an email address or id; empty: a sample lead)."""

    lead = forms.CharField(max_length=254, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("name", "subject", "html"):  # a half-written template still gets a preview
            self.fields[name].required = False
