"""Training-engine reliability: crash-safe checkpoints, non-finite loss guard, config checks.

Use from a Detectron2 ``DefaultTrainer`` subclass::

    class Trainer(DefaultTrainer):
        def __init__(self, cfg):
            super().__init__(cfg)
            install_reliability(self, cfg)
"""
from .checkpoint import (  # noqa: F401
    CheckpointKeysError,
    CheckpointShapeError,
    Mask2FormerCheckpointer,
    NonFiniteWeightsError,
    is_intact_checkpoint,
)
from .config import add_reliability_config  # noqa: F401
from .config_checks import (  # noqa: F401
    ConfigError,
    check_num_classes,
    merge_config_checked,
)
from .evaluation import RobustTestMapper, SkippedImagesReporter  # noqa: F401
from .hooks import NonFiniteLossError, NonFiniteLossGuard  # noqa: F401
from .install import install_reliability  # noqa: F401
from .predictor import SafeDefaultPredictor  # noqa: F401
