"""The distillation cost benchmark times what a distilled run's training step does: the teacher's forward and the
extra loss terms on top of the plain step, the teacher never updated."""

from __future__ import annotations

import torch

from shapeshifter.bench.distill_cost import candidates, fixed_sample, measure
from shapeshifter.cli.bench_distill import main
from shapeshifter.translation.fairseq_model import placeholder_dictionary

TINY = {"encoder_layers": 1, "decoder_layers": 1, "encoder_embed_dim": 16, "decoder_embed_dim": 16,
        "encoder_ffn_embed_dim": 32, "decoder_ffn_embed_dim": 32, "encoder_attention_heads": 2,
        "decoder_attention_heads": 2, "share_decoder_input_output_embed": True}
POLICY = {"attention": {"rank": 2}, "ffn": {"rank": 2}}
OPTIONS = {"lr": 1e-3, "label_smoothing": 0.1, "alpha": 0.5, "temperature": 2.0, "hidden_weight": 1.0}


def test_distilled_steps_add_the_teachers_forward_and_never_update_it(one_thread) -> None:
    torch.manual_seed(0)
    modules = candidates("transformer_iwslt_de_en", TINY, POLICY, (40, 30), OPTIONS)
    teacher = modules["word"].teacher
    frozen = {k: v.clone() for k, v in teacher.state_dict().items()}
    start = {k: v.clone() for k, v in modules["word"].model.state_dict().items()}
    sample = fixed_sample(4, 6, 40, 30, placeholder_dictionary(30))
    rows = measure(modules, sample, reps=1, warmup=0)
    assert set(rows) == {"plain", "word", "hidden", "attention", "word+hidden", "teacher"}
    assert rows["plain"]["ratio_to_plain"] == 1.0
    assert rows["plain"]["params"] == rows["word"]["params"] < rows["teacher"]["params"]
    assert rows["word"]["ops"] > rows["plain"]["ops"] and rows["hidden"]["ops"] > rows["plain"]["ops"]
    assert all(torch.equal(v, frozen[k]) for k, v in teacher.state_dict().items())
    assert any(not torch.equal(v, start[k]) for k, v in modules["word"].model.state_dict().items())


def test_the_entry_point_writes_a_record_and_a_table(tmp_path, one_thread) -> None:
    overrides = [f"arch.overrides.{k}={v}" for k, v in TINY.items()]
    assert main([*overrides, "--vocab", "40", "30", "--sentences", "2", "--length", "5", "--reps", "1",
                 "--threads", "1", "--records", str(tmp_path / "r"), "--out", str(tmp_path / "o")]) == 0
    (record,) = (tmp_path / "r" / "bench_distill").glob("distill-cost-*.json")
    assert '"status": "done"' in record.read_text()
    assert "| word+hidden |" in (tmp_path / "o" / "distill_cost.md").read_text()
