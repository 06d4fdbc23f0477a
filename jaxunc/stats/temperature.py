"""Post-hoc temperature scaling (docs/analyses.md section 5), fit with optax.

Per model: option distribution q_T = softmax(l / T) from `mc_choice-pdf` l; T = exp(theta) minimises
the mean negative log-likelihood of the correct option on a seeded calibration split (Adam on theta);
ECE (10 equal-width bins) of max_j q_T is reported on the held-out split before (T = 1) and after.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from jaxunc.stats import calibration as K
from jaxunc.stats import tables as T
from jaxunc.stats.config import AnalysisConfig

COLUMNS = ["dataset", "model", "model_type", "model_size", "n_fit", "n_eval", "temperature", "nll_fit_before",
           "nll_fit_after", "ece_width10_before", "ece_width10_after", "accuracy_eval", "method", "note"]


def _padded(pdfs: list) -> tuple[np.ndarray, np.ndarray]:
    k = max(len(p) for p in pdfs)
    l = np.full((len(pdfs), k), -np.inf)
    for i, p in enumerate(pdfs):
        l[i, : len(p)] = p
    return l, np.isfinite(l)


def fit_temperature(logits: np.ndarray, labels: np.ndarray, steps: int = 300, lr: float = 0.05) -> float:
    """argmin_T mean_i -log softmax(l_i / T)[y_i] (padding = -inf), T = exp(theta), Adam."""
    import jax
    import jax.numpy as jnp
    import optax

    l = jnp.asarray(np.where(np.isfinite(logits), logits, -1e30), jnp.float32)
    y = jnp.asarray(labels)

    def loss(theta):
        lp = jax.nn.log_softmax(l / jnp.exp(theta), axis=-1)
        return -jnp.mean(jnp.take_along_axis(lp, y[:, None], axis=1))

    opt = optax.adam(lr)
    theta = jnp.zeros(())
    state = opt.init(theta)

    @jax.jit
    def step(theta, state):
        g = jax.grad(loss)(theta)
        upd, state = opt.update(g, state)
        return optax.apply_updates(theta, upd), state

    for _ in range(steps):
        theta, state = step(theta, state)
    return float(jnp.exp(theta))


def nll(logits: np.ndarray, labels: np.ndarray, temp: float) -> float:
    """Mean NLL of the labels under softmax(l / T), float64 numpy."""
    z = np.where(np.isfinite(logits), logits / temp, -np.inf)
    z = z - z.max(axis=1, keepdims=True)
    lp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-lp[np.arange(len(labels)), labels].mean())


def _ece_at(logits, labels, temp):
    z = np.where(np.isfinite(logits), logits / temp, -np.inf)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == labels).astype(float)
    return K.ece(conf, correct, K.width_bins(conf), K.N_BINS), correct.mean()


def temperature_table(tables: list[pd.DataFrame], cfg: AnalysisConfig | None = None) -> pd.DataFrame:
    """temperature.csv: one row per model with an option distribution and correct labels."""
    from jaxunc.stats.alignment import _rng
    cfg = AnalysisConfig.from_any(cfg)
    rows = []
    for df in tables:
        meta = dict(dataset=df["dataset"].iloc[0], model=df["model"].iloc[0], model_type=df["model_type"].iloc[0],
                    model_size=df["model_size"].iloc[0], method="optax adam on log T, NLL of correct option")
        if "mc_choice-pdf" not in df.columns or "Correct_Answer" not in df.columns:
            rows.append(dict(meta, note="needs 'mc_choice-pdf' and 'Correct_Answer'"))
            continue
        gold = df["Correct_Answer"].map(T.label_index).to_numpy()
        ok = np.array([p is not None and len(p) > g >= 0 and np.all(np.isfinite(np.asarray(p, float)))
                       for p, g in zip(df["mc_choice-pdf"], gold)])
        if ok.sum() < 10:
            rows.append(dict(meta, note=f"only {int(ok.sum())} usable items"))
            continue
        l, _ = _padded([np.asarray(p, float) for p in df.loc[ok, "mc_choice-pdf"]])
        y = gold[ok]
        perm = _rng(cfg, meta["dataset"], meta["model"], "temperature").permutation(len(y))
        n_fit = int(round(cfg.temperature_split * len(y)))
        fit, ev = perm[:n_fit], perm[n_fit:]
        temp = fit_temperature(l[fit], y[fit])
        before, acc = _ece_at(l[ev], y[ev], 1.0)
        after, _ = _ece_at(l[ev], y[ev], temp)
        rows.append(dict(meta, n_fit=len(fit), n_eval=len(ev), temperature=temp,
                         nll_fit_before=nll(l[fit], y[fit], 1.0), nll_fit_after=nll(l[fit], y[fit], temp),
                         ece_width10_before=before, ece_width10_after=after, accuracy_eval=acc, note=""))
    return pd.DataFrame(rows, columns=COLUMNS)
