#!/bin/sh
# man.sh BAFU INCLUDE_DIR VERSION OUT_DIR: write OUT_DIR/bafu.1 and
# OUT_DIR/libbafu.3. bafu(1) is made of the executable's own --help texts (the
# option tables are the one source of every option, default and unit);
# libbafu(3) of the public headers, whose comments are the API contracts.
set -eu
bafu=$1 inc=$2 version=$3 out=$4
# roff-escape a text block for a no-fill section: backslashes, and lines that
# would start with a control character
esc() { sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"; }
{
  printf '.TH BAFU 1 "" "bafu %s" "User Commands"\n' "$version"
  printf '.SH NAME\nbafu \\- backward aligned feature updates and the feature speed formula\n'
  printf '.SH SYNOPSIS\n.B bafu\n\\fIcommand\\fR [\\fIoptions\\fR]\n.br\n.B bafu\n\\fIcommand\\fR \\-\\-help\n.br\n.B bafu \\-\\-version\n'
  printf '.SH DESCRIPTION\n.nf\n'
  "$bafu" --help | sed "/^Shared files:/,\$d" | esc
  printf ".fi\n.SH FILES\n.nf\nPREFIX/share/doc/bafu/theory/*.md   the derivations the help texts cite\nPREFIX/share/bafu/plots/*.gp        the gnuplot scripts of bafu figures\nPREFIX/share/bash-completion/completions/bafu   bash completion\n.fi\n.nf\n"
  printf '.fi\n.SH COMMANDS\n'
  for cmd in $("$bafu" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }'); do
    printf '.SS bafu %s\n.nf\n' "$cmd"
    "$bafu" "$cmd" --help | esc
    printf '.fi\n'
  done
  printf '.SH EXIT STATUS\n0 on success, 1 when a run fails (numerical failure, unwritable output), 2 for a usage error.\n'
  printf '.SH SEE ALSO\n.BR libbafu (3);\nthe derivations in the theory/ folder of the source tree.\n'
} >"$out/bafu.1.tmp"
mv "$out/bafu.1.tmp" "$out/bafu.1"
{
  printf '.TH LIBBAFU 3 "" "bafu %s" "Library Functions"\n' "$version"
  printf '.SH NAME\nlibbafu \\- theory and finite-width Monte Carlo of feature learning in deep networks\n'
  printf '.SH SYNOPSIS\n.nf\n#include <bafu/net.h>   (and the other headers below)\n\ncc prog.c $(pkg\\-config \\-\\-cflags \\-\\-libs bafu)\n'
  printf 'CMake: find_package(bafu) and target_link_libraries(prog bafu::bafu_shared)\n.fi\n'
  printf '.SH DESCRIPTION\nEvery fallible function returns a \\fBbafu_status\\fR (bafu/status.h) and records a\n'
  printf 'thread-local message (\\fBbafu_last_error\\fR). The headers follow, each with its contract comments.\n'
  for h in "$inc"/*.h; do
    printf '.SS <bafu/%s>\n.nf\n' "$(basename "$h")"
    # the include guard is not part of the contract
    grep -v -e '^#ifndef BAFU_[A-Z_]*_H$' -e '^#define BAFU_[A-Z_]*_H$' "$h" | sed '$ { /^#endif/d; }' | esc
    printf '.fi\n'
  done
  printf '.SH SEE ALSO\n.BR bafu (1)\n'
} >"$out/libbafu.3.tmp"
mv "$out/libbafu.3.tmp" "$out/libbafu.3"
