// The host side of the SDK: every function of gh_host_api_v1. Each validates its arguments and
// returns a status rather than trusting the module.
#include "log.hpp"
#include "metrics.hpp"
#include "config/table_reader.hpp"
#include "modules/config_node.hpp"
#include "modules/loader.hpp"
#include "modules/services.hpp"
#include "net/client_connection.hpp"
#include "net/worker.hpp"
#include "upstream/pool.hpp"

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <sys/stat.h>

#include <mutex>

struct gh_timer {
    explicit gh_timer(boost::asio::io_context& io) : timer(io) {}
    boost::asio::steady_timer timer;
    gh_task_fn fn = nullptr;
    void* arg = nullptr;
};

// A readiness watch (SDK 1.3): one async_wait per watched condition at a time, re-armed after
// each report while the condition is still wanted, which makes it level-triggered. The watch
// never owns the descriptor: cancel releases it from the reactor at once (so the module may
// close it and the number may be reused), and the object goes when the last wait it started has
// completed (with operation_aborted).
struct gh_fd_watch {
    gh_fd_watch(boost::asio::io_context& io, gatehouse::net::Worker* w) : fd(io), worker(w) {}
    boost::asio::posix::stream_descriptor fd;
    gatehouse::net::Worker* worker;
    gh_fd_fn fn = nullptr;
    void* arg = nullptr;
    uint32_t events = 0;
    bool waiting[2] = {false, false}; // GH_FD_READ, GH_FD_WRITE
    bool cancelled = false;
};

namespace gatehouse::modules {

namespace {

using net::ClientConnection;

std::string_view sv(gh_str_t s) { return s.ptr ? std::string_view(s.ptr, s.len) : std::string_view(); }
gh_str_t gs(std::string_view s) { return {s.data(), s.size()}; }

ClientConnection* conn(gh_stream_t* s) { return s ? s->connection : nullptr; }

// ---- logging ----
void host_log(gh_module_t* self, uint32_t level, gh_str_t msg) {
    auto l = static_cast<log::Level>(std::min<uint32_t>(level, GH_LOG_DEBUG));
    if (log::enabled(l))
        log::write(l, self && self->owner ? self->owner->name : "module", sv(msg));
}

// ---- config ----
uint32_t cfg_type(const gh_config_node_t* n) {
    if (!n || !n->node)
        return GH_CFG_NONE;
    switch (n->node->type()) {
    case toml::node_type::table: return GH_CFG_TABLE;
    case toml::node_type::array: return GH_CFG_ARRAY;
    case toml::node_type::string: return GH_CFG_STRING;
    case toml::node_type::integer: return GH_CFG_INT;
    case toml::node_type::floating_point: return GH_CFG_FLOAT;
    case toml::node_type::boolean: return GH_CFG_BOOL;
    default: return GH_CFG_NONE;
    }
}

const gh_config_node_t* cfg_get(const gh_config_node_t* t, gh_str_t key) {
    if (!t || !t->node || !t->node->is_table())
        return nullptr;
    std::string k(sv(key));
    if (std::find(t->known.begin(), t->known.end(), k) == t->known.end())
        t->known.push_back(k);
    const toml::node* child = t->node->as_table()->get(k);
    if (!child)
        return nullptr;
    return t->session->child(t, child, t->path.empty() ? k : t->path + "." + k);
}

size_t cfg_size(const gh_config_node_t* n) {
    if (!n || !n->node)
        return 0;
    if (auto* t = n->node->as_table())
        return t->size();
    if (auto* a = n->node->as_array())
        return a->size();
    return 0;
}

const gh_config_node_t* cfg_at(const gh_config_node_t* n, size_t i, gh_str_t* key) {
    if (!n || !n->node)
        return nullptr;
    if (auto* a = n->node->as_array()) {
        if (i >= a->size())
            return nullptr;
        if (key)
            *key = {nullptr, 0};
        return n->session->child(n, a->get(i), n->path + "[" + std::to_string(i) + "]");
    }
    if (auto* t = n->node->as_table()) {
        if (i >= t->size())
            return nullptr;
        auto it = std::next(t->begin(), static_cast<ptrdiff_t>(i));
        std::string k(it->first.str());
        if (std::find(n->known.begin(), n->known.end(), k) == n->known.end())
            n->known.push_back(k);
        if (key)
            *key = gs(it->first.str());
        return n->session->child(n, &it->second, n->path.empty() ? k : n->path + "." + k);
    }
    return nullptr;
}

template <class T>
gh_status_t read_scalar(const gh_config_node_t* n, T* out, const char* expected) {
    if (!n || !out)
        return GH_ERR_INVALID;
    if (auto v = n->node->value_exact<T>()) {
        *out = *v;
        return GH_OK;
    }
    n->session->error(n, std::string("expected ") + expected);
    return GH_ERR_INVALID;
}

gh_status_t cfg_string(const gh_config_node_t* n, gh_str_t* out) {
    if (!n || !out)
        return GH_ERR_INVALID;
    if (auto* v = n->node->as_string()) {
        *out = gs(v->get());
        return GH_OK;
    }
    n->session->error(n, "expected a string");
    return GH_ERR_INVALID;
}
gh_status_t cfg_int(const gh_config_node_t* n, int64_t* out) { return read_scalar(n, out, "an integer"); }
gh_status_t cfg_float(const gh_config_node_t* n, double* out) {
    if (n && n->node->is_integer() && out) {
        *out = static_cast<double>(*n->node->value_exact<int64_t>());
        return GH_OK;
    }
    return read_scalar(n, out, "a number");
}
gh_status_t cfg_bool(const gh_config_node_t* n, int32_t* out) {
    bool b = false;
    gh_status_t rc = read_scalar(n, &b, "true or false");
    if (rc == GH_OK)
        *out = b ? 1 : 0;
    return rc;
}
gh_status_t cfg_duration_ms(const gh_config_node_t* n, uint64_t* out) {
    if (!n || !out)
        return GH_ERR_INVALID;
    if (auto v = config::read_duration_ms(*n->node)) {
        n->session->warn_bare_duration(n);
        *out = *v;
        return GH_OK;
    }
    n->session->error(n, "expected a duration such as \"250ms\", \"5s\", \"2m\", \"1h\", \"1d\" "
                         "or milliseconds");
    return GH_ERR_INVALID;
}
gh_status_t cfg_bytes(const gh_config_node_t* n, uint64_t* out) {
    if (!n || !out)
        return GH_ERR_INVALID;
    if (auto v = config::read_bytes(*n->node)) {
        *out = *v;
        return GH_OK;
    }
    n->session->error(n, "expected a size such as \"512\", \"16k\", \"10m\" or bytes");
    return GH_ERR_INVALID;
}
void cfg_error(const gh_config_node_t* n, gh_str_t message) {
    if (n)
        n->session->error(n, sv(message));
}

// ---- metrics ----
gh_metric_t* metric_register(gh_module_t* self, uint32_t type, gh_str_t name, gh_str_t help,
                             const gh_str_t* label_names, size_t label_count,
                             const double* buckets, size_t bucket_count) {
    std::vector<std::string> labels;
    for (size_t i = 0; i < label_count; ++i)
        labels.emplace_back(sv(label_names[i]));
    std::vector<double> b(buckets, buckets + (buckets ? bucket_count : 0));
    std::string error;
    gh_metric* m = metrics::register_metric(type, sv(name), sv(help), std::move(labels),
                                            std::move(b), error);
    if (!m)
        log::write(log::Level::error, self && self->owner ? self->owner->name : "module", error);
    return m;
}
void metric_record(gh_metric_t* m, uint32_t op, const gh_str_t* values, size_t count, double v) {
    metrics::record(m, op, values, count, v);
}

// ---- streams ----
gh_status_t stream_get(gh_stream_t* s, uint32_t fact, gh_str_t* out) {
    if (!s || !out)
        return GH_ERR_INVALID;
    std::string_view v;
    switch (fact) {
    case GH_FACT_METHOD: v = s->request->method; break;
    case GH_FACT_TARGET: v = s->normalised_target; break;
    case GH_FACT_RAW_TARGET: v = s->request->target; break;
    case GH_FACT_PATH: v = s->path; break;
    case GH_FACT_QUERY: v = s->query; break;
    case GH_FACT_HOST: v = s->host; break;
    case GH_FACT_SCHEME: v = s->tls ? "https" : "http"; break;
    case GH_FACT_CLIENT_ADDR: v = s->client_address; break;
    case GH_FACT_ROUTE: v = s->route ? std::string_view(s->route->config->name) : ""; break;
    case GH_FACT_UPSTREAM:
        v = s->route && s->route->pool ? std::string_view(s->route->pool->name()) : "";
        break;
    case GH_FACT_PEER_ADDR: v = s->peer_address; break;
    case GH_FACT_VERSION: v = s->request->version == 10 ? "HTTP/1.0" : "HTTP/1.1"; break;
    case GH_FACT_UPSTREAM_ERROR: v = s->upstream_error; break;
    case GH_FACT_RESPONSE_BODY:
        if (s->phase < GH_PHASE_RESPONSE_HEADERS)
            return GH_ERR_STATE;
        v = s->response_body_complete ? "complete" : "partial";
        break;
    default: return GH_ERR_INVALID;
    }
    *out = gs(v);
    return GH_OK;
}

std::vector<http::Field>* header_block(gh_stream_t* s, uint32_t which) {
    if (!s)
        return nullptr;
    if (which == GH_HEADERS_REQUEST)
        return &s->request->fields;
    if (which == GH_HEADERS_RESPONSE)
        return s->has_reply ? &s->reply_headers : &s->response->fields;
    return nullptr;
}

gh_status_t header_get(gh_stream_t* s, uint32_t which, gh_str_t name, size_t index, gh_str_t* value) {
    auto* fields = header_block(s, which);
    if (!fields || !value)
        return GH_ERR_INVALID;
    for (const auto& f : *fields)
        if (http::iequals(f.name, sv(name)) && index-- == 0) {
            *value = gs(f.value);
            return GH_OK;
        }
    return GH_ERR_NOT_FOUND;
}

size_t header_count(gh_stream_t* s, uint32_t which) {
    auto* fields = header_block(s, which);
    return fields ? fields->size() : 0;
}

gh_status_t header_at(gh_stream_t* s, uint32_t which, size_t i, gh_str_t* name, gh_str_t* value) {
    auto* fields = header_block(s, which);
    if (!fields)
        return GH_ERR_INVALID;
    if (i >= fields->size())
        return GH_ERR_NOT_FOUND;
    if (name)
        *name = gs((*fields)[i].name);
    if (value)
        *value = gs((*fields)[i].value);
    return GH_OK;
}

bool valid_token(std::string_view name) {
    if (name.empty())
        return false;
    for (unsigned char c : name)
        if (c <= 32 || c >= 127 || std::string_view("\"(),/:;<=>?@[\\]{}").find(static_cast<char>(c)) !=
                                       std::string_view::npos)
            return false;
    return true;
}

bool valid_value(std::string_view value) {
    for (unsigned char c : value)
        if ((c < 32 && c != '\t') || c == 127)
            return false;
    return true;
}

gh_status_t header_set(gh_stream_t* s, uint32_t which, gh_str_t name, gh_str_t value, uint32_t mode) {
    auto* fields = header_block(s, which);
    if (!fields || mode > GH_HEADER_REMOVE || !valid_token(sv(name)) ||
        (mode != GH_HEADER_REMOVE && !valid_value(sv(value))))
        return GH_ERR_INVALID;
    ClientConnection* c = conn(s);
    bool editable = which == GH_HEADERS_REQUEST ? c->request_headers_editable()
                                                : (s->has_reply || c->response_headers_editable());
    if (!editable)
        return GH_ERR_STATE;
    // Framing fields belong to the kernel.
    std::string_view n = sv(name);
    if (http::iequals(n, "content-length") || http::iequals(n, "transfer-encoding") ||
        (which == GH_HEADERS_REQUEST && http::iequals(n, "host") && mode == GH_HEADER_REMOVE))
        return GH_ERR_INVALID;
    if (http::iequals(n, "connection") && !s->has_reply) {
        // The head builders look for listed options only when told to.
        (which == GH_HEADERS_REQUEST ? s->request->framing : s->response->framing)
            .connection_options = true;
    }
    if (mode != GH_HEADER_ADD)
        std::erase_if(*fields, [&](const http::Field& f) { return http::iequals(f.name, n); });
    if (mode != GH_HEADER_REMOVE)
        fields->push_back({s->keep(n), s->keep(sv(value))});
    return GH_OK;
}

uint32_t response_status(gh_stream_t* s) {
    if (!s)
        return 0;
    if (!s->has_reply && s->phase == GH_PHASE_UPSTREAM_ERROR)
        return s->upstream_error_status;
    return s->has_reply ? s->reply_status : s->response->status;
}

gh_status_t respond(gh_stream_t* s, uint32_t status, const gh_header_t* headers, size_t count,
                    gh_bytes_t body) {
    if (!s || status < 200 || status > 599 || (count && !headers))
        return GH_ERR_INVALID;
    uint32_t phase = s->phase;
    if (!(phase <= GH_PHASE_PRE_UPSTREAM || phase == GH_PHASE_RESPONSE_HEADERS ||
          phase == GH_PHASE_UPSTREAM_ERROR))
        return GH_ERR_STATE;
    for (size_t i = 0; i < count; ++i)
        if (!valid_token(sv(headers[i].name)) || !valid_value(sv(headers[i].value)) ||
            http::iequals(sv(headers[i].name), "content-length") ||
            http::iequals(sv(headers[i].name), "transfer-encoding"))
            return GH_ERR_INVALID;
    s->has_reply = true;
    s->reply_status = status;
    s->reply_headers.clear();
    // One buffer for every name and value (reused from request to request): a reply of ten
    // fields costs no allocation once the connection has served one.
    size_t total = 0;
    for (size_t i = 0; i < count; ++i)
        total += headers[i].name.len + headers[i].value.len;
    s->reply_store.clear();
    s->reply_store.reserve(total);
    for (size_t i = 0; i < count; ++i) {
        s->reply_store.append(sv(headers[i].name));
        s->reply_store.append(sv(headers[i].value));
    }
    std::string_view stored = s->reply_store;
    for (size_t i = 0, at = 0; i < count; ++i) {
        std::string_view name = stored.substr(at, headers[i].name.len);
        at += headers[i].name.len;
        std::string_view value = stored.substr(at, headers[i].value.len);
        at += headers[i].value.len;
        s->reply_headers.push_back({name, value});
    }
    s->reply_body.assign(reinterpret_cast<const char*>(body.ptr), body.ptr ? body.len : 0);
    s->reply_streamed = false;
    return GH_OK;
}

gh_status_t respond_stream(gh_stream_t* s, uint32_t status, const gh_header_t* headers,
                           size_t count, uint64_t length) {
    gh_status_t rc = respond(s, status, headers, count, gh_bytes_t{nullptr, 0});
    if (rc != GH_OK)
        return rc;
    s->reply_streamed = true;
    s->reply_length = length;
    return GH_OK;
}

gh_status_t admin_handle(gh_module_t* self, gh_admin_fn fn, void* arg) {
    if (!self || !self->owner)
        return GH_ERR_INVALID;
    std::lock_guard lock(modules::admin_mutex);
    self->owner->admin_fn = fn;
    self->owner->admin_arg = fn ? arg : nullptr;
    return GH_OK;
}

gh_status_t reply_drained(gh_stream_t* s, gh_task_fn fn, void* arg) {
    ClientConnection* c = conn(s);
    if (!c)
        return GH_ERR_INVALID;
    if (!s->reply_streamed)
        return GH_ERR_STATE;
    return c->reply_drained(fn, arg);
}

gh_status_t reply_write(gh_stream_t* s, gh_bytes_t data, uint32_t flags) {
    if (!s || (data.len && !data.ptr))
        return GH_ERR_INVALID;
    ClientConnection* c = conn(s);
    if (!c || !s->reply_streamed)
        return GH_ERR_STATE;
    return c->reply_write({reinterpret_cast<const char*>(data.ptr), data.len},
                          (flags & (GH_CHUNK_LAST | GH_CHUNK_ABORT)) != 0,
                          (flags & GH_CHUNK_ABORT) != 0);
}

void* stream_ctx(gh_stream_t* s, gh_module_t* self) {
    if (!s)
        return nullptr;
    for (const auto& slot : s->slots)
        if (slot.module == self)
            return slot.ctx;
    return nullptr;
}

void stream_set_ctx(gh_stream_t* s, gh_module_t* self, void* ctx) {
    if (!s)
        return;
    for (auto& slot : s->slots)
        if (slot.module == self) {
            slot.ctx = ctx;
            return;
        }
    s->slots.push_back({self, ctx});
}

void stream_resume(gh_stream_t* s, gh_action_t action) {
    if (ClientConnection* c = conn(s))
        c->resume(action);
}

gh_status_t body_subscribe(gh_stream_t* s, gh_module_t* self, uint32_t direction, uint32_t mode) {
    ClientConnection* c = conn(s);
    return c ? c->subscribe_body(self, direction, mode) : GH_ERR_INVALID;
}

gh_status_t body_write(gh_stream_t* s, uint32_t direction, gh_bytes_t data) {
    if (!s || (data.len && !data.ptr))
        return GH_ERR_INVALID;
    if (!s->in_on_body || s->body_writer_direction != direction)
        return GH_ERR_STATE;
    s->body_out.append(reinterpret_cast<const char*>(data.ptr), data.len);
    return GH_OK;
}

gh_status_t body_peek(gh_stream_t* s, gh_module_t* self, uint32_t direction, uint64_t bytes) {
    ClientConnection* c = conn(s);
    return c ? c->peek_body(self, direction, bytes) : GH_ERR_INVALID;
}

gh_status_t body_held(gh_stream_t* s, uint32_t direction, gh_bytes_t* out) {
    if (!s || !out || direction > GH_DIR_RESPONSE)
        return GH_ERR_INVALID;
    // What a response peek read, until those bytes move on into the body filters.
    const std::string& held =
        direction == GH_DIR_RESPONSE && !s->peeked.empty() ? s->peeked : s->held_body[direction];
    *out = {reinterpret_cast<const uint8_t*>(held.data()), held.size()};
    return GH_OK;
}

// ---- workers, timers, offload, post ----
gh_worker_t* current_worker() {
    net::Worker* w = net::Worker::current();
    return w ? w->handle() : nullptr;
}

gh_timer_t* timer_start(uint64_t delay_ms, gh_task_fn fn, void* arg) {
    net::Worker* w = net::Worker::current();
    if (!w || !fn)
        return nullptr;
    auto* t = new gh_timer(w->io());
    t->fn = fn;
    t->arg = arg;
    t->timer.expires_after(std::chrono::milliseconds(delay_ms));
    t->timer.async_wait([t](const boost::system::error_code& ec) {
        std::unique_ptr<gh_timer> owned(t);
        if (!ec && t->fn)
            t->fn(t->arg);
    });
    return t;
}

void timer_cancel(gh_timer_t* t) {
    if (!t)
        return;
    t->fn = nullptr; // the handler still runs (and frees t), but calls nothing
    t->timer.cancel();
}

gh_status_t offload(gh_task_fn work, gh_task_fn done, void* arg) {
    net::Worker* w = net::Worker::current();
    if (!w || !work)
        return GH_ERR_STATE;
    boost::asio::post(offload_pool(), [w, work, done, arg] {
        work(arg);
        if (done)
            boost::asio::post(w->io(), [done, arg] { done(arg); });
    });
    return GH_OK;
}

gh_status_t post(gh_worker_t* worker, gh_task_fn fn, void* arg) {
    if (!worker || !fn)
        return GH_ERR_INVALID;
    boost::asio::post(net::Worker::from(worker)->io(), [fn, arg] { fn(arg); });
    return GH_OK;
}

uint64_t now_ms() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
}


// ---- readiness watches (1.3) ----
constexpr uint32_t kFdConditions[2] = {GH_FD_READ, GH_FD_WRITE};

void fd_watch_arm(gh_fd_watch_t* w, int i);

void fd_watch_free_if_done(gh_fd_watch_t* w) {
    if (w->cancelled && !w->waiting[0] && !w->waiting[1])
        delete w;
}

// waiting[i] stays set while fn runs, so a cancel from inside fn cannot free the watch under us.
void fd_watch_done(gh_fd_watch_t* w, int i, const boost::system::error_code& ec) {
    if (!w->cancelled && (w->events & kFdConditions[i])) {
        if (ec) {
            // Not watchable any more (closed under us): report once, then watch nothing.
            w->events = 0;
            w->fn(w->arg, GH_FD_ERROR);
        } else {
            w->fn(w->arg, kFdConditions[i]);
        }
    }
    w->waiting[i] = false;
    if (w->cancelled)
        return fd_watch_free_if_done(w);
    fd_watch_arm(w, i);
}

void fd_watch_arm(gh_fd_watch_t* w, int i) {
    if (w->waiting[i] || !(w->events & kFdConditions[i]))
        return;
    w->waiting[i] = true;
    auto type = i == 0 ? boost::asio::posix::descriptor_base::wait_read
                       : boost::asio::posix::descriptor_base::wait_write;
    w->fd.async_wait(type, [w, i](const boost::system::error_code& ec) { fd_watch_done(w, i, ec); });
}

bool fd_events_valid(uint32_t events) { return (events & ~(GH_FD_READ | GH_FD_WRITE)) == 0; }

gh_fd_watch_t* fd_watch(int fd, uint32_t events, gh_fd_fn fn, void* arg) {
    net::Worker* worker = net::Worker::current();
    if (!worker || !fn || fd < 0 || !fd_events_valid(events))
        return nullptr;
    struct stat st {};
    if (fstat(fd, &st) != 0 || S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
        return nullptr; // epoll cannot watch files (Asio would accept them and fail every wait)
    auto w = std::make_unique<gh_fd_watch>(worker->io(), worker);
    boost::system::error_code ec;
    w->fd.assign(fd, ec); // registers with the worker's epoll: EEXIST if already watched there
    if (ec)
        return nullptr;
    w->fn = fn;
    w->arg = arg;
    w->events = events;
    // Asio never completes a wait inside async_wait, so fn never runs inside fd_watch.
    fd_watch_arm(w.get(), 0);
    fd_watch_arm(w.get(), 1);
    return w.release();
}

gh_status_t fd_watch_set(gh_fd_watch_t* w, uint32_t events) {
    if (!w || !fd_events_valid(events) || w->cancelled)
        return GH_ERR_INVALID;
    if (net::Worker::current() != w->worker)
        return GH_ERR_STATE;
    w->events = events; // a wait no longer wanted completes later and reports nothing
    fd_watch_arm(w, 0);
    fd_watch_arm(w, 1);
    return GH_OK;
}

void fd_watch_cancel(gh_fd_watch_t* w) {
    if (!w || w->cancelled)
        return;
    if (net::Worker::current() != w->worker) {
        log::error("a module called fd_watch_cancel off the watch's worker; ignored");
        return;
    }
    w->cancelled = true;
    w->events = 0;
    // release() takes the descriptor out of epoll now and completes pending waits with
    // operation_aborted; the fd itself stays open for the module to close.
    if (w->fd.is_open())
        w->fd.release();
    fd_watch_free_if_done(w);
}

// ---- access log fields (1.3) ----
constexpr size_t kLogFieldNameMax = 64;
constexpr size_t kLogFieldValueMax = 1024;
constexpr size_t kLogFieldsPerModule = 32;

bool log_field_name_ok(std::string_view name) {
    if (name.empty() || name.size() > kLogFieldNameMax)
        return false;
    for (char c : name)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    return true;
}

gh_status_t log_field(gh_stream_t* s, gh_module_t* self, gh_str_t name, gh_str_t value) {
    if (!s || !self || !self->owner || !log_field_name_ok(sv(name)) ||
        (value.len && !value.ptr) || value.len > kLogFieldValueMax)
        return GH_ERR_INVALID;
    if (s->phase == GH_PHASE_STREAM_END)
        return GH_ERR_STATE;
    const std::string& module = self->owner->name;
    std::string key;
    key.reserve(module.size() + 1 + name.len);
    key.append(module).append(1, '.').append(sv(name));
    size_t mine = 0;
    for (auto& [k, v] : s->log_fields) {
        if (k == key) {
            v.assign(sv(value));
            return GH_OK;
        }
        mine += k.size() > module.size() && k.compare(0, module.size(), module) == 0 &&
                k[module.size()] == '.';
    }
    if (mine >= kLogFieldsPerModule)
        return GH_ERR_INVALID;
    s->log_fields.emplace_back(std::move(key), std::string(sv(value)));
    return GH_OK;
}

// ---- pools ----
uint32_t pool_size(const gh_pool_t* p) {
    return p ? static_cast<uint32_t>(upstream::UpstreamPool::from(p)->size()) : 0;
}

gh_status_t pool_peer(const gh_pool_t* p, uint32_t index, gh_peer_info_t* out) {
    if (!p || !out || out->struct_size < offsetof(gh_peer_info_t, address))
        return GH_ERR_INVALID;
    auto* pool = upstream::UpstreamPool::from(p);
    if (index >= pool->size())
        return GH_ERR_NOT_FOUND;
    const upstream::Peer& peer = pool->peer(index);
    uint32_t size = out->struct_size;
    gh_peer_info_t info{};
    info.struct_size = size;
    info.weight = peer.entry.weight;
    info.max_inflight = peer.entry.max_inflight;
    info.backup = peer.entry.backup ? 1 : 0;
    info.inflight = peer.inflight.load(std::memory_order_relaxed);
    info.address = gs(peer.entry.address);
    std::memcpy(out, &info, std::min<size_t>(size, sizeof info));
    return GH_OK;
}

gh_str_t pool_name(const gh_pool_t* p) {
    return p ? gs(upstream::UpstreamPool::from(p)->name()) : gh_str_t{nullptr, 0};
}

gh_host_api_v1 make_table() {
    gh_host_api_v1 t{};
    t.struct_size = sizeof t;
    t.abi_major = GH_ABI_MAJOR;
    t.abi_minor = GH_ABI_MINOR;
    t.kernel_version = {GATEHOUSE_VERSION, sizeof(GATEHOUSE_VERSION) - 1};
    t.log = host_log;
    t.cfg_type = cfg_type;
    t.cfg_get = cfg_get;
    t.cfg_size = cfg_size;
    t.cfg_at = cfg_at;
    t.cfg_string = cfg_string;
    t.cfg_int = cfg_int;
    t.cfg_float = cfg_float;
    t.cfg_bool = cfg_bool;
    t.cfg_duration_ms = cfg_duration_ms;
    t.cfg_bytes = cfg_bytes;
    t.cfg_error = cfg_error;
    t.metric_register = metric_register;
    t.metric_record = metric_record;
    t.stream_get = stream_get;
    t.header_get = header_get;
    t.header_count = header_count;
    t.header_at = header_at;
    t.header_set = header_set;
    t.response_status = response_status;
    t.respond = respond;
    t.stream_ctx = stream_ctx;
    t.stream_set_ctx = stream_set_ctx;
    t.stream_resume = stream_resume;
    t.body_subscribe = body_subscribe;
    t.body_write = body_write;
    t.body_held = body_held;
    t.body_peek = body_peek;
    t.respond_stream = respond_stream;
    t.reply_write = reply_write;
    t.admin_handle = admin_handle;
    t.reply_drained = reply_drained;
    t.current_worker = current_worker;
    t.timer_start = timer_start;
    t.timer_cancel = timer_cancel;
    t.offload = offload;
    t.post = post;
    t.now_ms = now_ms;
    t.callout = start_callout;
    t.pool_size = pool_size;
    t.pool_peer = pool_peer;
    t.pool_name = pool_name;
    t.fd_watch = fd_watch;
    t.fd_watch_set = fd_watch_set;
    t.fd_watch_cancel = fd_watch_cancel;
    t.log_field = log_field;
    return t;
}

} // namespace

const gh_host_api_v1* host_api() {
    static const gh_host_api_v1 table = make_table();
    return &table;
}

} // namespace gatehouse::modules
