"""Training and inference engine: the `Trainer` (Detectron2's DefaultTrainer with the project's
loaders, evaluators, optimizer, checkpointer and reliability hooks), the scripts' shared `setup`
and `train_or_evaluate`, the training hooks and the safe `SafeDefaultPredictor`."""

from .defaults import launch_from_command_line, setup, train_or_evaluate  # noqa: F401
from .hooks import (  # noqa: F401
    EnsureFinalCheckpoint,
    NonFiniteLossError,
    NonFiniteLossGuard,
    PreemptionCheckpoint,
    SkippedSamplesSummary,
    TrainingPreempted,
)
from .predictor import SafeDefaultPredictor, VideoPredictor  # noqa: F401
from .trainer import Trainer  # noqa: F401
