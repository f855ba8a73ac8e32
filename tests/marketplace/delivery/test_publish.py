"""Publishing a delivered round's model: one row per round, both downloads built once and named by their hash, a card
made from the round; and the one access rule."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from django.utils import timezone

from marketplace.delivery.models import FineTunedModel
from marketplace.delivery.services import model_publish
from tests.marketplace.openai_api.conftest import publish_for
from training.models import TrainingJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def adapter_dir(tmp_path, settings):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from training.lib.basemodels import resolve_base

    base = AutoModelForCausalLM.from_pretrained(str(resolve_base("tiny", cache_dir=Path(settings.MODEL_CACHE_DIR))))
    model = get_peft_model(base, LoraConfig(r=2, target_modules=["c_attn"], fan_in_fan_out=True, task_type="CAUSAL_LM"))
    model.save_pretrained(str(tmp_path / "adapter"))
    return tmp_path / "adapter"


@pytest.mark.slow
def test_publishing_builds_both_downloads_once_and_writes_the_card(cast, adapter_dir, settings, tmp_path):
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    row = publish_for(groups=[cast.group, cast.other_group], adapter_dir=str(adapter_dir))
    round = row.round
    row.delete()
    TrainingJob.objects.create(round=round, status=TrainingJob.Status.SUCCEEDED, adapter_dir=str(adapter_dir),
                               finished_at=timezone.now())
    model = model_publish(round=round)
    assert model.model_id == f"ft:{round.slug}" and model.ready
    for path, sha, size in ((model.adapter_zip, model.adapter_zip_sha256, model.adapter_zip_size),
                            (model.merged_zip, model.merged_zip_sha256, model.merged_zip_size)):
        assert Path(path).name.endswith(f"-{sha}.zip") and Path(path).stat().st_size == size
        assert "README.md" in zipfile.ZipFile(path).namelist()
    assert cast.group.name in model.card and "lambda: 0.5" in model.card and "| promised |" in model.card
    again = model_publish(round=round)
    assert FineTunedModel.objects.count() == 1 and again.merged_zip == model.merged_zip
    assert again.adapter_zip_sha256 == model.adapter_zip_sha256


def test_publishing_without_a_trained_adapter_is_refused(cast):
    row = publish_for(groups=[cast.group])
    from marketplace.core.errors import Conflict

    with pytest.raises(Conflict):
        model_publish(round=row.round)


def test_the_model_is_usable_by_the_bidding_groups_members_and_staff_only(cast):
    model = publish_for(groups=[cast.group])
    usable = {u.email for u in (cast.alice, cast.bob, cast.carol, cast.dave, cast.staff)
              if FineTunedModel.objects.usable_by(u).filter(pk=model.pk).exists()}
    assert usable == {cast.alice.email, cast.bob.email, cast.staff.email}
    from django.contrib.auth.models import AnonymousUser

    assert not FineTunedModel.objects.usable_by(AnonymousUser()).exists()
    cast.bob.is_active = False
    assert not FineTunedModel.objects.usable_by(cast.bob).exists()
