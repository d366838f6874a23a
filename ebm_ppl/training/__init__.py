"""Training energies: gradient estimators (CD-k, persistent CD, PT-PCD) and the ``fit`` loop."""

from ebm_ppl.training.class_rbm import ClassRBMEstimator, ClassRBMState, class_rbm
from ebm_ppl.training.centering import CenteredEstimator, CenteredState, centered
from ebm_ppl.training.estimators import (
    CDEstimator,
    CDState,
    GradientEstimator,
    PCDEstimator,
    PCDState,
    cd,
    gibbs_sweeps,
    pcd,
)
from ebm_ppl.training.tempered import PTPCDEstimator, PTPCDState, pt_pcd
from ebm_ppl.training.fit import CheckpointWarning, History, TrainingDiverged, fit
from ebm_ppl.training.jem import JEMEstimator, JEMState, jem, jem_loss, jem_metrics, langevin_samples
from ebm_ppl.training.metrics import (
    boltzmann_metrics,
    boltzmann_metrics_sets,
    pseudo_log_likelihood,
    reconstruction_error,
)

__all__ = [
    "GradientEstimator",
    "CDEstimator",
    "CDState",
    "PCDEstimator",
    "PCDState",
    "cd",
    "pcd",
    "pt_pcd",
    "PTPCDEstimator",
    "PTPCDState",
    "gibbs_sweeps",
    "centered",
    "class_rbm",
    "ClassRBMEstimator",
    "ClassRBMState",
    "CenteredEstimator",
    "CenteredState",
    "jem", "jem_loss", "jem_metrics", "langevin_samples", "JEMEstimator", "JEMState",
    "fit",
    "History",
    "TrainingDiverged",
    "CheckpointWarning",
    "boltzmann_metrics",
    "boltzmann_metrics_sets",
    "pseudo_log_likelihood",
    "reconstruction_error",
]
