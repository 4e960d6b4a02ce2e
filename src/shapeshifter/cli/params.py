"""Parameter count of a fairseq Transformer, dense and shapeshifted by a policy, by layer type.

    python pipelines/params.py --arch transformer_iwslt_de_en --src-vocab 8848 --tgt-vocab 6632 \\
        --policy embedding.rank=16 attention.rank=1 ffn.rank=1
    shapeshifter-params --policy attention.rank=4 attention.scheme=phm4 --json

Prints the shapeshift report and the table of `shapeshifter.params.count_parameters` (factorized vs dense,
compression per layer type). Installed as ``shapeshifter-params``; ``pipelines/params.py`` runs it too.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from shapeshifter.params import count_parameters, format_table, parse_assignments
from shapeshifter.surgery import shapeshift
from shapeshifter.translation.fairseq_model import build_transformer, placeholder_dictionary


def yaml_value(text: str) -> Any:
    """``"3"`` -> 3, ``"0.1"`` -> 0.1, ``"true"`` -> True, anything else stays a string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="transformer_iwslt_de_en", help="fairseq architecture name")
    p.add_argument("--src-vocab", type=int, default=8848)
    p.add_argument("--tgt-vocab", type=int, default=6632)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="fairseq architecture overrides, e.g. encoder_layers=3 "
                        "(share_decoder_input_output_embed defaults to true, as in the IWSLT recipe)")
    p.add_argument("--policy", nargs="*", default=[], metavar="TYPE.FIELD=VALUE",
                   help="e.g. embedding.rank=16 embedding.order=2 attention.rank=1 ffn.rank=1 "
                        "(low rank: ffn.kind=lowrank; PHM: attention.rank=4 attention.scheme=phm4)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def arch_overrides(items: list[str]) -> dict[str, Any]:
    """``--set`` items over the IWSLT recipe's tied decoder embeddings."""
    overrides: dict[str, Any] = {"share_decoder_input_output_embed": True}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key] = yaml_value(value)
    return overrides


def count(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], Any]:
    """``(dense counts, shapeshifted counts, policy, shapeshift report)`` of the model ``args`` describe."""
    overrides = arch_overrides(args.set)
    policy = parse_assignments(args.policy)
    src, tgt = placeholder_dictionary(args.src_vocab), placeholder_dictionary(args.tgt_vocab)
    model, _ = build_transformer(args.arch, src, tgt, overrides)
    dense = count_parameters(model)
    report = shapeshift(model, policy)
    return dense, count_parameters(model), policy, report


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        dense, counts, policy, report = count(args)
    except ValueError as err:  # a bad policy or override: one line naming it
        raise SystemExit(f"shapeshifter-params: {err}") from None
    if args.json:
        print(json.dumps({"dense": dense, "shapeshifted": counts, "policy": policy}, indent=2))
        return 0
    print(report.summary())
    print()
    print(format_table(counts, dense_total=dense["total"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
