/*
 * gatehouse SDK, ABI v1 -- the host API: functions the kernel implements for modules.
 *
 * The kernel passes a pointer to one gh_host_api_v1 table to the entry point; it stays valid until
 * the module is destroyed. Functions appended in a later minor are present only when
 * `struct_size` covers them: check with GH_HOST_HAS(host, field) before calling one that is newer
 * than the SDK you require (the C++ wrapper does this for you).
 *
 * Threads: unless a function says otherwise, call it only on the thread that invoked the hook you
 * are in (a worker thread for stream functions, the main thread for config/lifecycle hooks).
 * Ownership: strings passed in are copied by the kernel before the call returns; strings handed
 * out are borrowed views valid as documented on each function.
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

    /* ---- logging: any thread. `msg` copied. ---- */
    void (*log)(gh_module_t *self, uint32_t level, gh_str_t msg);

    /* ---- config nodes: main thread, during config_parse / route_config_parse only. ----
     * Every key a module reads through cfg_get is "known"; after the hook returns, the kernel
     * reports keys present in the table that the module never asked for as errors (with a
     * "did you mean" from the keys it did ask for). */
    uint32_t (*cfg_type)(const gh_config_node_t *node);
    /* Child of a table by key, or NULL if absent (the key still becomes known). */
    const gh_config_node_t *(*cfg_get)(const gh_config_node_t *table, gh_str_t key);
    /* Number of entries of a table or array; 0 for scalars. */
    size_t (*cfg_size)(const gh_config_node_t *node);
    /* Element i of an array, or entry i of a table (key written to *key if not NULL). */
    const gh_config_node_t *(*cfg_at)(const gh_config_node_t *node, size_t i, gh_str_t *key);
    /* Scalar reads. GH_ERR_INVALID (and an error recorded at the node) if the type is wrong.
     * Strings stay valid until the hook returns. */
    gh_status_t (*cfg_string)(const gh_config_node_t *node, gh_str_t *out);
    gh_status_t (*cfg_int)(const gh_config_node_t *node, int64_t *out);
    gh_status_t (*cfg_float)(const gh_config_node_t *node, double *out);
    gh_status_t (*cfg_bool)(const gh_config_node_t *node, int32_t *out);
    /* "250ms", "5s", "2m", "1h", "1d" or an integer of milliseconds. */
    gh_status_t (*cfg_duration_ms)(const gh_config_node_t *node, uint64_t *out);
    /* "512", "64k", "10m", "1g" (powers of 1024) or an integer of bytes. */
    gh_status_t (*cfg_bytes)(const gh_config_node_t *node, uint64_t *out);
    /* Record an error at this node; the kernel prints "file:line: [key.path] message" and the
     * config is refused. `message` copied. */
    void (*cfg_error)(const gh_config_node_t *node, gh_str_t message);

    /* ---- metrics: register on the main thread (load/config/activate); record on any thread. ----
     * `name` must match [a-z_][a-z0-9_]*; the kernel prefixes "gatehouse_". Label names are fixed
     * at registration; recording passes the values in the same order. Buckets (histograms) are
     * upper bounds in increasing order. Returns NULL on a bad name or a conflicting registration. */
    gh_metric_t *(*metric_register)(gh_module_t *self, uint32_t type, gh_str_t name, gh_str_t help,
                                    const gh_str_t *label_names, size_t label_count,
                                    const double *buckets, size_t bucket_count);
    void (*metric_record)(gh_metric_t *metric, uint32_t op, const gh_str_t *label_values,
                          size_t label_count, double value);

    /* ---- streams: worker thread of the stream, inside a hook or a completion for it ---- */
    /* GH_ERR_INVALID for an unknown fact; a fact not known yet (the peer before selection) is
     * empty with GH_OK. The view is valid until the phase ends. */
    gh_status_t (*stream_get)(gh_stream_t *s, uint32_t fact, gh_str_t *out);
    /* Value of the index-th field named `name` (case-insensitive). Views stay valid until the
     * header block is modified or the phase ends. */
    gh_status_t (*header_get)(gh_stream_t *s, uint32_t which, gh_str_t name, size_t index,
                              gh_str_t *value);
    size_t (*header_count)(gh_stream_t *s, uint32_t which);
    gh_status_t (*header_at)(gh_stream_t *s, uint32_t which, size_t i, gh_str_t *name,
                             gh_str_t *value);
    /* GH_HEADER_SET / ADD / REMOVE. Request headers may be changed up to UPSTREAM_REQUEST,
     * response headers in RESPONSE_HEADERS (GH_ERR_STATE otherwise). Names and values are
     * validated (no CR, LF, NUL; token names): GH_ERR_INVALID. Content-Length and
     * Transfer-Encoding (and removing Host) belong to the kernel: GH_ERR_INVALID. */
    gh_status_t (*header_set)(gh_stream_t *s, uint32_t which, gh_str_t name, gh_str_t value,
                              uint32_t mode);
    /* The response status (0 before one exists). */
    uint32_t (*response_status)(gh_stream_t *s);
    /* Prepare a local reply; the hook then returns GH_RESPOND. Allowed up to PRE_UPSTREAM and
     * in RESPONSE_HEADERS (replaces the upstream response). Status 200..599, else
     * GH_ERR_INVALID; framing headers are the kernel's (GH_ERR_INVALID). Body and headers
     * copied. */
    gh_status_t (*respond)(gh_stream_t *s, uint32_t status, const gh_header_t *headers,
                           size_t header_count, gh_bytes_t body);

    /* ---- per-stream module context: one slot per (stream, filter) ---- */
    void *(*stream_ctx)(gh_stream_t *s, gh_module_t *self);
    void (*stream_set_ctx)(gh_stream_t *s, gh_module_t *self, void *ctx);

    /* ---- async: resuming a paused stream ----
     * After a hook returned GH_PAUSE, call this exactly once, on the stream's worker thread, with
     * the action the hook would have returned. The kernel continues from a fresh call stack: it
     * never calls back into the module from inside stream_resume. */
    void (*stream_resume)(gh_stream_t *s, gh_action_t action);

    /* ---- bodies ----
     * Subscribe to a body during a header phase (REQUEST_HEADERS/ACCESS for the request,
     * RESPONSE_HEADERS for the response). mode GH_BODY_STREAM or GH_BODY_BUFFER; the hold limit
     * and overflow policy come from the route (`body_limit`, `body_overflow`). */
    gh_status_t (*body_subscribe)(gh_stream_t *s, gh_module_t *self, uint32_t direction,
                                  uint32_t mode);
    /* Emit bytes downstream of this filter, from inside on_body. Copied. */
    gh_status_t (*body_write)(gh_stream_t *s, uint32_t direction, gh_bytes_t data);
    /* The body held so far (GH_BODY_BUFFER), as one contiguous view; valid until the phase ends.
     * With only GH_BODY_STREAM subscribers nothing is held: GH_OK and an empty view. */
    gh_status_t (*body_held)(gh_stream_t *s, uint32_t direction, gh_bytes_t *out);

    /* ---- workers, timers, offload, post ---- */
    gh_worker_t *(*current_worker)(void); /* NULL off worker threads */
    /* One-shot timer on the current worker; `fn(arg)` runs on that worker. */
    gh_timer_t *(*timer_start)(uint64_t delay_ms, gh_task_fn fn, void *arg);
    /* Cancel before it fired: fn will not run. After it fired: invalid (the handle is gone). */
    void (*timer_cancel)(gh_timer_t *timer);
    /* Run `work(arg)` on the kernel's thread pool (may block: disk, CPU), then `done(arg)` back on
     * the calling worker. */
    gh_status_t (*offload)(gh_task_fn work, gh_task_fn done, void *arg);
    /* Any thread: run fn(arg) on `worker` soon. */
    gh_status_t (*post)(gh_worker_t *worker, gh_task_fn fn, void *arg);
    /* Monotonic milliseconds. */
    uint64_t (*now_ms)(void);

    /* ---- callouts: worker thread. `done` runs later on the same worker, never inside this
     * call. Request contents are copied. ---- */
    gh_status_t (*callout)(const gh_callout_request_t *request, gh_callout_done_fn done,
                           void *arg);

    /* ---- pools (balancers): any worker thread, from select/report or pool_init ---- */
    uint32_t (*pool_size)(const gh_pool_t *pool);
    /* Fills the prefix of *out its struct_size covers; GH_ERR_NOT_FOUND past the end. */
    gh_status_t (*pool_peer)(const gh_pool_t *pool, uint32_t index, gh_peer_info_t *out);
    gh_str_t (*pool_name)(const gh_pool_t *pool);

    /* ---- 1.1 (check with GH_HOST_HAS) ---- */
    /* RESPONSE_HEADERS, after body_subscribe(GH_DIR_RESPONSE), before returning GH_HOLD: the
     * kernel then reads the response body without sending anything until it holds `bytes`
     * decoded bytes, the body ends, or the upstream pauses (nothing more waiting once some body
     * arrived), and calls this hook again. There body_held(GH_DIR_RESPONSE) shows the bytes
     * held and GH_FACT_RESPONSE_BODY tells whether that is the whole body; the bytes then go
     * through on_body as usual. The response head waits meanwhile, so ask only for what a
     * decision needs. Only GH_DIR_RESPONSE (GH_ERR_INVALID otherwise, or for 0 bytes);
     * GH_ERR_STATE outside RESPONSE_HEADERS, without the subscription, or when the response has
     * no body. Worker thread. */
    gh_status_t (*body_peek)(gh_stream_t *s, gh_module_t *self, uint32_t direction,
                             uint64_t bytes);

    /* ---- 1.2 (check with GH_HOST_HAS) ---- */
    /* A local reply whose body the module supplies later, piece by piece (a cache streaming an
     * object that is still arriving, a large file): like respond() -- same phases, same header
     * rules, the hook then returns GH_RESPOND -- but without the body. `length` is the body's
     * size, sent as Content-Length, or GH_LENGTH_UNKNOWN (chunked; close-delimited for HTTP/1.0
     * clients). The kernel sends the head, then whatever reply_write gives it. For HEAD
     * requests, 204 and 304 nothing of the body is sent (reply_write accepts and drops it).
     * Worker thread. */
    gh_status_t (*respond_stream)(gh_stream_t *s, uint32_t status, const gh_header_t *headers,
                                  size_t header_count, uint64_t length);
    /* Body bytes for a respond_stream reply, copied; GH_CHUNK_LAST in `flags` ends it (data may
     * be empty). Call from any callback on the stream's worker after the hook returned
     * GH_RESPOND, until the last piece -- never from inside another stream's hook for this one
     * before that. GH_ERR_STATE when the stream has no streamed reply, it already ended, or the
     * client went away (STREAM_END runs; stop writing). A body that ends short of, or runs past,
     * a declared `length` makes the kernel close the connection (the client sees a truncated
     * response, never a wrong one). The kernel buffers what the client has not taken yet:
     * bound what you write ahead. Worker thread. */
    gh_status_t (*reply_write)(gh_stream_t *s, gh_bytes_t data, uint32_t flags);
    /* Serve requests to /modules/NAME/... on the admin listener ([admin], protected by the
     * address it binds): `fn(arg, request, response)` runs on the admin thread, one request at a
     * time, concurrently with the workers -- keep it short and thread-safe. One handler per
     * module; calling again replaces it, fn NULL removes it. Without a handler those paths are
     * 404. Main thread (load or activate); the handler must stay callable until it is removed
     * or the module is destroyed. */
    gh_status_t (*admin_handle)(gh_module_t *self, gh_admin_fn fn, void *arg);
    /* Pacing for respond_stream bodies: `fn(arg)` runs on the stream's worker once everything
     * written so far has been handed to the socket -- or once the client went away (STREAM_END
     * then ran: check your own flag before touching the stream). Exactly once, never inside this
     * call. Write the next piece from there to keep at most one piece buffered. GH_ERR_STATE
     * without an active streamed reply. Worker thread. */
    gh_status_t (*reply_drained)(gh_stream_t *s, gh_task_fn fn, void *arg);
} gh_host_api_v1;

/* True if the kernel's table has `field` (it is no newer than the kernel). */
#define GH_HOST_HAS(host, field)                                                                   \
    ((host)->struct_size >= offsetof(gh_host_api_v1, field) + sizeof((host)->field) &&           \
     (host)->field != NULL)

#ifdef __cplusplus
}
#endif
#endif /* GATEHOUSE_HOST_H */
