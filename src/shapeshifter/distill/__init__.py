"""Distillation from a finished dense run (docs/distillation.md): losses, teacher checks, the sequence-level
data stage. Plain PyTorch and fairseq data files; the Lightning side is `translation.distill_module`, the config
side `experiment.distill`."""
