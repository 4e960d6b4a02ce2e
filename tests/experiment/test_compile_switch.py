"""run.compile: the translation task compiles its model in place (checkpoint names unchanged), the record's
timings carry the graphs compiled, and the switch never moves a config hash (committed records stay keyed)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from shapeshifter.experiment.runner import run_hash  # noqa: E402
from shapeshifter.experiment.sweep import compose_cfg  # noqa: E402
from shapeshifter.translation.distill import TranslationDistillation  # noqa: E402
from shapeshifter.translation.fairseq_model import placeholder_dictionary  # noqa: E402
from shapeshifter.translation.task import TranslationTask  # noqa: E402

CONF = Path(__file__).resolve().parents[2] / "conf"
TINY = {"encoder_layers": 1, "decoder_layers": 1, "encoder_embed_dim": 16, "decoder_embed_dim": 16,
        "encoder_ffn_embed_dim": 32, "decoder_ffn_embed_dim": 32, "encoder_attention_heads": 2,
        "decoder_attention_heads": 2, "share_decoder_input_output_embed": True}


def test_compile_does_not_move_the_config_hash() -> None:
    assert run_hash(compose_cfg(CONF, ["run.compile=true"])) == run_hash(compose_cfg(CONF, []))


@pytest.mark.slow
def test_compiled_module_keeps_parameter_names_and_reports_graphs(monkeypatch: pytest.MonkeyPatch) -> None:
    from shapeshifter.nn import compiled
    from shapeshifter.translation import task as translation_task

    inductor_counter = compiled.CompileCounter  # the switch's counter, on aot_eager: the same graphs, no codegen
    monkeypatch.setattr(translation_task, "CompileCounter", lambda: inductor_counter("aot_eager"))
    torch._dynamo.reset()
    names = {}
    for flag in ("false", "true"):
        cfg = compose_cfg(CONF, [f"run.compile={flag}", "shapeshift=r1_emb16"])
        task = SimpleNamespace(cfg=cfg, dicts=(placeholder_dictionary(40), placeholder_dictionary(30)),
                               overrides=TINY, policy={"embedding": {"rank": 2}, "attention": {"rank": 1},
                                                       "ffn": {"rank": 1}},
                               init_from=None, prepared=SimpleNamespace(bpe=None),
                               distillation=TranslationDistillation(cfg, TINY, lambda: None))  # distill=none
        module = TranslationTask.build_module(task, {})
        names[flag] = list(module.state_dict())
        assert (task.compile_counter is not None) == (flag == "true")
    assert names["true"] == names["false"]
    model = module.model  # the compiled one: a forward compiles at least one graph, counted for the record
    src = torch.randint(4, 40, (2, 5))
    model(src, torch.tensor([5, 5]), torch.randint(4, 30, (2, 4)))[0].sum().backward()
    trainer = SimpleNamespace(callback_metrics={}, global_step=1, loggers=[], current_epoch=0)  # as fit leaves it
    timings = TranslationTask.train_timings(task, trainer, module, 1.0)
    assert timings["compiled_graphs"] == task.compile_counter.compiles >= 1

