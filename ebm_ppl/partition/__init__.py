"""The log partition function: exact enumeration, forward and reverse AIS, and sandwich bounds."""

from ebm_ppl.partition.ais import ais, reverse_ais
from ebm_ppl.partition.comparison import Comparison, compare
from ebm_ppl.partition.estimate import AISEstimate
from ebm_ppl.partition.exact import exact_samples
from ebm_ppl.partition.likelihood import Sandwich, log_likelihood, sandwich
from ebm_ppl.partition.choice import factorized_base, factorized_log_z
from ebm_ppl.partition.schedule import default_schedule, linear_schedule, power_schedule
from ebm_ppl.potentials.partition import log_partition

__all__ = [
    "ais",
    "reverse_ais",
    "AISEstimate",
    "Comparison",
    "compare",
    "exact_samples",
    "Sandwich",
    "log_likelihood",
    "sandwich",
    "factorized_base",
    "factorized_log_z",
    "default_schedule",
    "linear_schedule",
    "power_schedule",
    "log_partition",
]
