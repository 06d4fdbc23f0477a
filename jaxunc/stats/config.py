"""Settings of the host-side analysis (one object passed to every stats function)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping


@dataclasses.dataclass
class AnalysisConfig:
    """Analysis settings. `from_any` accepts this class, a dict or an ml_collections ConfigDict."""

    bootstrap: int = 1000          # B, item resamples for percentile intervals (0 = no intervals)
    seed: int = 0
    ci_level: float = 0.95
    alpha: float = 0.05
    correction: str = "bh"         # 'bh' (Benjamini-Hochberg) or 'bonferroni' for q_value
    reproduce_2025: bool = False   # add the confounded Pearson(measure*ln n, H(r)) rows
    drop_ungraded: bool = False    # drop items whose `fr_correct?` is '?' from every analysis
    min_stratum: int = 10          # smallest n-stratum that gets a stratified correlation
    bootstrap_strata: bool = False # intervals for stratified correlations too (slower)
    kendall: bool = True
    permutations: int = 1000       # JSD-shift permutation test
    cv_folds: int = 5
    ridge_alpha: float | None = None  # None: chosen per fold by inner CV on the training folds
    temperature_split: float = 0.5 # share of items used to fit the temperature
    figures: bool = True
    reliability_figures: bool = True
    reliability_all: bool = False  # reliability PNG panels for every measure (default: mc_* only)
    measures: tuple[str, ...] = () # restrict to these measure columns (empty = all present)
    blas_threads: int | None = 1   # BLAS threads during the analysis (threadpoolctl); None = library default
    group_by: tuple[str, ...] | str = ()  # item-table columns to repeat the statistics per group of (comma-separated)
    min_group: int = 20            # smallest group that is computed (smaller ones: a row saying so)
    # Activation probes (stats/probes.py). `probes` is the main job's switch (the scoring step returns
    # hidden states); the analysis probes every table that has a hidden/<stem>.safetensors file.
    probes: bool = False
    probes_dtype: str = "float32"  # of the saved hidden-state file: float32 | bfloat16
    probe_permutations: int = 50   # shuffled-target refits per layer (perm_r95); 0 = none
    probe_loo_rows: int = 1000     # training rows whose exact leave-one-out error chooses the penalty (and layer)
    probe_workers: int = 2         # layers fitted concurrently (processes for a hidden-state file; BLAS single-threaded in each)

    def __post_init__(self) -> None:
        """Refuse values no analysis can use (ValueError naming the field and the allowed range)."""
        checks = {
            "bootstrap": self.bootstrap >= 0, "permutations": self.permutations >= 0,
            "cv_folds": self.cv_folds >= 2, "min_stratum": self.min_stratum >= 3,
            "ci_level": 0 < self.ci_level < 1, "alpha": 0 < self.alpha < 1,
            "temperature_split": 0 < self.temperature_split < 1, "min_group": self.min_group >= 3,
            "probes_dtype": self.probes_dtype in ("float32", "bfloat16"),
            "probe_permutations": self.probe_permutations >= 0, "probe_loo_rows": self.probe_loo_rows >= 10,
            "probe_workers": self.probe_workers >= 1,
        }
        allowed = {"bootstrap": ">= 0 (0 = no intervals)", "permutations": ">= 0 (0 = no test)",
                   "cv_folds": ">= 2", "min_stratum": ">= 3", "min_group": ">= 3",
                   "ci_level": "in (0, 1)", "alpha": "in (0, 1)",
                   "temperature_split": "in (0, 1)", "probes_dtype": "'float32' or 'bfloat16'",
                   "probe_permutations": ">= 0 (0 = no baseline)", "probe_loo_rows": ">= 10",
                   "probe_workers": ">= 1"}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"analysis.{name}={getattr(self, name)!r}: expected {allowed[name]}")
        if self.correction not in ("bh", "bonferroni"):
            raise ValueError(f"analysis.correction={self.correction!r}: expected 'bh' or 'bonferroni'")
        self.group_by = parse_group_by(self.group_by)

    @classmethod
    def from_any(cls, cfg: Any = None) -> "AnalysisConfig":
        if cfg is None:
            return cls()
        if isinstance(cfg, cls):
            return cfg
        if hasattr(cfg, "to_dict"):
            cfg = cfg.to_dict()
        if not isinstance(cfg, Mapping):
            raise TypeError(f"analysis config must be AnalysisConfig, dict or ConfigDict, got {type(cfg)}")
        names = {f.name for f in dataclasses.fields(cls)}
        cfg = {k: v for k, v in dict(cfg).items() if k != "run"}  # config.analysis.run: the caller's switch
        unknown = set(cfg) - names
        if unknown:
            raise ValueError(f"analysis: unknown fields {sorted(unknown)}; known: {sorted(names)}")
        out = cls(**dict(cfg))
        out.measures = tuple(out.measures)
        return out


def parse_group_by(spec: Any) -> tuple[str, ...]:
    """'subject, wave' or ['subject', 'wave'] -> ('subject', 'wave'); '' or None -> ().

    Each column is its own grouping (not crossed). A column named twice is refused (ValueError)."""
    if spec is None:
        return ()
    if isinstance(spec, str):
        names = [s.strip() for s in spec.split(",")]
    elif isinstance(spec, (list, tuple)):
        names = [str(s).strip() for s in spec]
    else:
        raise ValueError(f"analysis.group_by={spec!r}: expected comma-separated column names")
    names = [s for s in names if s]
    twice = sorted({s for s in names if names.count(s) > 1})
    if twice:
        raise ValueError(f"analysis.group_by={spec!r}: column {twice[0]!r} given twice; expected distinct column names")
    return tuple(names)
