#ifndef CLIBUV_SHIM_H
#define CLIBUV_SHIM_H
#include <uv.h>

/// uv_loop_configure is variadic, which Swift cannot call: this turns on the loop's idle-time
/// metric (uv_metrics_idle_time), the basis of the loop-utilisation stat.
static inline int clibuv_enable_idle_time(uv_loop_t *loop) {
    return uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
}
#endif
