"""The checks: one module per check, each a small dataclass whose fields are its thresholds.

>>> from collapse_nb.checks import CHECKS, default_checks
>>> sorted(CHECKS)[:3]
['chance_level_loss', 'clipping_saturated', 'dead_parameters']
>>> VarianceCollapse(critical_ratio=0.05)(run)        # doctest: +SKIP

``CHECKS`` maps each check's ``name`` to its class; :func:`default_checks` returns
one instance of each, with default thresholds, in the order they run. See
``docs/checks.md`` for the table of checks, thresholds and their sources.
"""
from __future__ import annotations

from ._base import Check
from .chance_level_loss import ChanceLevelLoss
from .checkpoint_weights import CheckpointWeights
from .clipping_saturated import ClippingSaturated
from .coverage import Coverage
from .dead_parameters import DeadParameters
from .dying_gradients import DyingGradients
from .exploding_gradients import ExplodingGradients
from .gan_balance import GANBalance
from .loss_divergence import LossDivergence
from .loss_plateau import LossPlateau
from .loss_spikes import LossSpikes
from .lr_schedule import LRScheduleMismatch
from .nonfinite_loss import NonfiniteLoss
from .output_head import OutputHead
from .overfitting import Overfitting
from .rank_desync import RankDesync
from .suspicious_files import SuspiciousFiles
from .update_ratio import UpdateRatio
from .val_at_chance import ValAtChance
from .val_below_train import ValBelowTrain
from .vanishing_gradients import VanishingGradients
from .variance_collapse import VarianceCollapse

#: Default checks, in the order they run.
DEFAULT_CHECKS: tuple[type[Check], ...] = (
    Coverage, SuspiciousFiles, NonfiniteLoss, VarianceCollapse, DeadParameters, DyingGradients, CheckpointWeights,
    OutputHead,
    VanishingGradients, ExplodingGradients, UpdateRatio, ClippingSaturated, LRScheduleMismatch, LossPlateau,
    LossDivergence, LossSpikes, ChanceLevelLoss, ValAtChance, Overfitting, ValBelowTrain, GANBalance, RankDesync,
)

#: name -> check class
CHECKS: dict[str, type[Check]] = {c.name: c for c in DEFAULT_CHECKS}


def default_checks() -> list[Check]:
    """One instance of every default check, with default thresholds."""
    return [c() for c in DEFAULT_CHECKS]


__all__ = ["Check", "CHECKS", "DEFAULT_CHECKS", "default_checks", *[c.__name__ for c in DEFAULT_CHECKS]]
