"""Shapeshift never silently changes what a model computes (issue item 3): with an exact policy (projection at
full Kronecker rank) every architecture gives the dense model's outputs, and what is left dense is reported."""

import copy

import pytest
import torch
from tiny_hf_models import BUILDERS, EXACT_POLICY

from shapeshifter import hf

pytest.importorskip("transformers")


@pytest.mark.parametrize("name", list(BUILDERS))
def test_exact_policy_keeps_outputs_and_reports_what_stays_dense(name):
    torch.manual_seed(0)
    dense, run = BUILDERS[name]()
    dense.eval()
    model = copy.deepcopy(dense)
    report = hf.shapeshift(model, EXACT_POLICY, init="project")
    assert report.factorized, "nothing was factorized"
    assert max(r.reconstruction_error or 0.0 for r in report.factorized) < 1e-5
    with torch.no_grad():
        torch.testing.assert_close(run(model), run(dense), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(run(model), run(dense), rtol=1e-4, atol=1e-4)  # autograd on: factored paths
    for rec in report.unhandled:
        assert rec.reason, f"{rec.name} unhandled without a reason"
