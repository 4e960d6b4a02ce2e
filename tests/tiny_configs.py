"""Hydra overrides shared by the tests that train a translation model end to end: a one-layer, 32-wide
Transformer trained for one epoch on a slice of the committed sample (seconds on a CPU)."""

TINY_TRANSLATION = [
    "arch=transformer_demo", "arch.overrides.encoder_layers=1", "arch.overrides.decoder_layers=1",
    "arch.overrides.encoder_embed_dim=32", "arch.overrides.decoder_embed_dim=32",
    "arch.overrides.encoder_ffn_embed_dim=64", "arch.overrides.decoder_ffn_embed_dim=64",
    "arch.overrides.encoder_attention_heads=2", "arch.overrides.decoder_attention_heads=2",
    "trainer.max_epochs=1", "trainer.progress_bar=none", "logger.wandb.enabled=false", "optim.warmup_updates=10",
    "batching.max_tokens=1024", "eval.beam=2", "data.bpe_merges=200",
]
