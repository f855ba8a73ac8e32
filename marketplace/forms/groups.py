from __future__ import annotations

from django import forms

from marketplace.models import Membership


class GroupForm(forms.Form):
    name = forms.CharField(label="Name", max_length=120)
    description = forms.CharField(
        label="Description",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="What should the model do for this group? Members see this on the group's page.",
    )


class InvitationForm(forms.Form):
    email = forms.EmailField(
        label="E-mail (optional)",
        required=False,
        help_text="We e-mail a link that only this address can accept. Leave empty to get a shareable link instead.",
    )
    role = forms.ChoiceField(label="Role", choices=Membership.Role.choices, initial=Membership.Role.MEMBER)
