#!/usr/bin/env bash
# cli_figures_train.sh: the figures that train (figure 8, Fashion-MNIST), quick,
# interrupted during a training stage and resumed: tables equal to
# tests/golden/figures, images made (cli_figures.sh --train). SKIP without the
# data set.
exec bash "$(dirname "$0")/cli_figures.sh" "${1:?usage: cli_figures_train.sh path/to/bafu}" --train
