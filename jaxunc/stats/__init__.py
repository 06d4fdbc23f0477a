"""Host-side statistics over per-item tables (numpy / scipy / pandas; jax only in temperature.py)."""

from jaxunc.stats.alignment import add_qvalues, alignment_table, alignment_tables, partial_spearman
from jaxunc.stats.calibration import calibration_errors, calibration_table
from jaxunc.stats.compare import base_vs_instruct, combination, compare_models, rank_biserial
from jaxunc.stats.config import AnalysisConfig
from jaxunc.stats.distribution import distribution_table, distribution_tables
from jaxunc.stats.groups import cochran_q, delong_variance, split_groups
from jaxunc.stats.preference import kendall_tau_distance, preference_tables
from jaxunc.stats.tables import load_tables

__all__ = ["AnalysisConfig", "add_qvalues", "alignment_table", "alignment_tables", "base_vs_instruct",
           "calibration_errors", "calibration_table", "cochran_q", "combination",
           "compare_models", "delong_variance", "distribution_table", "distribution_tables", "split_groups",
           "kendall_tau_distance", "load_tables", "partial_spearman", "preference_tables", "rank_biserial"]
