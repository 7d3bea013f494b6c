/* planner.h: FFTW's planner (plan creation and destruction) is not
 * thread-safe, and its state is global to the process: every module of the
 * library that makes or destroys plans does so between planner_lock() and
 * planner_unlock() (one lock for all of them). fftw_execute on distinct
 * plans needs no lock. Internal to the library. */
#ifndef BAFU_PLANNER_H
#define BAFU_PLANNER_H

void planner_lock(void);
void planner_unlock(void);

#endif
