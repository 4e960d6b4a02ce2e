"""The experiment application: Hydra configs in, trained models and JSON run records out.

Framework glue (Hydra, Lightning, W&B) lives here and in `pipelines/`; the layers in `shapeshifter.nn`
and the surgery in `shapeshifter.surgery` know nothing about it.
"""

from shapeshifter.experiment.resolvers import register as _register_resolvers
from shapeshifter.experiment.settings import register as _register_settings

_register_resolvers()
_register_settings()
