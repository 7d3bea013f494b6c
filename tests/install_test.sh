#!/usr/bin/env bash
# install_test.sh BUILD_DIR SOURCE_DIR: cmake --install into a temporary prefix,
# then build tests/consumer/example.c against the installed copy twice, with
# pkg-config (shared library) and with CMake's find_package (static library),
# and run both; check that the manual pages and headers are installed.
set -u
build=${1:?usage: install_test.sh BUILD_DIR SOURCE_DIR} src=${2:?}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
if cmake --install "$build" --prefix "$dir/prefix" >"$dir/install.log" 2>&1; then ok; else bad "cmake --install"; cat "$dir/install.log"; exit 1; fi
p=$dir/prefix
for f in bin/bafu include/bafu/net.h include/bafu/train.h share/man/man1/bafu.1 share/man/man3/libbafu.3; do
  [[ -s $p/$f ]] && ok || bad "$f not installed"
done
lib=$(ls -d "$p"/lib*/ | head -1)
[[ -e $lib/libbafu.a && -e $lib/libbafu.so ]] && ok || bad "libbafu.a and libbafu.so not both installed in $lib"
# the manual pages render and document every subcommand
if man -l "$p/share/man/man1/bafu.1" 2>/dev/null | grep -q "bafu train" || grep -q '^\.SS bafu train' "$p/share/man/man1/bafu.1"; then ok; else bad "bafu.1 lacks bafu train"; fi
grep -q 'bafu_net_update' "$p/share/man/man3/libbafu.3" && ok || bad "libbafu.3 lacks bafu_net_update"
# pkg-config, shared library
export PKG_CONFIG_PATH=$lib/pkgconfig
if cc -std=c11 -O2 -o "$dir/ex_pc" "$src/tests/consumer/example.c" $(pkg-config --cflags --libs bafu) -lm 2>"$dir/cc.log"; then
  if LD_LIBRARY_PATH=$lib "$dir/ex_pc"; then ok; else bad "pkg-config build: the example failed"; fi
  ldd "$dir/ex_pc" | grep -q "$lib/libbafu.so" 2>/dev/null || LD_LIBRARY_PATH=$lib ldd "$dir/ex_pc" | grep -q "libbafu.so" && ok || bad "pkg-config build does not use libbafu.so"
else
  bad "pkg-config build"; cat "$dir/cc.log"
fi
# CMake find_package, static library
if cmake -S "$src/tests/consumer" -B "$dir/cb" -DCMAKE_PREFIX_PATH="$p" >"$dir/cm.log" 2>&1 &&
   cmake --build "$dir/cb" >>"$dir/cm.log" 2>&1; then
  if "$dir/cb/example"; then ok; else bad "CMake build: the example failed"; fi
else
  bad "CMake build"; cat "$dir/cm.log"
fi
# the shared library exports the bafu_* API and nothing else
others=$(nm -D --defined-only "$lib/libbafu.so" | awk '{print $3}' | grep -v '^bafu_')
[[ -z $others ]] && ok || bad "libbafu.so exports symbols outside bafu_*: $(echo $others | head -c 300)"
[[ -s $p/include/bafu/version.h && -s $p/include/bafu/bafu.h ]] && ok || bad "bafu/version.h or bafu/bafu.h not installed"
# every public header is C++-ready (extern "C"): a C++ program calls the C API
if command -v c++ >/dev/null; then
  printf '#include <bafu/bafu.h>\n#include <cstring>\nint main() { bafu_net_params p = bafu_net_params_default(); return std::strcmp(bafu_version(), BAFU_VERSION_STRING) != 0 || bafu_net_params_check(&p) != BAFU_OK; }\n' >"$dir/cxx.cpp"
  if c++ -o "$dir/cxx" "$dir/cxx.cpp" $(pkg-config --cflags --libs bafu) 2>"$dir/cxx.log" && LD_LIBRARY_PATH=$lib "$dir/cxx"; then ok
  else bad "a C++ program using <bafu/bafu.h>: $(head -5 "$dir/cxx.log")"; fi
else
  bad "no C++ compiler (c++) to check the headers' extern \"C\" guards (Debian: build-essential)"
fi
# self-contained: the scripts, the derivations and the completion are installed, and the
# installed bafu names and uses its own copies, not the source tree's
for f in share/bafu/plots/common.gp share/bafu/plots/fig1_angle_vs_layer.gp share/bafu/plots/fig9_lr_transfer_mlp_sp.quick.grid share/bafu/plots/fig1_angle_vs_layer.fig share/doc/bafu/theory/engine.md \
         share/doc/bafu/theory/moments.md share/bash-completion/completions/bafu; do
  [[ -s $p/$f ]] && ok || bad "$f not installed"
done
"$p/bin/bafu" --help | grep -qF "$p/bin/../share/doc/bafu/theory" && ok || bad "the installed bafu --help does not name its installed derivations"
"$p/bin/bafu" --help | grep -qF "$p/bin/../share/bafu/plots" && ok || bad "the installed bafu --help does not name its installed gnuplot scripts"
grep -q "$src" "$p/share/man/man1/bafu.1" && bad "bafu.1 names the source tree" || ok
# the completion completes commands, options and choices
comp() { bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _bafu; echo "${COMPREPLY[*]}"' _ "$p/share/bash-completion/completions/bafu" "$@"; }
[[ $(comp bafu tr) == train ]] && ok || bad "completion of 'bafu tr': '$(comp bafu tr)'"
[[ $(comp bafu mc --block-d) == --block-depth ]] && ok || bad "completion of 'bafu mc --block-d': '$(comp bafu mc --block-d)'"
[[ $(comp bafu mc --act ta) == tanh ]] && ok || bad "completion of 'bafu mc --act ta': '$(comp bafu mc --act ta)'"
[[ $(comp bafu help spe) == spectrum ]] && ok || bad "completion of 'bafu help spe': '$(comp bafu help spe)'"
# the command line in the installed libbafu.so (what the Python package calls): it runs a
# command and names the installed shared files (next to the library), not the source tree's
if command -v cc >/dev/null; then
  printf '#include <bafu/cli.h>\nint main(void) { char *a[] = {"bafu", "--help", 0}; return bafu_cli_run(2, a); }\n' >"$dir/run.c"
  if cc -std=c11 -o "$dir/run" "$dir/run.c" $(pkg-config --cflags --libs bafu) 2>"$dir/run.log" &&
     LD_LIBRARY_PATH=$lib "$dir/run" >"$dir/run.out"; then
    grep -qF "${lib%/}/../share/bafu/plots" "$dir/run.out" && ok || bad "bafu_cli_run in libbafu.so does not name the installed scripts: $(tail -1 "$dir/run.out")"
  else
    bad "a program calling bafu_cli_run of the installed libbafu.so: $(head -3 "$dir/run.log")"
  fi
fi
echo "install_test: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
