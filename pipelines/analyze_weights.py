"""How far every matrix of a trained model is from a Kronecker sum and from a low-rank product, next to noise.

    python pipelines/analyze_weights.py outputs/quality/sample_de_en-d128-dense-s1 --out results/records/quality_why

Writes a ``weight_fit`` record (``<out>/weight_fit-<hash>.json``) and prints its summary per layer type
(`shapeshifter.cli.analyze`).
"""

from shapeshifter.cli.analyze import weights

if __name__ == "__main__":
    raise SystemExit(weights())
