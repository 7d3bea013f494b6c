/* bafu/bafu.h: the whole public API of libbafu in one include.
 *
 *   #include <bafu/bafu.h>
 *   cc prog.c $(pkg-config --cflags --libs bafu)
 *
 * Nothing needs initialising: the library switches GSL's abort()ing error
 * handler off when it is loaded (unless the program installs its own), so GSL
 * failures come back as bafu_status errors. Only bafu_* symbols are exported. */
#ifndef BAFU_BAFU_H
#define BAFU_BAFU_H

#include "bafu/version.h"
#include "bafu/status.h"
#include "bafu/act.h"
#include "bafu/rng.h"
#include "bafu/net.h"
#include "bafu/layout.h"
#include "bafu/gcond.h"
#include "bafu/mc.h"
#include "bafu/moments.h"
#include "bafu/kernel.h"
#include "bafu/outangle.h"
#include "bafu/spectrum.h"
#include "bafu/preset.h"
#include "bafu/train.h"
#include "bafu/idx.h"
#include "bafu/sweep.h"
#include "bafu/table.h"
#include "bafu/text.h"
#include "bafu/tabread.h"
#include "bafu/reduce.h"

#endif
