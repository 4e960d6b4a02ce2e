"""Distillation from a finished dense run (docs/distillation.md): the settings, the losses and the teacher checks,
for any task. Each task's side lives beside its engine: `translation.distill` (with the sequence-level data stage
`translation.distill_stage` and the module `translation.distill_module`) and `glue.distill`."""
