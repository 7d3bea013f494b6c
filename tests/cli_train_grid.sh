#!/usr/bin/env bash
# cli_train_grid.sh: bafu train with its automatic step, and with --control,
# trains without divergence at the corners of its range (theory/presets.md
# 5.1): the grid of tests/train_grid.sh, which defines "without divergence"
# (exit 0, every 10-step mean batch loss below 3 F_0, the last 50 steps' mean
# below 1.05 F_0, over the first 200 steps; runs whose last 50 steps are not
# below F_0 are counted as stalled).
#   cli_train_grid.sh BAFU          seed 1: the four presets, with and without
#       control, MLP and ResNet, Fashion-MNIST and the teacher task, at (width,
#       depth) = (32, 1), (32, 64) and (512, 1): 96 runs, 118 s of CPU time
#       (release build; about a minute on two idle cores)
#   cli_train_grid.sh BAFU --full   seeds 1-5 and the corner (512, 64) as well:
#       640 runs, over an hour on two cores (ctest -L long, in a build
#       configured with -DBAFU_LONG_TESTS=ON)
set -u
BAFU=${1:?usage: cli_train_grid.sh path/to/bafu [--full]}
here=$(cd "$(dirname "$0")" && pwd)
if [[ ${2:-} == --full ]]; then
  exec bash "$here/train_grid.sh" "$BAFU" QUIET=1
fi
exec bash "$here/train_grid.sh" "$BAFU" CORNERS="32x1 32x64 512x1" SEED=1 QUIET=1
