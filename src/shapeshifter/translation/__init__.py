"""Translation engine: fairseq Transformers (optionally shapeshifted) trained with Lightning.

This is the only package that imports fairseq; the core (`shapeshifter.nn`, `shapeshifter.surgery`)
stays framework-free. Submodules are imported explicitly (e.g. `from shapeshifter.translation.module
import TranslationModule`) so that importing this package does not pull in fairseq.

Typical use (what `pipelines/train.py` wires from its config)::

    dm = TranslationDataModule("data-bin/iwslt14.de-en", "de", "en", max_tokens=4096, seed=1)
    src_dict, tgt_dict = dm.load_dictionaries()
    overrides = {"dropout": 0.3, "share_decoder_input_output_embed": True}
    model, report = build_transformer("transformer_iwslt_de_en", src_dict, tgt_dict, overrides, policy)
    module = TranslationModule(model, tgt_dict, src_dict, lr=5e-4, warmup_updates=4000,
                               model_config={"arch": ..., "overrides": ..., "policy": ...})
    callbacks = checkpoint_callbacks("checkpoints", monitor="valid_bleu", keep_last_epochs=5)  # experiment.checkpoints
    trainer = L.Trainer(max_epochs=..., gradient_clip_val=0.0, callbacks=callbacks)
    trainer.fit(module, dm, ckpt_path=last_checkpoint("checkpoints"))  # None starts fresh
    # best file, or: save_model_weights(average_checkpoints(epoch_checkpoints("checkpoints", 5)), "avg.pt")
    load_model_weights(model, ...)
    dm.setup("test")
    scores = evaluate_translation(model, dm.test_dataloader(), src_dict, tgt_dict, "results/...", "en",
                                  raw_references=..., tok_references=..., lowercase=True)
"""
