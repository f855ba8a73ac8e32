"""Forms parse input only; whether a pair may be labelled is decided by training.services.labels."""

from __future__ import annotations

from django import forms


class LabelForm(forms.Form):
    """One answer on the labelling page: which of the two shown responses is better, or skip."""

    CHOICES = (("a", "A is better"), ("b", "B is better"), ("skip", "Skip"))

    prompt_index = forms.IntegerField(min_value=0, widget=forms.HiddenInput)
    a_index = forms.IntegerField(min_value=0, widget=forms.HiddenInput)
    b_index = forms.IntegerField(min_value=0, widget=forms.HiddenInput)
    counter = forms.IntegerField(min_value=0, required=False, widget=forms.HiddenInput)
    choice = forms.ChoiceField(choices=CHOICES)

    def clean(self):
        data = super().clean()
        if data.get("a_index") is not None and data.get("a_index") == data.get("b_index"):
            raise forms.ValidationError("A response cannot be compared with itself.")
        return data

    def chosen_rejected(self) -> tuple[int, int]:
        data = self.cleaned_data
        if data["choice"] == "a":
            return data["a_index"], data["b_index"]
        return data["b_index"], data["a_index"]
