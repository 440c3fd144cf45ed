from django import forms

from . import policy
from .models import Role


class ApiKeyForm(forms.Form):
    NAME_HELP = "Give the key a name of at most 50 characters."
    name = forms.CharField(max_length=50, strip=True, label="Key name",
                           error_messages={"required": NAME_HELP, "max_length": NAME_HELP})
    role = forms.ChoiceField(label="Role", required=False,
                             help_text="The key acts exactly like a member of this role.")

    def __init__(self, *args, grantor_role, **kwargs):
        super().__init__(*args, **kwargs)
        self.grantor_role = grantor_role
        # Every role is listed so a refused choice says why; the creator's own role comes first.
        self.fields["role"].choices = Role.choices
        self.fields["role"].initial = grantor_role

    def clean_role(self):
        role = self.cleaned_data["role"] or self.grantor_role  # left out: the creator's own role
        problem = policy.grant_problem(role, self.grantor_role)
        if problem:
            raise forms.ValidationError(problem)
        return role


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices, label="Role")
