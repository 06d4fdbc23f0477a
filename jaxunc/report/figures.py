"""Figures (matplotlib, Agg backend): one function per figure, each returns the written paths."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", str(s))


def _save(fig, path: Path, dpi: int = 110, tight: bool = True) -> Path:
    """Lay out, write and close a figure; returns its path."""
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _heatmap(mat: pd.DataFrame, mask: pd.DataFrame, title: str, path: Path, cmap: str, center0: bool) -> Path:
    fig, ax = plt.subplots(figsize=(min(28, max(6, 0.3 * mat.shape[1] + 3)), min(16, max(3, 0.3 * mat.shape[0] + 2))))
    vals = mat.to_numpy(float)
    shown = np.where(mask.to_numpy(bool), np.nan, vals)
    lim = np.nanmax(np.abs(vals)) if np.isfinite(vals).any() else 1.0
    im = ax.imshow(shown, cmap=cmap, vmin=-lim if center0 else 0, vmax=lim, aspect="auto")
    ax.set_xticks(range(mat.shape[1]), mat.columns, rotation=90, fontsize=7)
    ax.set_yticks(range(mat.shape[0]), mat.index, fontsize=7)
    if shown.size <= 600:  # values printed in cells for small maps only (text is slow and unreadable beyond)
        for (i, j), v in np.ndenumerate(shown):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=5)
    fig.colorbar(im, ax=ax)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def alignment_heatmaps(al: pd.DataFrame, out: Path, alpha: float = 0.05) -> list[Path]:
    """Models x measures oriented Spearman per dataset x target; cells with q >= alpha masked."""
    paths = []
    sub = al[al["method"] == "spearman"]
    for (ds, t), g in sub.groupby(["dataset", "target"]):
        mat = g.pivot_table(index="model", columns="measure", values="coef_oriented", aggfunc="first", dropna=False)
        q = g.pivot_table(index="model", columns="measure", values="q_value", aggfunc="first", dropna=False)
        mask = ~(q < alpha).reindex_like(mat).fillna(False)
        qm = g["q_method"].iloc[0]
        paths.append(_heatmap(mat, mask, f"{ds}: oriented Spearman with {t} ({qm} q < {alpha} shown)",
                              out / f"alignment_{_safe(ds)}_{_safe(t)}.png", "RdBu_r", True))
    return paths


def ece_heatmaps(cal: pd.DataFrame, out: Path) -> list[Path]:
    paths = []
    for ds, g in cal[cal["ece_width10"].notna()].groupby("dataset"):
        mat = g.pivot_table(index="model", columns="measure", values="ece_width10", aggfunc="first")
        paths.append(_heatmap(mat, mat.isna(), f"{ds}: ECE (10 equal-width bins)",
                              out / f"ece_{_safe(ds)}.png", "viridis", False))
    return paths


def reliability_diagrams(rel: pd.DataFrame, out: Path, all_measures: bool = False) -> list[Path]:
    """One PNG per dataset x model: a panel per measure with bin accuracy vs confidence and counts.

    Only `mc_*` measures unless all_measures (reliability.csv holds every measure's bins)."""
    paths = []
    if rel.empty:
        return paths
    if not all_measures:
        rel = rel[rel["measure"].str.startswith("mc_")]
    for (ds, model), g in rel.groupby(["dataset", "model"]):
        ms = list(dict.fromkeys(g["measure"]))
        cols = min(6, len(ms))
        rows = int(np.ceil(len(ms) / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.4 * rows), squeeze=False, sharex=True,
                                 sharey=True, layout="constrained")
        for ax, m in zip(axes.ravel(), ms):
            b = g[g["measure"] == m]
            centers = (b["bin_low"] + b["bin_high"]) / 2
            ax.bar(centers, b["accuracy"].fillna(0), width=0.09, color="tab:blue")
            ax.plot([0, 1], [0, 1], "k--", lw=0.7)
            ax.set_title(m + "\nn/bin: " + " ".join(str(int(c)) for c in b["count"]), fontsize=5)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.tick_params(labelsize=5)
        for ax in axes.ravel()[len(ms):]:
            ax.axis("off")
        fig.suptitle(f"{ds} {model}: reliability (accuracy per 0.1 confidence bin; items per bin in titles)", fontsize=8)
        paths.append(_save(fig, out / f"reliability_{_safe(ds)}_{_safe(model)}.png", dpi=80, tight=False))
    return paths


def accuracy_agreement_chart(cal: pd.DataFrame, pref: pd.DataFrame, out: Path) -> list[Path]:
    paths = []
    for ds, g in pref.groupby("dataset"):
        g = g.set_index("model")
        acc = cal[(cal["dataset"] == ds) & (cal["task"] == "mc")].groupby("model")["accuracy"].first() \
            if not cal.empty else pd.Series(dtype=float)
        x = np.arange(len(g))
        fig, ax = plt.subplots(figsize=(max(5, 0.4 * len(g) + 2), 3.5))
        ax.bar(x - 0.2, acc.reindex(g.index).to_numpy(float), 0.4, label="accuracy (MC)")
        ax.bar(x + 0.2, g["plurality_agreement"].to_numpy(float), 0.4, label="plurality agreement")
        if "chance" in g:
            ax.plot(x, g["chance"].to_numpy(float), "k_", ms=14, label="chance (mean 1/n)")
        ax.set_xticks(x, g.index, rotation=90, fontsize=7)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
        ax.set_title(f"{ds}: accuracy and plurality agreement", fontsize=9)
        paths.append(_save(fig, out / f"accuracy_agreement_{_safe(ds)}.png"))
    return paths


def base_vs_instruct_chart(al: pd.DataFrame, out: Path, pairs: dict[str, str] | None = None) -> list[Path]:
    """Oriented Spearman of base vs instruct models, one line per matched pair, per dataset x target.

    pairs: model -> pair key (models missing from it: the key derived from the name)."""
    from jaxunc.columns import pair_key_from_name
    pairs = pairs or {}
    paths = []
    sub = al[al["method"] == "spearman"].assign(
        key=lambda d: d["model"].map(lambda m: pairs.get(m) or pair_key_from_name(m)))
    for (ds, t), g in sub.groupby(["dataset", "target"]):
        if g["model_type"].nunique() < 2:
            continue
        piv = g.pivot_table(index=["key", "measure"], columns="model_type", values="coef_oriented", aggfunc="first")
        if "base" not in piv or piv.shape[1] < 2:
            continue
        other = [c for c in piv.columns if c != "base"][0]
        piv = piv.dropna()
        if piv.empty:
            continue
        measures = sorted(set(piv.index.get_level_values("measure")))
        fig, ax = plt.subplots(figsize=(min(24, max(6, 0.3 * len(measures) + 2)), 5))
        xi = np.array([measures.index(m) for m in piv.index.get_level_values("measure")], float)
        b, o = piv["base"].to_numpy(float), piv[other].to_numpy(float)
        seg_x = np.column_stack([xi - 0.15, xi + 0.15, np.full_like(xi, np.nan)]).ravel()
        seg_y = np.column_stack([b, o, np.full_like(b, np.nan)]).ravel()
        ax.plot(seg_x, seg_y, "-", color="grey", lw=0.5)  # one line object for all pairs
        ax.plot(xi - 0.15, b, "o", color="tab:blue", ms=3, label="base")
        ax.plot(xi + 0.15, o, "o", color="tab:orange", ms=3, label="instruct")
        ax.legend(fontsize=7)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xticks(range(len(measures)), measures, rotation=90, fontsize=7)
        ax.set_title(f"{ds}: oriented Spearman with {t}, base (blue) vs instruct (orange)", fontsize=9)
        paths.append(_save(fig, out / f"base_vs_instruct_{_safe(ds)}_{_safe(t)}.png"))
    return paths


_PREDICTOR_STYLE = {"model": ("tab:blue", "o"), "uniform": ("tab:grey", "s"), "dataset_mean": ("tab:green", "^")}


def distribution_charts(dist: pd.DataFrame, items: pd.DataFrame, out: Path) -> list[Path]:
    """Per dataset: (1) each distribution metric per model for the model and the two baselines,
    pooled over items, with bootstrap intervals; (2) per model, item-level model entropy
    H(q)/ln n against human entropy H(r)/ln n, coloured by the number of options n."""
    paths: list[Path] = []
    if dist.empty or "metric" not in dist:
        return paths
    pooled = dist[(dist["n_options"].astype(str) == "all") & dist["metric"].notna()]
    for ds, g in pooled.groupby("dataset"):
        target = "Answer_Ratios" if (g["target"] == "Answer_Ratios").any() else sorted(g["target"])[0]
        g = g[g["target"] == target]
        metrics = list(dict.fromkeys(g["metric"]))
        models = list(dict.fromkeys(g["model"]))
        x = np.arange(len(models))
        fig, axes = plt.subplots(len(metrics), 1, figsize=(max(6, 0.35 * len(models) + 3), 1.9 * len(metrics)),
                                 sharex=True, squeeze=False)
        for ax, m in zip(axes[:, 0], metrics):
            sub = g[g["metric"] == m]
            for k, (p, (color, marker)) in enumerate(_PREDICTOR_STYLE.items()):
                s = sub[sub["predictor"] == p].set_index("model").reindex(models)
                mean = s["mean"].to_numpy(float)
                err = np.vstack([mean - s["ci_low"].to_numpy(float), s["ci_high"].to_numpy(float) - mean])
                ax.errorbar(x + (k - 1) * 0.22, mean, yerr=np.where(np.isfinite(err), err, 0), fmt=marker,
                            color=color, ms=3.5, lw=0.8, capsize=1.5, label=p)
            ax.set_ylabel(f"{m}\n({sub['better'].iloc[0]} better)", fontsize=7)
            ax.tick_params(labelsize=6)
        axes[0, 0].legend(fontsize=6, ncol=3, loc="best")
        axes[-1, 0].set_xticks(x, models, rotation=90, fontsize=7)
        fig.suptitle(f"{ds} ({target}): model vs uniform and leave-one-out dataset-mean baselines\n"
                     "mean over items, 95% bootstrap intervals", fontsize=8)
        paths.append(_save(fig, out / f"distribution_{_safe(ds)}.png"))
    if items.empty:
        return paths
    for ds, g in items.groupby("dataset"):
        models = list(dict.fromkeys(g["model"]))
        cols = min(6, len(models))
        rows = int(np.ceil(len(models) / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(2.5 * cols + 1, 2.5 * rows), squeeze=False,
                                 sharex=True, sharey=True, layout="constrained")
        ns = np.sort(g["n_options"].unique())
        cmap = plt.get_cmap("viridis", max(2, len(ns)))
        norm = matplotlib.colors.BoundaryNorm(np.r_[ns - 0.5, ns[-1] + 0.5], cmap.N)
        sc = None
        for ax, m in zip(axes.ravel(), models):
            s = g[g["model"] == m]
            sc = ax.scatter(s["human_entropy"], s["model_entropy"], c=s["n_options"], cmap=cmap, norm=norm,
                            s=4, alpha=0.6, linewidths=0)
            ax.plot([0, 1], [0, 1], "k--", lw=0.6)
            ax.set_title(m, fontsize=6)
            ax.tick_params(labelsize=5)
        for ax in axes.ravel()[len(models):]:
            ax.axis("off")
        fig.supxlabel("human entropy H(r) / ln n", fontsize=7)
        fig.supylabel("model entropy H(q) / ln n", fontsize=7)
        if sc is not None:
            cb = fig.colorbar(sc, ax=axes.ravel().tolist(), ticks=ns, shrink=0.8)
            cb.set_label("n options", fontsize=7)
        fig.suptitle(f"{ds}: per-item option entropy, model vs human (Answer_Ratios), coloured by n", fontsize=8)
        paths.append(_save(fig, out / f"distribution_entropy_{_safe(ds)}.png", dpi=90, tight=False))
    return paths


def group_calibration_heatmaps(cal: pd.DataFrame, out: Path, alpha: float = 0.05) -> list[Path]:
    """Per dataset x model x group_by (multiple-choice task): groups x measures AUROC of the oriented
    measure for predicting a wrong answer (cells with auroc_q_value >= alpha masked; the q family is
    the group family of calibration.csv), with the group's accuracy in a column on the left.

    Groups below min_group are kept as empty rows labelled with their size."""
    paths: list[Path] = []
    if cal.empty or "group_by" not in cal:
        return paths
    groups = cal[(cal["group_by"].astype(str) != "none") & cal["group_by"].notna()]
    for (ds, model, by), g in groups.groupby(["dataset", "model", "group_by"], sort=False):
        mc = g[(g["task"] == "mc") | g["task"].isna()]
        computed = mc[mc["measure"].notna()]
        if computed.empty:
            continue
        order = list(dict.fromkeys(mc["group"].astype(str)))
        auroc = computed.pivot_table(index="group", columns="measure", values="auroc", aggfunc="first", dropna=False)
        q = computed.pivot_table(index="group", columns="measure", values="auroc_q_value", aggfunc="first", dropna=False)
        auroc = auroc.reindex(order)
        mask = ~(q < alpha).reindex_like(auroc).fillna(False).astype(bool)
        acc = computed.groupby("group")["accuracy"].first().reindex(order)
        small = mc[mc["measure"].isna()].set_index("group")["n"]
        sizes = computed.groupby("group")["n"].max()
        ylabels = [f"{lab} (n={int(small[lab])}, not computed)" if lab in small.index
                   else f"{lab} (n={int(sizes.get(lab, 0))})" for lab in order]
        h = min(16, max(3, 0.3 * len(order) + 2))
        w = min(28, max(8, 0.3 * auroc.shape[1] + 4))
        fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(w, h), sharey=True,
                                       gridspec_kw=dict(width_ratios=[1, max(1, auroc.shape[1])]))
        av = acc.to_numpy(float)[:, None]
        ax0.imshow(av, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax0.set_xticks([0], ["accuracy"], rotation=90, fontsize=7)
        ax0.set_yticks(range(len(order)), ylabels, fontsize=7)
        vals = auroc.to_numpy(float)
        shown = np.where(mask.to_numpy(bool), np.nan, vals)
        im1 = ax1.imshow(shown, cmap="RdBu_r", vmin=0, vmax=1, aspect="auto")
        ax1.set_xticks(range(auroc.shape[1]), auroc.columns, rotation=90, fontsize=7)
        if shown.size <= 600:
            for (i, j), v in np.ndenumerate(shown):
                if np.isfinite(v):
                    ax1.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=5)
        for i, v in enumerate(av[:, 0]):  # accuracy values always printed (one column; viridis 0-1)
            if np.isfinite(v):
                ax0.text(0, i, f"{v:.2f}", ha="center", va="center", fontsize=5, color="w" if v < 0.6 else "k")
        fig.colorbar(im1, ax=ax1).ax.tick_params(labelsize=6)
        qm = computed["q_method"].dropna().iloc[0] if computed["q_method"].notna().any() else "q"
        fig.suptitle(f"{ds} {model}: AUROC of the oriented measure for a wrong answer, by {by}\n"
                     f"({qm} q < {alpha} within dataset x model x group_by shown; 0.5 = chance); accuracy left",
                     fontsize=8)
        paths.append(_save(fig, out / f"groups_auroc_{_safe(ds)}_{_safe(model)}_{_safe(by)}.png"))
    return paths


def probe_charts(probes: pd.DataFrame, out: Path) -> list[Path]:
    """One PNG per dataset x model: out-of-fold Pearson r of the ridge probe vs layer (0 = embeddings),
    one line per target, its permutation band shaded from 0 up to perm_r95 (95th percentile of the
    shuffled-target r), and a star at the nested-CV best layer's outer-fold r."""
    paths = []
    if probes.empty or probes["r_oof"].notna().sum() == 0:
        return paths
    probes = probes[probes["r_oof"].notna()]
    for (ds, model), g in probes.groupby(["dataset", "model"]):
        fig, ax = plt.subplots(figsize=(7, 4))
        for i, (target, t) in enumerate(g.groupby("target", sort=False)):
            color = plt.get_cmap("tab10")(i % 10)
            layer = t[t["kind"] == "layer"].sort_values("layer")
            x = layer["layer"].to_numpy(float)
            ax.plot(x, layer["r_oof"], "-", color=color, lw=1.2, label=target)
            if layer["perm_r95"].notna().any():
                ax.fill_between(x, 0, layer["perm_r95"].to_numpy(float), color=color, alpha=0.15, lw=0)
            nested = t[t["kind"] == "nested_best"]
            if len(nested):
                ax.plot(nested["layer"], nested["r_oof"], "*", color=color, ms=10, mec="k", mew=0.5)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("layer (0 = embedding output; last = after the final norm)")
        ax.set_ylabel("out-of-fold Pearson r")
        ax.legend(fontsize=7, ncol=2)
        ax.set_title(f"{ds} {model}: ridge probes of the last-token hidden state\n"
                     "shaded: permutation 95th percentile; star: nested-CV best layer (outer folds)", fontsize=8)
        paths.append(_save(fig, out / f"probes_{_safe(ds)}_{_safe(model)}.png"))
    return paths
