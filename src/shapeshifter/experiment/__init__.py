"""The run skeleton every task plugs into: Hydra configs in, trained models and JSON run records out.

Framework glue (Hydra, Lightning, W&B) lives here and in `pipelines/`; the layers in `shapeshifter.nn`
and the surgery in `shapeshifter.surgery` know nothing about it. It knows no task either: a task
(`translation.task`, `glue.task`) is named in the config and imports this package, never the reverse.
"""

from shapeshifter.experiment.resolvers import register as _register_resolvers
from shapeshifter.experiment.settings import register as _register_settings

_register_resolvers()
_register_settings()
