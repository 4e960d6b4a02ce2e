"""The committed quality-study records compare like with like: within a table, the configs of its rows differ only
in the method, its size, its distillation settings and the seed (what the hash covers, `identity_config`, minus
those), and every run read the same data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shapeshifter.experiment.records import identity_config, load_records

RECORDS = Path(__file__).resolve().parents[2] / "results" / "records"
# what may differ between rows: the method and its size (its policy, factor lr, the width of a narrow dense model:
# arch.overrides in translation, arch.d_model/d_ff in classification; a named variant such as -drop0), the
# distillation settings and the seed
ROW_KEYS = ("shapeshift", "distill", "seed", "optim.factor_lr_scale", "arch.label", "arch.overrides", "arch.d_model",
            "arch.d_ff")


def shared_part(record: dict[str, Any]) -> dict[str, Any]:
    config = identity_config(record["config"], record.get("data_content"))
    for key in ROW_KEYS:
        node, _, leaf = key.rpartition(".")
        parent = config.get(node, {}) if node else config
        parent.pop(leaf, None)
    return config


@pytest.mark.parametrize("table", ["quality", "quality_glue", "quality_snli"])
def test_rows_of_a_table_differ_only_in_method_size_distillation_and_seed(table: str) -> None:
    records = [r for r in load_records(RECORDS / table) if r.get("status") == "done"]
    assert len(records) >= 8
    reference = shared_part(records[0])
    for record in records[1:]:
        part = shared_part(record)
        differs = sorted(k for k in reference.keys() | part.keys() if reference.get(k) != part.get(k))
        names = record["config"]["run"]["name"], records[0]["config"]["run"]["name"]
        assert not differs, f"{names[0]} differs from {names[1]} in {differs}"
