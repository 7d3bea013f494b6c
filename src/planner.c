/* planner.c: the one lock around FFTW's planner (planner.h). */
#include "planner.h"

#include <pthread.h>

static pthread_mutex_t planner = PTHREAD_MUTEX_INITIALIZER;

void planner_lock(void) { pthread_mutex_lock(&planner); }
void planner_unlock(void) { pthread_mutex_unlock(&planner); }
