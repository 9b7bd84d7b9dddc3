/*
 * gatehouse SDK, ABI v1 -- what a module implements: its descriptor and hook tables.
 *
 * Lifecycle, in order (main thread unless said otherwise):
 *   entry point  -> returns the static descriptor; must not allocate or do I/O
 *   load         -> once per process; no I/O; registers metrics
 *   config_parse -> pure and repeatable (used by `gatehouse check` and by reload); may run while
 *                   an older config generation still serves traffic, so keep no config in globals
 *   activate     -> side effects for one generation (open files, start background tasks)
 *   route_config_parse -> once per route that lists the filter (merged over the module table)
 *   worker_init / worker_exit -> on each worker thread, per generation
 *   deactivate   -> the generation is drained; then config_free / route_config_free
 *   destroy      -> once, at exit
 * Every hook may be NULL (not needed). Exceptions must never leave a hook.
 */
#ifndef GATEHOUSE_MODULE_H
#define GATEHOUSE_MODULE_H

#include "gatehouse/host.h"
#include "gatehouse/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Filters: HTTP phase hooks. Called on the stream's worker thread. */
typedef struct gh_filter_v1 {
    uint32_t struct_size;
    uint32_t phases;              /* GH_PHASE_BIT() mask of the phases on_phase wants */
    uint32_t response_body_class; /* GH_BODY_CLASS_*; orders response body filters */
    uint32_t reserved;
    /* A header/control phase. `route_config` is what route_config_parse returned (or the module
     * config for REQUEST_HEADERS, which runs before routing). Returns a gh_action_t. In LOG and
     * STREAM_END the return value is ignored.
     * Thread: the stream's worker; must not block. Ownership: `s` is the kernel's, valid until
     * STREAM_END returns; `route_config` is the module's and outlives the stream. */
    gh_action_t (*on_phase)(gh_stream_t *s, uint32_t phase, void *route_config);
    /* A body chunk in a direction the filter subscribed to. Returns GH_BODY_*.
     * Thread: the stream's worker; must not block. Ownership: `chunk` and its data are borrowed
     * for this call only (the kernel reuses the buffer): copy what you keep. */
    int32_t (*on_body)(gh_stream_t *s, uint32_t direction, const gh_body_chunk_t *chunk,
                       void *route_config);
} gh_filter_v1;

/* Balancers: peer selection for upstream pools whose `balancer` names this module. The kernel
 * owns peers, health and in-flight counts; select must be fast and must not block. Called on any
 * worker thread concurrently: shared state must be atomic. */
typedef struct gh_balancer_v1 {
    uint32_t struct_size;
    uint32_t reserved;
    /* Once per pool per config generation; non-GH_OK refuses the config.
     * Thread: main. Ownership: `pool` is the kernel's, valid until pool_free; *pool_state is the
     * module's, given back to pool_free. */
    gh_status_t (*pool_init)(void *config, const gh_pool_t *pool, void **pool_state);
    /* The pool's generation is gone: free the pool state.
     * Thread: main. Ownership: the module frees `pool_state`; the pool handle is invalid after. */
    void (*pool_free)(void *pool_state);
    /* Choose an eligible peer; GH_ERR_NOT_FOUND if none (the kernel then answers 502).
     * Thread: any worker, concurrently. Ownership: `ctx` (and its `eligible` array) is borrowed
     * for the call; ctx->stream only for read-only host calls during it. */
    gh_status_t (*select)(void *pool_state, const gh_pool_t *pool, const gh_select_ctx_t *ctx,
                          uint32_t *peer);
    /* The outcome of each attempt on a peer this balancer chose. May be NULL.
     * Thread: any worker, concurrently. Ownership: `outcome` is borrowed for the call. */
    void (*report)(void *pool_state, const gh_pool_t *pool, const gh_outcome_t *outcome);
} gh_balancer_v1;

typedef struct gh_module_v1 {
    uint32_t struct_size;
    uint32_t abi_major; /* GH_ABI_MAJOR the module was built with */
    uint32_t abi_minor; /* GH_ABI_MINOR the module was built with (its minimum kernel) */
    uint32_t kinds;     /* GH_KIND_* mask */
    const char *name;   /* static, NUL-terminated; equals the file stem (NAME.so) */
    const char *version;
    const char *description;

    /* Once per process. `self` identifies the module in host calls. *state is passed to later
     * hooks as `module_state`. Non-GH_OK refuses the module.
     * Thread: main; no I/O. Ownership: `self` is the kernel's, valid until destroy; *state is
     * the module's, given back to destroy. */
    gh_status_t (*load)(gh_module_t *self, void **state);
    /* Parse and validate the module's table ([filter.NAME] / [balancer.NAME]; an empty table if
     * absent). Errors are recorded with host->cfg_error; return non-GH_OK after recording.
     * Thread: main; pure, no side effects. Ownership: `table` and every node and string from it
     * are the kernel's, valid until this hook returns; *config is the module's. */
    gh_status_t (*config_parse)(void *module_state, const gh_config_node_t *table,
                                void **config);
    /* Free a config from config_parse: after deactivate, or unactivated (a refused reload).
     * Thread: main. Ownership: the module frees `config`. */
    void (*config_free)(void *module_state, void *config);
    /* Side effects for one generation (open files, start background tasks); non-GH_OK refuses
     * the generation. Thread: main. Ownership: `config` stays the module's. */
    gh_status_t (*activate)(void *module_state, void *config);
    /* The generation is drained (only if activate succeeded); stop its tasks.
     * Thread: main. Ownership: `config` stays the module's until config_free. */
    void (*deactivate)(void *module_state, void *config);
    /* A route's own table for this filter (`route.filter_config.NAME`), or NULL if the route has
     * none: return a route config that merges it over `config`.
     * Thread: main. Ownership: `table` as in config_parse; *route_config is the module's, given
     * back to route_config_free (unless it is `config` itself). */
    gh_status_t (*route_config_parse)(void *module_state, void *config,
                                      const gh_config_node_t *table, void **route_config);
    /* Free a route config, before the module config it was merged over.
     * Thread: main. Ownership: the module frees `route_config`. */
    void (*route_config_free)(void *module_state, void *route_config);
    /* A generation starts on this worker (host->current_worker() is valid).
     * Thread: each worker thread, once per generation. Ownership: `config` stays the module's. */
    void (*worker_init)(void *module_state, void *config);
    /* A generation ends on this worker (retired after a reload, or shutdown).
     * Thread: each worker thread. Ownership: `config` stays the module's. */
    void (*worker_exit)(void *module_state, void *config);
    /* Once, at exit, after every config was freed.
     * Thread: main. Ownership: the module frees `module_state`; `self` is invalid after. */
    void (*destroy)(void *module_state);

    const gh_filter_v1 *filter;     /* non-NULL iff kinds has GH_KIND_FILTER */
    const gh_balancer_v1 *balancer; /* non-NULL iff kinds has GH_KIND_BALANCER */
} gh_module_v1;

/* The entry point. The kernel calls it once with its host table and gets the module's static
 * descriptor back. It must not fail, allocate or do I/O.
 * Thread: main. Ownership: the table is the kernel's, valid until destroy returns; the
 * descriptor (and its filter/balancer tables) is the module's and must be static. */
typedef const gh_module_v1 *(*gh_entry_v1_fn)(const gh_host_api_v1 *host);

#if defined(__GNUC__)
#define GH_EXPORT __attribute__((visibility("default")))
#else
#define GH_EXPORT
#endif

#ifdef __cplusplus
}
#endif
#endif /* GATEHOUSE_MODULE_H */
