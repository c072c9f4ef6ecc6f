from __future__ import annotations

from typing import Any

from django import forms

from annotate import records


class ImportForm(forms.Form):
    file = forms.FileField(help_text="JSONL, JSON array, CSV or Parquet; gzip-compressed is fine.")
    format = forms.ChoiceField(
        required=False,
        choices=[
            ("", "from the file name"),
            ("jsonl", "JSONL"),
            ("json", "JSON array"),
            ("csv", "CSV"),
            ("parquet", "Parquet"),
        ],
    )
    maps = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "prompt=instruction+input\nid=idx"}),
        help_text="One TARGET=SOURCE per line to rename keys; several sources joined with +.",
    )
    skip_invalid = forms.BooleanField(
        required=False,
        help_text="Import the valid rows and keep the rejected ones in a rejects file. "
        "Off: one invalid row stops the whole import and nothing is added.",
    )

    def clean_maps(self) -> list[str]:
        specs = [line.strip() for line in self.cleaned_data["maps"].splitlines() if line.strip()]
        try:
            records.parse_maps(specs)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return specs

    def options(self) -> dict[str, Any]:
        return {k: self.cleaned_data[k] for k in ("format", "maps", "skip_invalid")}
