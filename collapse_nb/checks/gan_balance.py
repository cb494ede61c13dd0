"""GAN balance: a generator and a discriminator trained against each other, read from their losses.

A GAN logs one loss per network (``gen/loss`` / ``dis/loss``, ``loss_G`` / ``loss_D``, ``errG`` /
``errD``, pix2pix ``G_GAN, G_L1`` / ``D_real, D_fake``; :mod:`collapse_nb.series` attributes each
series to its network). Their sum is not a training loss, so the single-objective checks do not run
on them; this check reads them as a pair:

- **the discriminator wins**: its loss falls towards 0 (late median below ``d_floor``, or below
  ``d_drop`` of its early median) while the generator's adversarial loss climbs (late median above
  ``g_rise`` times its early median). The discriminator then separates real from fake with ease,
  its gradients to the generator saturate, and the generator stops learning; the usual state
  before or during mode collapse and the failure the pix2pix/DCGAN tips (label smoothing,
  instance noise, a weaker D, TTUR) exist for;
- **the generator's loss climbs** while the discriminator's does not vanish (``info``);
- **one network's loss explodes**: its late median above ``explode`` times its early one.

The generator's *adversarial* term is compared (``G_GAN``, ``g_adv``, a name with ``gan`` or
``adv``) when one is logged beside reconstruction terms (``G_L1``), else its total. Early and late
are the first and last ``window_frac`` of the points. The check always adds an ``info`` saying that
losses alone cannot prove or rule out mode collapse in a GAN: sample diversity is not in the logs.

Sources: Goodfellow et al. 2014 (the saturating generator loss when D wins); Salimans et al. 2016,
"Improved Techniques for Training GANs" (mode collapse, label smoothing); Arjovsky & Bottou 2017
(vanishing generator gradients from a perfect discriminator).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..findings import Finding
from ._base import Check, curve, curve_basis, finite, fmt

if TYPE_CHECKING:
    from ..run import Run

_ADVERSARIAL = re.compile(r"(^|_)(gan|adv|adversarial)(_|$)")


@dataclass
class GANBalance(Check):
    """Discriminator winning, or a network's loss climbing or exploding, in a GAN.

    Thresholds
    ----------
    window_frac : float, default 0.2
        Early and late windows: the first and last this fraction of the logged points.
    d_floor : float, default 0.05
        A discriminator loss whose late median is below this is near 0 (it separates real from
        fake almost perfectly; the balanced BCE value is about ln 2 = 0.69 per term).
    d_drop : float, default 0.2
        ... or whose late median is below this fraction of its early median.
    g_rise : float, default 1.5
        The generator's adversarial loss rising above this factor of its early median.
    explode : float, default 10.0
        A network's late median above this factor of its early median is an explosion.
    min_points : int, default 10

    Requires
    --------
    Loss series of both networks (generator and discriminator) in ``run.scalars``.
    """

    name = "gan_balance"
    reads = "each GAN network's loss terms"
    window_frac: float = 0.2
    d_floor: float = 0.05
    d_drop: float = 0.2
    g_rise: float = 1.5
    explode: float = 10.0
    min_points: int = 10


    symptoms = {"gan_discriminator_wins": 1.0, "gan_loss_explodes": 1.0}
    symptom_words = {"gan_discriminator_wins": "the discriminator winning",
                     "gan_loss_explodes": "a GAN network's exploding loss"}

    def __call__(self, run: Run) -> list[Finding]:
        cat = run.series if hasattr(run, "series") else pd.DataFrame()
        nets = set(cat.loc[cat["role"].isin(["objective", "component"]), "network"].dropna()) if len(cat) else set()
        if nets != {"generator", "discriminator"}:
            return self.skip("not a GAN: no loss series of both a generator and a discriminator", applies=False)
        g_curve, g_what = self._generator(run, cat)
        d_curve = curve(run, "train", network="discriminator")
        d_what = d_curve.attrs.get("series", "the discriminator loss")
        g_curve, d_curve = finite(g_curve), finite(d_curve)
        if min(len(g_curve), len(d_curve)) < self.min_points:
            return self.skip(f"{len(g_curve)} generator and {len(d_curve)} discriminator loss points "
                             f"(need {self.min_points} each)")
        g_early, g_late, g_span = self._windows(g_curve)
        d_early, d_late, d_span = self._windows(d_curve)
        d_values = d_curve["value"].to_numpy(dtype="float64")
        late_d = d_values[-max(1, int(np.ceil(len(d_values) * self.window_frac))):]
        details = {"generator_series": g_what, "discriminator_series": d_what, "g_early": g_early, "g_late": g_late,
                   "d_early": d_early, "d_late": d_late, "early": g_span[0], "late": g_span[1],
                   "d_near_zero_late": float(np.mean(late_d <= self.d_floor)),
                   "g_rise": g_late / g_early if g_early > 0 else None,
                   "d_ratio": d_late / d_early if d_early > 0 else None,
                   **{f"generator_{k}": v for k, v in curve_basis(g_curve).items()},
                   **{f"discriminator_{k}": v for k, v in curve_basis(d_curve).items()}}
        out = [self._caveat()]
        d_wins = (d_late < self.d_floor or (d_early > 0 and d_late < self.d_drop * d_early))
        g_climbs = g_early > 0 and g_late > self.g_rise * g_early
        ev = self._evidence(g_curve, d_curve)
        if d_wins and g_climbs:
            summary = (f"The discriminator is winning: {d_what} fell from a median of {fmt(d_early)} "
                       f"({g_span[0]}) to {fmt(d_late)} ({g_span[1]}), {details['d_near_zero_late']:.0%} of its late "
                       f"points at or below {fmt(self.d_floor)}, while {g_what} rose from {fmt(g_early)} to "
                       f"{fmt(g_late)} ({g_late / g_early:.1f}x). A discriminator that separates real from fake "
                       f"this easily gives the generator saturated, uninformative gradients: it stops improving, "
                       f"and often collapses to a few modes.")
            actions = ["Look at samples from the last checkpoints: repeated or near-identical outputs are mode "
                       "collapse; the losses cannot show it.",
                       "Weaken the discriminator: one-sided label smoothing (real labels 0.9), instance noise on its "
                       "inputs, dropout, fewer D steps per G step, or a lower D learning rate (TTUR).",
                       "Use a non-saturating or Wasserstein/hinge loss with a gradient penalty or spectral norm."]
            out.insert(0, self.finding("gan_discriminator_wins", "warning",
                                       f"GAN: the discriminator wins (D loss {fmt(d_early)} -> {fmt(d_late)}, "
                                       f"G adversarial loss {fmt(g_early)} -> {fmt(g_late)})",
                                       summary=summary, evidence=ev, actions=actions, details=details,
                                       score=float(g_late / g_early)))
            return out
        for who, early, late, what in (("generator", g_early, g_late, g_what), ("discriminator", d_early, d_late,
                                                                               d_what)):
            if early > 0 and late > self.explode * early:
                out.insert(0, self.finding(
                    "gan_loss_explodes", "warning", f"GAN: the {who}'s loss explodes ({fmt(early)} -> {fmt(late)})",
                    summary=f"{what.capitalize()} rose from a median of {fmt(early)} early to {fmt(late)} late, "
                            f"{late / early:.0f}x: that network's training has diverged.",
                    evidence=ev, details=details, score=float(late / early),
                    actions=["Lower that network's learning rate, add gradient clipping or a gradient penalty.",
                             "Check the samples at the step where it starts."]))
                return out
        if g_climbs:
            out.insert(0, self.finding(
                "gan_generator_loss_climbs", "info",
                f"GAN: the generator's loss climbs ({fmt(g_early)} -> {fmt(g_late)}) while the discriminator's holds",
                summary=f"{g_what.capitalize()} rose {g_late / g_early:.1f}x, from a median of {fmt(g_early)} "
                        f"({g_span[0]}) to {fmt(g_late)} ({g_span[1]}), while {d_what} went {fmt(d_early)} -> "
                        f"{fmt(d_late)}, not near 0: the discriminator is getting ahead but has not won.",
                evidence=ev, details=details, score=float(g_late / g_early)))
            return out
        out.insert(0, self.finding(
            "gan_balanced", "ok", "GAN losses stay in balance",
            summary=f"{d_what.capitalize()} went {fmt(d_early)} -> {fmt(d_late)} (median, first vs last "
                    f"{self.window_frac:.0%} of the points) and {g_what} {fmt(g_early)} -> {fmt(g_late)}: neither "
                    f"network overpowers the other.", details=details))
        return out

    def _generator(self, run: Run, cat) -> tuple[pd.DataFrame, str]:
        comps = cat[(cat["network"] == "generator") & (cat["role"] == "component")
                    & ((cat["phase"] == "train") | cat["phase"].isna())]
        adv = [n for n in comps["name"].astype(str) if _ADVERSARIAL.search(n)]
        if adv and len(set(comps["name"])) > 1:
            c = curve(run, "train", adv[0])
            c.attrs["series"] = f"the generator's adversarial loss '{adv[0]}'"
            return c, c.attrs["series"]
        c = curve(run, "train", network="generator")
        return c, c.attrs.get("series", "the generator loss")

    def _windows(self, c: pd.DataFrame) -> tuple[float, float, tuple[str, str]]:
        v = c["value"].to_numpy(dtype="float64")
        k = max(1, int(np.ceil(len(v) * self.window_frac)))
        early, late = float(np.median(v[:k])), float(np.median(v[-k:]))
        return early, late, (f"{c['where'].iloc[0]} to {c['where'].iloc[k - 1]}",
                             f"{c['where'].iloc[-k]} to {c['where'].iloc[-1]}")

    @staticmethod
    def _evidence(g: pd.DataFrame, d: pd.DataFrame) -> pd.DataFrame:
        n = min(len(g), len(d))
        idx = np.unique(np.linspace(0, n - 1, min(n, 30)).round().astype(int))
        return pd.DataFrame({"where": g["where"].to_numpy()[idx],
                             "generator": g["value"].to_numpy(dtype="float64")[idx],
                             "discriminator": d["value"].to_numpy(dtype="float64")[idx]})

    def _caveat(self) -> Finding:
        return self.finding(
            "gan_mode_collapse_unknown", "info", "GAN: losses alone cannot show mode collapse",
            summary="A generator that produces the same few outputs for every input can keep its losses looking "
                    "normal, and a diverse one can have alarming losses: sample diversity is not in the logs. "
                    "Neither a collapse nor its absence is claimed here.",
            actions=["Compare a grid of samples from several checkpoints, or compute a diversity metric "
                     "(FID/precision-recall, LPIPS between samples of different inputs)."])
