/*
 * gatehouse SDK, ABI v1 -- the host API: functions the kernel implements for modules.
 *
 * The kernel passes a pointer to one gh_host_api_v1 table to the entry point; it stays valid until
 * the module is destroyed. Functions appended in a later minor are present only when
 * `struct_size` covers them: check with GH_HOST_HAS(host, field) before calling one that is newer
 * than the SDK you require (the C++ wrapper does this for you).
 *
 * Every function below has a "Thread:" line (where it may be called) and an "Ownership:" line
 * (who owns what goes in and comes out, and for how long). The general rules they refine:
 * Threads: call a function only on the thread that invoked the hook you are in (a worker thread
 * for stream functions, the main thread for config/lifecycle hooks) unless it says otherwise.
 * Ownership: strings passed in are copied by the kernel before the call returns; strings handed
 * out are borrowed views valid as documented on each function; the kernel never frees a pointer
 * the module gave it (`arg`, contexts), and the module never frees a kernel handle.
 *
 * "Until the phase ends" means until the kernel moves on from the phase in which the call was
 * made: after the last filter's hook for it returned (or, for a hook that returned GH_PAUSE,
 * after its stream_resume), and never past STREAM_END. Inside on_body it means until on_body
 * returns.
 */
#ifndef GATEHOUSE_HOST_H
#define GATEHOUSE_HOST_H

#include "gatehouse/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gh_host_api_v1 {
    uint32_t struct_size;
    uint32_t abi_major; /* the kernel's ABI version */
    uint32_t abi_minor;
    uint32_t reserved;
    gh_str_t kernel_version; /* e.g. "0.1.0"; static */

    /* ---- logging ---- */
    /* Write one line at `level` (GH_LOG_*; higher values count as DEBUG), tagged with the module.
     * Thread: any. Ownership: `msg` is copied before the call returns. */
    void (*log)(gh_module_t *self, uint32_t level, gh_str_t msg);

    /* ---- config nodes: main thread, during config_parse / route_config_parse only. ----
     * Every key a module reads through cfg_get is "known"; after the hook returns, the kernel
     * reports keys present in the table that the module never asked for as errors (with a
     * "did you mean" from the keys it did ask for). Nodes, keys and strings handed out belong to
     * the kernel and are valid until that hook returns. */
    /* The node's GH_CFG_* type (GH_CFG_NONE for NULL).
     * Thread: main, inside a config hook. Ownership: nothing is handed out. */
    uint32_t (*cfg_type)(const gh_config_node_t *node);
    /* Child of a table by key, or NULL if absent (the key still becomes known).
     * Thread: main, inside a config hook. Ownership: `key` copied; the child node is the
     * kernel's, valid until the hook returns. */
    const gh_config_node_t *(*cfg_get)(const gh_config_node_t *table, gh_str_t key);
    /* Number of entries of a table or array; 0 for scalars.
     * Thread: main, inside a config hook. Ownership: nothing is handed out. */
    size_t (*cfg_size)(const gh_config_node_t *node);
    /* Element i of an array, or entry i of a table (key written to *key if not NULL; the key
     * becomes known). NULL past the end.
     * Thread: main, inside a config hook. Ownership: node and key view are the kernel's, valid
     * until the hook returns. */
    const gh_config_node_t *(*cfg_at)(const gh_config_node_t *node, size_t i, gh_str_t *key);
    /* A string. GH_ERR_INVALID (and an error recorded at the node) for any other type.
     * Thread: main, inside a config hook. Ownership: the view is the kernel's, valid until the
     * hook returns; copy it into your config. */
    gh_status_t (*cfg_string)(const gh_config_node_t *node, gh_str_t *out);
    /* An integer. GH_ERR_INVALID (and an error recorded at the node) for any other type.
     * Thread: main, inside a config hook. Ownership: fills *out (the caller's). */
    gh_status_t (*cfg_int)(const gh_config_node_t *node, int64_t *out);
    /* A float; a TOML integer is accepted and converted. GH_ERR_INVALID as cfg_int.
     * Thread and ownership: as cfg_int. */
    gh_status_t (*cfg_float)(const gh_config_node_t *node, double *out);
    /* A boolean as 1 or 0. GH_ERR_INVALID as cfg_int.
     * Thread and ownership: as cfg_int. */
    gh_status_t (*cfg_bool)(const gh_config_node_t *node, int32_t *out);
    /* "250ms", "5s", "2m", "1h", "1d" or an integer of milliseconds.
     * Thread and ownership: as cfg_int. */
    gh_status_t (*cfg_duration_ms)(const gh_config_node_t *node, uint64_t *out);
    /* "512", "64k", "10m", "1g" (powers of 1024) or an integer of bytes.
     * Thread and ownership: as cfg_int. */
    gh_status_t (*cfg_bytes)(const gh_config_node_t *node, uint64_t *out);
    /* Record an error at this node; the kernel prints "file:line: [key.path] message" and the
     * config is refused.
     * Thread: main, inside a config hook. Ownership: `message` copied. */
    void (*cfg_error)(const gh_config_node_t *node, gh_str_t message);

    /* ---- metrics ---- */
    /* Register a GH_METRIC_* metric. `name` must match [a-z_][a-z0-9_]*; the kernel prefixes
     * "gatehouse_". Label names are fixed here; buckets (histograms) are upper bounds in
     * increasing order. NULL on a bad name or a conflicting registration; registering the same
     * name with the same shape again (a reload) returns the same handle.
     * Thread: main (load, config or activate hooks). Ownership: every argument is copied; the
     * metric is the kernel's, valid until the module is destroyed (never freed by the module). */
    gh_metric_t *(*metric_register)(gh_module_t *self, uint32_t type, gh_str_t name, gh_str_t help,
                                    const gh_str_t *label_names, size_t label_count,
                                    const double *buckets, size_t bucket_count);
    /* Record `value` with `op` (GH_METRIC_ADD/SET/OBSERVE); label values in registration order
     * (a wrong count records nothing).
     * Thread: any. Ownership: label values copied before the call returns. */
    void (*metric_record)(gh_metric_t *metric, uint32_t op, const gh_str_t *label_values,
                          size_t label_count, double value);

    /* ---- streams: worker thread of the stream, inside a hook or a completion for it ----
     * The gh_stream_t handle is valid until STREAM_END returns (see types.h). */
    /* Read a GH_FACT_*. GH_ERR_INVALID for an unknown fact; a fact not known yet (the peer before
     * selection) is empty with GH_OK.
     * Thread: the stream's worker. Ownership: the view is the kernel's, valid until the phase
     * ends; copy what you keep longer. GH_FACT_PEER_ADDR changes when a retry picks another
     * server. */
    gh_status_t (*stream_get)(gh_stream_t *s, uint32_t fact, gh_str_t *out);
    /* Value of the index-th field named `name` (case-insensitive); GH_ERR_NOT_FOUND if absent.
     * Thread: the stream's worker. Ownership: `name` is only read during the call; the view is
     * the kernel's, valid until that header block is modified (header_set, respond) or the
     * phase ends. */
    gh_status_t (*header_get)(gh_stream_t *s, uint32_t which, gh_str_t name, size_t index,
                              gh_str_t *value);
    /* Number of fields in a header block (0 for an unknown `which`).
     * Thread: the stream's worker. Ownership: nothing is handed out. */
    size_t (*header_count)(gh_stream_t *s, uint32_t which);
    /* Field i in wire order (name and/or value; either pointer may be NULL); GH_ERR_NOT_FOUND
     * past the end.
     * Thread: the stream's worker. Ownership: views as header_get. */
    gh_status_t (*header_at)(gh_stream_t *s, uint32_t which, size_t i, gh_str_t *name,
                             gh_str_t *value);
    /* GH_HEADER_SET / ADD / REMOVE. Request headers may be changed up to UPSTREAM_REQUEST,
     * response headers in RESPONSE_HEADERS (GH_ERR_STATE otherwise). Names and values are
     * validated (no CR, LF, NUL; token names): GH_ERR_INVALID. Content-Length and
     * Transfer-Encoding (and removing Host) belong to the kernel: GH_ERR_INVALID.
     * Thread: the stream's worker. Ownership: name and value copied. */
    gh_status_t (*header_set)(gh_stream_t *s, uint32_t which, gh_str_t name, gh_str_t value,
                              uint32_t mode);
    /* The response status: a local reply's, else the upstream's (0 before one exists); in
     * UPSTREAM_ERROR the 502/503/504 the kernel would send.
     * Thread: the stream's worker. Ownership: nothing is handed out. */
    uint32_t (*response_status)(gh_stream_t *s);
    /* Prepare a local reply; the hook then returns GH_RESPOND. Allowed up to PRE_UPSTREAM, in
     * RESPONSE_HEADERS (replaces the upstream response) and (1.2) in UPSTREAM_ERROR. Status
     * 200..599, else GH_ERR_INVALID; framing headers are the kernel's (GH_ERR_INVALID).
     * Thread: the stream's worker. Ownership: headers and body copied. */
    gh_status_t (*respond)(gh_stream_t *s, uint32_t status, const gh_header_t *headers,
                           size_t header_count, gh_bytes_t body);

    /* ---- per-stream module context: one slot per (stream, module) ---- */
    /* The pointer this module stored with stream_set_ctx for this stream, or NULL.
     * Thread: the stream's worker. Ownership: the pointer is the module's; the kernel only keeps
     * it, and forgets it after STREAM_END. */
    void *(*stream_ctx)(gh_stream_t *s, gh_module_t *self);
    /* Store (or replace, or clear with NULL) this module's pointer for this stream; any phase.
     * Thread: the stream's worker. Ownership: the module keeps owning `ctx` and must free it by
     * STREAM_END at the latest; the kernel never frees it. */
    void (*stream_set_ctx)(gh_stream_t *s, gh_module_t *self, void *ctx);

    /* ---- async: resuming a paused stream ---- */
    /* After a hook returned GH_PAUSE, call this exactly once with the action the hook would have
     * returned (a call from inside that hook, before it returned, is ignored). The kernel
     * continues from a fresh call stack: it never calls back into the module from inside
     * stream_resume. Never call it after the stream's STREAM_END: the handle is gone.
     * Thread: the stream's worker (from a timer, post, offload or callout completion).
     * Ownership: nothing is handed out. */
    void (*stream_resume)(gh_stream_t *s, gh_action_t action);

    /* ---- bodies ---- */
    /* Subscribe to a body during a header phase (REQUEST_HEADERS/ACCESS for the request,
     * RESPONSE_HEADERS for the response). mode GH_BODY_STREAM or GH_BODY_BUFFER; the hold limit
     * and overflow policy come from the route (`body_limit`, `body_overflow`).
     * Thread: the stream's worker. Ownership: nothing is handed out. */
    gh_status_t (*body_subscribe)(gh_stream_t *s, gh_module_t *self, uint32_t direction,
                                  uint32_t mode);
    /* Emit bytes downstream of this filter, from inside on_body for that direction
     * (GH_ERR_STATE elsewhere).
     * Thread: the stream's worker, inside on_body. Ownership: `data` copied. */
    gh_status_t (*body_write)(gh_stream_t *s, uint32_t direction, gh_bytes_t data);
    /* The body held so far (GH_BODY_BUFFER, or what a response peek read), as one contiguous
     * view. With only GH_BODY_STREAM subscribers nothing is held: GH_OK and an empty view.
     * Thread: the stream's worker. Ownership: the kernel's view. Once the body is complete (or
     * the peek done: the GH_HOLD re-run) it stays valid until the phase ends; while body still
     * arrives the kernel appends between callbacks, so use it only before the hook returns (not
     * across GH_HOLD, nor from one on_body call to the next). */
    gh_status_t (*body_held)(gh_stream_t *s, uint32_t direction, gh_bytes_t *out);

    /* ---- workers, timers, offload, post ---- */
    /* The calling worker, or NULL off worker threads (main, admin, offload pool, your threads).
     * Thread: any. Ownership: the kernel's handle, valid until the kernel shuts down. */
    gh_worker_t *(*current_worker)(void);
    /* One-shot timer on the current worker: `fn(arg)` runs there after `delay_ms`, even if the
     * stream it was started for has ended. NULL off worker threads or for fn NULL.
     * Thread: a worker. Ownership: the handle is the kernel's, valid until fn has run or
     * timer_cancel was called; the kernel frees it. `arg` stays the module's. */
    gh_timer_t *(*timer_start)(uint64_t delay_ms, gh_task_fn fn, void *arg);
    /* Cancel before it fired: fn will not run. After it fired: invalid (the handle is gone).
     * Thread: the worker that started the timer. Ownership: the handle is gone after this call;
     * fn will not run, so free `arg` yourself if fn would have. */
    void (*timer_cancel)(gh_timer_t *timer);
    /* Run `work(arg)` on the kernel's thread pool (may block: disk, CPU), then `done(arg)` back on
     * the calling worker. GH_ERR_STATE off worker threads (then neither runs).
     * Thread: a worker. Ownership: `arg` stays the module's; the kernel only passes it on. The
     * stream may have ended before `done` runs: check your own flag. */
    gh_status_t (*offload)(gh_task_fn work, gh_task_fn done, void *arg);
    /* Run fn(arg) on `worker` (from current_worker) soon, never inside this call; GH_ERR_INVALID
     * for a NULL worker or fn.
     * Thread: any (the way back from your own threads). Ownership: `arg` stays the module's. */
    gh_status_t (*post)(gh_worker_t *worker, gh_task_fn fn, void *arg);
    /* Monotonic milliseconds.
     * Thread: any. Ownership: nothing is handed out. */
    uint64_t (*now_ms)(void);

    /* ---- callouts ---- */
    /* Send an HTTP request to a named [upstream.NAME] pool -- over TLS, verified as proxied
     * requests are, when the upstream has `tls = true`; Host is the upstream's `host` or the
     * server's address. `done` runs later on the same worker,
     * never inside this call. GH_ERR_STATE off worker threads, GH_ERR_NOT_FOUND for an unknown
     * upstream or no server, GH_ERR_INVALID for a bad request; then `done` never runs.
     * Thread: a worker. Ownership: request contents copied before the call returns; the response
     * handed to `done` (headers, body, error) is borrowed for that call only; `arg` stays yours. */
    gh_status_t (*callout)(const gh_callout_request_t *request, gh_callout_done_fn done,
                           void *arg);

    /* ---- pools (balancers): from pool_init (main thread) or select/report (any worker) ---- */
    /* Number of peers; fixed for the pool's lifetime.
     * Thread: inside pool_init, select or report. Ownership: nothing is handed out. */
    uint32_t (*pool_size)(const gh_pool_t *pool);
    /* Fills the prefix of *out its struct_size covers; GH_ERR_NOT_FOUND past the end.
     * Thread: inside pool_init, select or report. Ownership: *out is the caller's; its
     * `address` view is the kernel's, valid while the pool is (until pool_free). */
    gh_status_t (*pool_peer)(const gh_pool_t *pool, uint32_t index, gh_peer_info_t *out);
    /* The upstream's name (`[upstream.NAME]`).
     * Thread: inside pool_init, select or report. Ownership: the kernel's view, valid while the
     * pool is (until pool_free). */
    gh_str_t (*pool_name)(const gh_pool_t *pool);

    /* ---- 1.1 (check with GH_HOST_HAS) ---- */
    /* RESPONSE_HEADERS, after body_subscribe(GH_DIR_RESPONSE), before returning GH_HOLD: the
     * kernel then reads the response body without sending anything until it holds `bytes`
     * decoded bytes, the body ends, or the upstream pauses (nothing more waiting once some body
     * arrived), and calls this hook again. There body_held(GH_DIR_RESPONSE) shows the bytes
     * held and GH_FACT_RESPONSE_BODY tells whether that is the whole body; the bytes then go
     * through on_body as usual. The response head waits meanwhile, so ask only for what a
     * decision needs. (1.4) `bytes` = GH_PEEK_WHOLE holds the whole body instead, up to the
     * route's `body_limit` (see types.h): what a filter that must judge the body before its
     * head leaves (a WAF) asks for. Only GH_DIR_RESPONSE (GH_ERR_INVALID otherwise, or for 0 bytes);
     * GH_ERR_STATE outside RESPONSE_HEADERS, without the subscription, or when the response has
     * no body.
     * Thread: the stream's worker. Ownership: nothing is handed out (see body_held). */
    gh_status_t (*body_peek)(gh_stream_t *s, gh_module_t *self, uint32_t direction,
                             uint64_t bytes);

    /* ---- 1.2 (check with GH_HOST_HAS) ---- */
    /* A local reply whose body the module supplies later, piece by piece (a cache streaming an
     * object that is still arriving, a large file): like respond() -- same phases, same header
     * rules, the hook then returns GH_RESPOND -- but without the body. `length` is the body's
     * size, sent as Content-Length, or GH_LENGTH_UNKNOWN (chunked; close-delimited for HTTP/1.0
     * clients). The kernel sends the head, then whatever reply_write gives it. For HEAD
     * requests, 204 and 304 nothing of the body is sent (reply_write accepts and drops it).
     * Thread: the stream's worker. Ownership: headers copied. */
    gh_status_t (*respond_stream)(gh_stream_t *s, uint32_t status, const gh_header_t *headers,
                                  size_t header_count, uint64_t length);
    /* Body bytes for a respond_stream reply; GH_CHUNK_LAST in `flags` ends it (data may
     * be empty). Call from any callback on the stream's worker after the hook returned
     * GH_RESPOND, until the last piece -- never from inside another stream's hook for this one
     * before that. GH_ERR_STATE when the stream has no streamed reply, it already ended, or the
     * client went away (STREAM_END runs; stop writing). A body that ends short of, or runs past,
     * a declared `length` makes the kernel close the connection (the client sees a truncated
     * response, never a wrong one). The kernel buffers what the client has not taken yet:
     * bound what you write ahead.
     * Thread: the stream's worker. Ownership: `data` copied. A call that ends the body
     * (GH_CHUNK_LAST, GH_CHUNK_ABORT, bytes past `length`) may end the stream -- LOG and
     * STREAM_END run -- before it returns: touch neither the stream nor your context after it. */
    gh_status_t (*reply_write)(gh_stream_t *s, gh_bytes_t data, uint32_t flags);
    /* Serve requests to /modules/NAME/... on the admin listener ([admin], protected by the
     * address it binds): `fn(arg, request, response)` runs on the admin thread, one request at a
     * time, concurrently with the workers -- keep it short and thread-safe. One handler per
     * module; calling again replaces it, fn NULL removes it. Without a handler those paths are
     * 404.
     * Thread: main (load or activate). Ownership: `fn` and `arg` stay the module's and must stay
     * callable until removed or the module is destroyed; `request` is borrowed for the fn call,
     * `response` views need to live only until fn returns (copied). */
    gh_status_t (*admin_handle)(gh_module_t *self, gh_admin_fn fn, void *arg);
    /* Pacing for respond_stream bodies: `fn(arg)` runs on the stream's worker once everything
     * written so far has been handed to the socket -- or once the client went away (STREAM_END
     * then ran: check your own flag before touching the stream). Exactly once, never inside this
     * call. Write the next piece from there to keep at most one piece buffered. GH_ERR_STATE
     * without an active streamed reply (then fn never runs).
     * Thread: the stream's worker. Ownership: `arg` stays the module's. */
    gh_status_t (*reply_drained)(gh_stream_t *s, gh_task_fn fn, void *arg);

    /* ---- 1.3 (check with GH_HOST_HAS) ---- */
    /* Drive a non-blocking client library (hiredis, a module's own socket) on the calling
     * worker's event loop: `fn(arg, GH_FD_READ)` / `fn(arg, GH_FD_WRITE)` runs on that worker
     * whenever `fd` is readable / writable and that condition is in `events` -- level-triggered:
     * it runs again on the next loop turn while the condition holds, so read until EAGAIN or take
     * the condition out of `events`. Never inside fd_watch, fd_watch_set or fd_watch_cancel.
     * NULL off worker threads, for fn NULL, a negative fd, a descriptor the loop cannot watch
     * (a regular file) or one already watched on this worker.
     * Thread: a worker; the watch belongs to it (set and cancel only there). Ownership: the
     * descriptor stays the module's -- the kernel never reads, writes or closes it -- and must
     * stay open until fd_watch_cancel; cancel every watch by worker_exit. The handle is the
     * kernel's, valid until fd_watch_cancel. `arg` stays the module's. */
    gh_fd_watch_t *(*fd_watch)(int fd, uint32_t events, gh_fd_fn fn, void *arg);
    /* Replace the conditions watched (GH_FD_READ | GH_FD_WRITE, or 0 to pause the watch).
     * GH_ERR_INVALID for a NULL handle or other bits, GH_ERR_STATE off the watch's worker.
     * Allowed from inside fn.
     * Thread: the watch's worker. Ownership: nothing is handed out. */
    gh_status_t (*fd_watch_set)(gh_fd_watch_t *watch, uint32_t events);
    /* Stop watching: fn does not run again (also when called from inside fn), and the kernel
     * forgets the descriptor before this returns, so the module may close it right after.
     * Thread: the watch's worker (a call from elsewhere is refused and logged). Ownership: the
     * handle is gone after this call; free `arg` yourself. */
    void (*fd_watch_cancel)(gh_fd_watch_t *watch);
    /* Add `name=value` to this stream's access-log line (combined: after the kernel's fields;
     * json: a member), written as `MODULE.name` where MODULE is the module's name, so modules
     * never clash with each other or the kernel. Setting a name again replaces its value.
     * `name` is 1..64 of [a-z0-9_]; `value` any bytes up to 1024 (the log escapes them); at most
     * 32 fields per module and stream. GH_ERR_INVALID for a bad name or value or past the count;
     * GH_ERR_STATE in STREAM_END (the line is written after the LOG phase's hooks ran).
     * Thread: the stream's worker. Ownership: name and value copied. */
    gh_status_t (*log_field)(gh_stream_t *s, gh_module_t *self, gh_str_t name, gh_str_t value);
} gh_host_api_v1;

/* True if the kernel's table has `field` (it is no newer than the kernel). */
#define GH_HOST_HAS(host, field)                                                                   \
    ((host)->struct_size >= offsetof(gh_host_api_v1, field) + sizeof((host)->field) &&           \
     (host)->field != NULL)

#ifdef __cplusplus
}
#endif
#endif /* GATEHOUSE_HOST_H */
