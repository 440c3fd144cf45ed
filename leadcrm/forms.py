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


class OrganizationSettingsForm(forms.Form):
    name = forms.CharField(label="Organization name", max_length=200,
                           help_text="Shown to leads: in emails that use it and on the unsubscribe page.")
    email_sender_name = forms.CharField(
        label="Sender name", max_length=100, required=False,
        help_text="The From name of email to leads; empty: the organization's name.")
    email_from_owner = forms.BooleanField(
        label="Send email to leads from their owner", required=False,
        help_text="Sequence email carries the name of the lead's owner as its From name, and replies go to the "
                  "owner. The From address stays the sending address below, so email keeps being delivered. "
                  "Leads without an owner get email from the organization.")
