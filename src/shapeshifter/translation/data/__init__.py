"""Translation data: IWSLT'14 De-En and WMT En-Ro recipes, and the committed German-English sample.

Public API: :func:`prepare_translation_data`, :func:`use_existing_data_bin`, :class:`TranslationDataConfig`,
:class:`PreparedData`.  Importing this package imports neither fairseq nor the tokenizers; they are loaded
by the stages that need them.
"""

from shapeshifter.experiment.data_identity import DataError
from shapeshifter.translation.data.config import PreparedData, SplitFiles, TranslationDataConfig
from shapeshifter.translation.data.recipe import prepare_translation_data, use_existing_data_bin

__all__ = [
    "DataError",
    "PreparedData",
    "SplitFiles",
    "TranslationDataConfig",
    "prepare_translation_data",
    "use_existing_data_bin",
]
