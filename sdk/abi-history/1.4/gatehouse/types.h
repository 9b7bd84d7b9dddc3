/*
 * gatehouse SDK, ABI v1 -- types only (no functions).
 *
 * Everything that crosses the module boundary is plain C: fixed-width integers, views
 * ({ptr,len}), opaque handles and structs that start with `struct_size`. A minor release only
 * appends (struct fields at the end, enum values at the end, table entries at the end); each side
 * reads only the prefix of a struct that both know, using `struct_size`.
 */
#ifndef GATEHOUSE_TYPES_H
#define GATEHOUSE_TYPES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GH_ABI_MAJOR 1
#define GH_ABI_MINOR 4

/* The one symbol a module exports. A new major gets a new name (gatehouse_module_v2). */
#define GH_ENTRY_SYMBOL "gatehouse_module_v1"

/* ---- views --------------------------------------------------------------------------------- */

/* A borrowed string: not NUL-terminated, valid only for the duration of the call that gave it
 * (unless the function documents otherwise). The receiver copies what it wants to keep. */
typedef struct gh_str {
    const char *ptr;
    size_t len;
} gh_str_t;

/* Borrowed bytes; same ownership as gh_str_t. */
typedef struct gh_bytes {
    const uint8_t *ptr;
    size_t len;
} gh_bytes_t;

/* One header field, used where a list is passed (local replies, callouts). */
typedef struct gh_header {
    gh_str_t name;
    gh_str_t value;
} gh_header_t;

/* ---- status codes returned by host functions ------------------------------------------------ */
typedef int32_t gh_status_t;
#define GH_OK 0
#define GH_ERR_NOT_FOUND (-1)  /* key, header, peer... absent */
#define GH_ERR_INVALID (-2)    /* bad argument or wrong type (config getters also record an error) */
#define GH_ERR_STATE (-3)      /* not allowed in this phase / on this thread */
#define GH_ERR_LIMIT (-4)      /* a configured limit would be exceeded */
#define GH_ERR_UNSUPPORTED (-5)/* the kernel does not provide this (capability check) */
#define GH_ERR_INTERNAL (-6)

/* ---- opaque handles (the kernel owns all of them; a module never frees one) ----------------- */
typedef struct gh_module gh_module_t;           /* this module, as loaded; valid until destroy */
typedef struct gh_config_node gh_config_node_t; /* a TOML node; valid during config hooks only */
/* One HTTP request/response exchange, used only on its worker thread. Valid from its first hook
 * until STREAM_END returns; the kernel then reuses it for the connection's next request, so a
 * handle kept past STREAM_END may reach another request. */
typedef struct gh_stream gh_stream_t;
typedef struct gh_worker gh_worker_t;           /* one worker thread (event loop); until shutdown */
typedef struct gh_metric gh_metric_t;           /* a registered metric; valid until destroy */
typedef struct gh_pool gh_pool_t;               /* an upstream pool (balancers); until pool_free */
typedef struct gh_timer gh_timer_t;             /* a pending timer; until fired or cancelled */
typedef struct gh_fd_watch gh_fd_watch_t;       /* (1.3) a readiness watch; until cancelled */

/* ---- module kinds (bit mask in the descriptor) --------------------------------------------- */
#define GH_KIND_FILTER 0x1u
#define GH_KIND_BALANCER 0x2u
#define GH_KIND_TASK 0x4u

/* ---- log levels ---------------------------------------------------------------------------- */
#define GH_LOG_ERROR 0u
#define GH_LOG_WARN 1u
#define GH_LOG_INFO 2u
#define GH_LOG_DEBUG 3u

/* ---- filter phases, in kernel order ---------------------------------------------------------- */
#define GH_PHASE_REQUEST_HEADERS 0u  /* before routing; route config is the module default */
#define GH_PHASE_ACCESS 1u           /* auth, WAF header rules, limits */
#define GH_PHASE_REQUEST_BODY 2u     /* body chunks (only if subscribed), see on_body */
#define GH_PHASE_PRE_UPSTREAM 3u     /* last chance to answer locally (cache hit) */
#define GH_PHASE_BALANCER 4u         /* reserved: peer selection is done by balancer modules */
#define GH_PHASE_UPSTREAM_REQUEST 5u /* the request about to be sent upstream; edit headers */
#define GH_PHASE_RESPONSE_HEADERS 6u
#define GH_PHASE_RESPONSE_BODY 7u    /* body chunks (only if subscribed), see on_body */
#define GH_PHASE_LOG 8u              /* after the response is complete; read-only */
#define GH_PHASE_STREAM_END 9u       /* always runs exactly once, also on abort; free state here */
#define GH_PHASE_COUNT 10u /* the phases of 1.0; later minors number new ones after it */
/* 1.2: the kernel is about to answer 502/503/504 itself because the upstream failed before a
 * response head (connect failure, timeout, reset, invalid response, no server left). Runs only
 * for filters that ask for it, before any byte went to the client; a filter may answer instead
 * (host->respond / respond_stream, then GH_RESPOND -- e.g. serve a stale cached copy), or
 * GH_CONTINUE to let the kernel's error reply go. GH_FACT_UPSTREAM_ERROR says why;
 * response_status() is the status the kernel would send. Numbered after STREAM_END because
 * numbers are append-only; it runs between UPSTREAM_REQUEST and LOG. */
#define GH_PHASE_UPSTREAM_ERROR 10u
#define GH_PHASE_BIT(p) (1u << (p))

/* ---- what a phase hook returns --------------------------------------------------------------- */
typedef int32_t gh_action_t;
#define GH_CONTINUE 0 /* go on to the next filter / phase */
#define GH_PAUSE 1    /* async work pending; call host->stream_resume() later (same thread) */
#define GH_RESPOND 2  /* a local reply was set with host->respond(); stop the chain */
#define GH_ERROR 3    /* internal failure: the kernel answers 500 (or aborts if headers are out) */
#define GH_HOLD 4     /* header phases only: re-run this hook once the subscribed body is complete */
/* 1.4: close the client connection without a response (a WAF's `drop`): from a header phase or
 * stream_resume; after a response started it cuts it short like an abort. The access log says
 * `dropped`. A 1.0-1.3 kernel treats it as GH_ERROR (500): fail closed. */
#define GH_DROP 5
/* Any other value is treated as GH_ERROR (fail closed). */

/* ---- body handling ----------------------------------------------------------------------------- */
#define GH_DIR_REQUEST 0u
#define GH_DIR_RESPONSE 1u

/* How a filter sees a body it subscribed to. */
#define GH_BODY_STREAM 0u /* chunks as they arrive; the filter passes or replaces each one */
#define GH_BODY_BUFFER 1u /* the kernel holds the whole body (up to the limit), then delivers it */

/* What happens when a held body exceeds the per-route limit. */
#define GH_OVERFLOW_REJECT 0u  /* 413 for requests, 502 for responses */
#define GH_OVERFLOW_PASS 1u    /* stop inspecting; the filter sees no more chunks */

/* Response body filter classes: (1.4) inspectors first, then transforms, encoders, observers. */
#define GH_BODY_CLASS_TRANSFORM 0u
#define GH_BODY_CLASS_ENCODE 1u
#define GH_BODY_CLASS_OBSERVE 2u
/* 1.4: inspectors (a WAF) run FIRST, before transforms, and never change the body: on_body
 * returns GH_BODY_PASS or GH_BODY_ABORT (body_write is refused with GH_ERR_STATE, and
 * GH_BODY_CONSUMED counts as GH_BODY_ABORT). Like observers they keep the response's framing:
 * when every subscriber inspects or observes, the body goes out as it came, Content-Length
 * included -- also after a whole-body hold (GH_PEEK_WHOLE), which then goes out with a
 * Content-Length even if the upstream sent it chunked. */
#define GH_BODY_CLASS_INSPECT 3u

/* gh_body_chunk_t.flags */
#define GH_CHUNK_LAST 0x1u /* no more data follows (data may be empty) */
/* 1.1: more data was already waiting when the kernel cut this chunk, so a filter that flushes
 * after each chunk (to let a paused stream through) may wait for the next one instead. Without
 * it the upstream had nothing more to give at that moment: flush. Never set by 1.0 kernels, so
 * a module treating its absence as "flush" works on both. */
#define GH_CHUNK_MORE 0x2u
/* 1.2, reply_write only: the body cannot be completed (its source failed). The kernel ends the
 * response so the client cannot mistake it for a whole body: it closes the connection without
 * the chunked terminator (or short of the declared length). */
#define GH_CHUNK_ABORT 0x4u

typedef struct gh_body_chunk {
    uint32_t struct_size;
    uint32_t flags;
    gh_bytes_t data; /* decoded payload (no chunked framing); borrowed for the call */
} gh_body_chunk_t;

/* on_body's return value */
#define GH_BODY_PASS 0     /* forward this chunk unchanged (after whatever the filter wrote) */
#define GH_BODY_CONSUMED 1 /* drop this chunk; only bytes written with host->body_write go on */
#define GH_BODY_ABORT 2    /* fail the stream: 502 if nothing was sent yet, else abort */

/* ---- stream facts readable with host->stream_get ------------------------------------------------ */
#define GH_FACT_METHOD 0u
#define GH_FACT_TARGET 1u      /* as received (origin-form), after normalisation for routing */
#define GH_FACT_PATH 2u        /* normalised path without query */
#define GH_FACT_QUERY 3u       /* without the '?' */
#define GH_FACT_HOST 4u        /* Host header without port, lower-case */
#define GH_FACT_SCHEME 5u      /* "http" or "https" */
#define GH_FACT_CLIENT_ADDR 6u /* "ip:port" of the peer */
#define GH_FACT_ROUTE 7u       /* route name (empty before routing) */
#define GH_FACT_UPSTREAM 8u    /* upstream pool name */
#define GH_FACT_PEER_ADDR 9u   /* address of the selected upstream server, once chosen */
#define GH_FACT_VERSION 10u    /* "HTTP/1.1" or "HTTP/1.0" */
/* 1.1: "complete" once the kernel has read the whole response body (a peek can tell), else
 * "partial"; GH_ERR_STATE before the response head. */
#define GH_FACT_RESPONSE_BODY 11u
/* 1.2: in GH_PHASE_UPSTREAM_ERROR, why the upstream failed ("connect", "timeout", "reset",
 * "invalid", "unavailable"); empty in every other phase. */
#define GH_FACT_UPSTREAM_ERROR 12u
/* 1.4: the request-target exactly as the client sent it, before the kernel normalised it for
 * routing (dot segments, duplicate slashes): what a WAF inspects for traversal attempts. */
#define GH_FACT_RAW_TARGET 13u

/* 1.4: body_peek's `bytes` for "the whole body": the kernel holds the response until it is
 * complete -- never cut short because the upstream paused -- up to the route's `body_limit`. Over
 * the limit the route's `body_overflow` decides: `reject` makes the kernel answer 502 itself (no
 * byte of the upstream's response sent), `pass` re-runs the hook with `body_limit` bytes held and
 * GH_FACT_RESPONSE_BODY "partial" (the rest then streams on). */
#define GH_PEEK_WHOLE UINT64_MAX

/* 1.2: respond_stream's `length` when the body size is not known in advance. */
#define GH_LENGTH_UNKNOWN UINT64_MAX

/* Which header block header functions act on. */
#define GH_HEADERS_REQUEST 0u  /* the client request (as forwarded upstream) */
#define GH_HEADERS_RESPONSE 1u /* the response (upstream's, or the local reply) */

/* host->header_set modes */
#define GH_HEADER_SET 0u    /* replace every field of that name with one */
#define GH_HEADER_ADD 1u    /* append one more field */
#define GH_HEADER_REMOVE 2u /* remove every field of that name (value ignored) */

/* ---- config nodes -------------------------------------------------------------------------- */
#define GH_CFG_NONE 0u
#define GH_CFG_TABLE 1u
#define GH_CFG_ARRAY 2u
#define GH_CFG_STRING 3u
#define GH_CFG_INT 4u
#define GH_CFG_FLOAT 5u
#define GH_CFG_BOOL 6u

/* ---- metrics -------------------------------------------------------------------------------- */
#define GH_METRIC_COUNTER 0u
#define GH_METRIC_GAUGE 1u
#define GH_METRIC_HISTOGRAM 2u

#define GH_METRIC_ADD 0u     /* counters and gauges */
#define GH_METRIC_SET 1u     /* gauges */
#define GH_METRIC_OBSERVE 2u /* histograms */

/* ---- balancers ----------------------------------------------------------------------------- */
/* A peer (one upstream server) as the balancer sees it. Filled by host->pool_peer. */
typedef struct gh_peer_info {
    uint32_t struct_size;
    uint32_t weight;       /* >= 1 */
    uint32_t max_inflight; /* 0 = unlimited */
    uint32_t backup;       /* 1 = only used when no primary is eligible (kernel decides) */
    uint64_t inflight;     /* requests in flight now, all threads (a snapshot) */
    gh_str_t address;      /* "host:port"; valid while the pool is */
} gh_peer_info_t;

/* Passed to gh_balancer_v1.select; borrowed for that call (with `eligible`). */
typedef struct gh_select_ctx {
    uint32_t struct_size;
    uint32_t attempt;         /* 0 for the first try, 1 for the first retry... */
    uint32_t peer_count;
    uint32_t reserved;
    const uint8_t *eligible;  /* peer_count entries; 1 = may be chosen now (healthy, not tried,
                                 below max_inflight, right backup tier) */
    gh_stream_t *stream;      /* the request (read-only use), NULL when the kernel picks a
                                 server for a module's callout */
} gh_select_ctx_t;

/* Outcome of one attempt, reported to gh_balancer_v1.report. */
#define GH_OUTCOME_SUCCESS 0u
#define GH_OUTCOME_CONNECT_FAILURE 1u
#define GH_OUTCOME_TIMEOUT 2u
#define GH_OUTCOME_HTTP_5XX 3u
#define GH_OUTCOME_RESET 4u     /* connection failed after the request was (partly) sent */
#define GH_OUTCOME_ABORTED 5u   /* the client went away */

/* Borrowed for the report call. */
typedef struct gh_outcome {
    uint32_t struct_size;
    uint32_t peer;
    uint32_t outcome;
    uint32_t status;     /* HTTP status if one was received, else 0 */
    uint64_t latency_us; /* attempt start to response headers (or failure) */
} gh_outcome_t;

/* ---- callouts: HTTP requests a module sends to a named upstream ------------------------------- */
typedef struct gh_callout_request {
    uint32_t struct_size;
    uint32_t timeout_ms; /* 0 = the upstream's defaults */
    gh_str_t upstream;   /* name of an [upstream.NAME] pool */
    gh_str_t method;
    gh_str_t target;     /* origin-form, e.g. "/jwks.json?x=1" */
    const gh_header_t *headers;
    size_t header_count;
    gh_bytes_t body;
} gh_callout_request_t;

/* Handed to the callout's `done`; it and everything it points to are borrowed for that call. */
typedef struct gh_callout_response {
    uint32_t struct_size;
    int32_t status;      /* HTTP status, or a negative gh_status_t if no response was received */
    const gh_header_t *headers;
    size_t header_count;
    gh_bytes_t body;     /* the whole body (callouts are bounded by max_body) */
    gh_str_t error;      /* why, when status < 0 */
} gh_callout_response_t;

/* ---- admin endpoints (1.2): requests to /modules/NAME/... on the admin listener ---------- */
/* Borrowed for the handler call. */
typedef struct gh_admin_request {
    uint32_t struct_size;
    uint32_t reserved;
    gh_str_t method; /* "GET", "POST", "DELETE"... */
    gh_str_t path;   /* after /modules/NAME, e.g. "/purge" (may be empty) */
    gh_str_t query;  /* without the '?' */
    gh_bytes_t body;
} gh_admin_request_t;

/* Filled by the handler; the views need to stay valid only until it returns (the kernel copies
 * them). status 0 means 200; an empty content_type means text/plain. */
typedef struct gh_admin_response {
    uint32_t struct_size;
    uint32_t status;
    gh_str_t content_type;
    gh_bytes_t body;
} gh_admin_response_t;

typedef void (*gh_admin_fn)(void *arg, const gh_admin_request_t *request,
                            gh_admin_response_t *response);

/* Callback shapes used by async host services. `arg` is the caller's, passed back untouched. */
typedef void (*gh_task_fn)(void *arg);
typedef void (*gh_callout_done_fn)(void *arg, const gh_callout_response_t *response);

/* ---- (1.3) readiness watches on a file descriptor (host fd_watch) ---------------------------- */
#define GH_FD_READ 0x1u  /* readable (or at end of stream, or a pending error to read) */
#define GH_FD_WRITE 0x2u /* writable (or a connect finished: check SO_ERROR) */
#define GH_FD_ERROR 0x4u /* the kernel could not watch the descriptor any more (closed under it,
                          * not pollable); the watch then watches nothing until fd_watch_set */
/* `events` is the one GH_FD_* condition this call reports. */
typedef void (*gh_fd_fn)(void *arg, uint32_t events);

#ifdef __cplusplus
}
#endif
#endif /* GATEHOUSE_TYPES_H */
