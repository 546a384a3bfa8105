/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The process (main.c): configuration, the control loop on the main
 * thread, the workers and the reloader. The status handler (metrics.c)
 * reads it.
 */
#ifndef SC_MAIN_H
#define SC_MAIN_H

#include <stdbool.h>

#include "duet/loop.h"
#include "cfg.h"
#include "reload.h"
#include "worker.h"

struct sc_app {
    struct sc_cfg cfg;
    struct duet_loop *loop; /* main thread */
    unsigned n_workers;
    struct sc_worker *workers[SC_MAX_WORKERS];
    int main_fd;       /* eventfd: worker -> main "I have finished" */
    unsigned finished; /* atomic */
    bool ready_listeners;
    struct sc_reload *reload;
};

#endif
