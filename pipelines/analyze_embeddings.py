"""How well Kronecker, shuffled-row Kronecker and low-rank structures fit the embeddings of a trained model.

    python pipelines/analyze_embeddings.py outputs/quality/sample_de_en-d128-dense-s1 \
        --data-bin data/cache/sample_de_en/data-bin --out results/records/quality_why

Writes an ``embedding_fit`` record (``<out>/embedding_fit-<hash>.json``) and prints it as a table
(`shapeshifter.cli.analyze`).
"""

from shapeshifter.cli.analyze import embeddings

if __name__ == "__main__":
    raise SystemExit(embeddings())
