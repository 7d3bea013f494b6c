"""Figure 1 of the README with matplotlib: the backward-feature angle
cos(theta_l) against the layer l at depth 64, infinite-width theory (lines)
and finite-width Monte Carlo (points, +-1 standard error), for a ReLU MLP,
a tanh MLP and a ReLU ResNet with beta = 1/sqrt(L): the curves of
plots/fig1_angle_vs_layer.gp (data/fig1_*.dat, made by `bafu figures`).

    python3 python/examples/fig1.py                  # width 1024, 16 draws (as the README's figure)
    python3 python/examples/fig1.py --quick          # width 256, 4 draws: a few seconds
    python3 python/examples/fig1.py --out fig1.pdf --threads 2
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # bafu of this checkout
import bafu  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

NETWORKS = [  # (label, options): those of figure 1 (src/cli/cmd_figures.c)
    ("ReLU MLP", dict(arch="mlp", act="relu", sigma_w2=2.0)),
    ("tanh MLP", dict(arch="mlp", act="tanh", sigma_w2=1.5)),
    (r"ReLU ResNet $\beta = 1/\sqrt{L}$", dict(arch="resnet", act="relu", sigma_w2=2.0)),
]
COLOURS = ["#1f77b4", "#d62728", "#2ca02c"]
MARKERS = ["o", "s", "D"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="width 256 and 4 draws")
    ap.add_argument("--depth", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="fig1_angle_vs_layer.png")
    a = ap.parse_args()
    width, seeds = (256, 4) if a.quick else (1024, 16)

    fig, ax = plt.subplots(figsize=(9, 6))
    for (label, net), colour, marker in zip(NETWORKS, COLOURS, MARKERS):
        th = bafu.theory(width=width, depth=a.depth, **net)
        mc = bafu.mc(width=width, depth=a.depth, seeds=seeds, seed=a.seed, threads=a.threads, **net)
        ax.plot(th["layer"], th["cos_theta"], color=colour, lw=2, label=label + ": theory")
        ax.errorbar(mc["layer"], mc["cos_theta"], yerr=mc["cos_theta_se"], fmt=marker, ms=3, color=colour,
                    capsize=2, label=label + ": Monte Carlo")
    ax.set_xlabel("layer l")
    ax.set_ylabel(r"$\cos\theta_l$")
    ax.set_xlim(0, a.depth + 1)
    ax.set_ylim(0, 1.02)
    ax.grid(color="#dddddd")
    ax.set_title("Backward-feature angle per layer (depth %d, width %d, %d draws)" % (a.depth, width, seeds))
    ax.legend(loc="center right")
    fig.tight_layout()
    fig.savefig(a.out, dpi=100)
    print(a.out)


if __name__ == "__main__":
    main()
