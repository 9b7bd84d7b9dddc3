/*
 * gatehouse SDK, test support -- the fake host table (FakeHost) and what it records.
 * Part of <gatehouse/sdk/testing.hpp> (include that one); see it for the whole picture.
 */
#ifndef GATEHOUSE_SDK_TESTING_HOST_HPP
#define GATEHOUSE_SDK_TESTING_HOST_HPP

#include "gatehouse/sdk/testing/fakes.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>


namespace gh::testing {

/* ---- the host -------------------------------------------------------------------------------- */

class FakeHost {
  public:
    struct MetricRecord {
        std::string name;                // as registered (without "gatehouse_")
        std::vector<std::string> labels; // values in registration order
        uint32_t op = 0;
        double value = 0;
    };
    struct Callout {
        std::string upstream, method, target, body;
        FakeStream::Fields headers;
        gh_callout_done_fn done = nullptr;
        void *arg = nullptr;
    };
    struct FdWatch {
        int fd = -1;
        uint32_t events = 0;
        gh_fd_fn fn = nullptr;
        void *arg = nullptr;
        bool cancelled = false;
    };

    FakeHost() : previous_(gh::Host::api()) {
        current() = this;
        table_ = make_table();
        gh::Host::set(&table_);
    }
    ~FakeHost() {
        gh::Host::set(previous_);
        current() = nullptr;
    }
    FakeHost(const FakeHost &) = delete;
    FakeHost &operator=(const FakeHost &) = delete;

    const gh_host_api_v1 *table() const noexcept { return &table_; }
    /* Pretend to be an older kernel: only the functions up to `field` exist. */
    template <class Field>
    void truncate_after(Field gh_host_api_v1::*field) {
        static const gh_host_api_v1 layout{};
        table_.struct_size = static_cast<uint32_t>(
            reinterpret_cast<const char *>(&(layout.*field)) -
            reinterpret_cast<const char *>(&layout) + sizeof(Field));
    }

    /* ---- what the module did ---- */
    std::vector<std::string> logs;          // "LEVEL message" (ERROR/WARN/INFO/DEBUG)
    std::vector<std::string> config_errors; // "key.path: message" (just the message at the top)
    std::vector<std::string> metrics;       // registered names
    std::vector<MetricRecord> records;
    struct Task {
        gh_task_fn fn;
        void *arg;
        uintptr_t id; // a timer's handle
    };
    std::deque<Task> queued; // timers, posts, offload work + done, reply_drained, in order
    std::vector<Callout> callouts;                    // sent, not completed yet
    std::vector<std::unique_ptr<FdWatch>> watches;
    uint64_t now = 1000;                      // now_ms()
    gh_worker_t *worker = reinterpret_cast<gh_worker_t *>(uintptr_t{0x1000}); // current_worker()

    /* All config errors joined by newlines (for assertion messages). */
    std::string config_errors_text() const {
        std::string out;
        for (const auto &e : config_errors)
            out += e + "\n";
        return out;
    }
    /* The sum of what was recorded for `name` with these label values (any labels if empty). */
    double metric(std::string_view name, std::vector<std::string> labels = {}) const {
        double total = 0;
        for (const auto &r : records)
            if (r.name == name && (labels.empty() || r.labels == labels))
                total = r.op == GH_METRIC_SET ? r.value : total + r.value;
        return total;
    }
    /* Run queued timers and posts (and what they queue) until none are left, at most `limit`. */
    std::size_t run_queued(std::size_t limit = 10000) {
        std::size_t n = 0;
        while (!queued.empty() && n < limit) {
            Task t = queued.front();
            queued.pop_front();
            t.fn(t.arg);
            ++n;
        }
        return n;
    }
    /* Complete the oldest pending callout with `status` (negative: a gh_status_t failure). */
    void complete_callout(int32_t status, std::string body = {},
                          FakeStream::Fields headers = {}, std::string error = {}) {
        if (callouts.empty())
            return;
        Callout c = std::move(callouts.front());
        callouts.erase(callouts.begin());
        std::vector<gh_header_t> fields;
        for (const auto &[n, v] : headers)
            fields.push_back(gh_header_t{gh::str(n), gh::str(v)});
        gh_callout_response_t r{};
        r.struct_size = sizeof r;
        r.status = status;
        r.headers = fields.data();
        r.header_count = fields.size();
        r.body = gh::bytes(body);
        r.error = gh::str(error);
        c.done(c.arg, &r);
    }
    /* Report `events` on every live watch of `fd` that watches them. */
    void fire_fd(int fd, uint32_t events) {
        for (std::size_t i = 0; i < watches.size(); ++i) {
            FdWatch *w = watches[i].get();
            const uint32_t ev = events == GH_FD_ERROR ? GH_FD_ERROR : (events & w->events);
            if (w->fd == fd && !w->cancelled && ev != 0)
                w->fn(w->arg, ev);
        }
    }
    /* The live watch of `fd`, or nullptr. */
    const FdWatch *watch_of(int fd) const {
        for (const auto &w : watches)
            if (w->fd == fd && !w->cancelled)
                return w.get();
        return nullptr;
    }

    static FakeHost &get() noexcept { return *current(); }

  private:
    uintptr_t next_task_ = 1;
    uintptr_t queue(gh_task_fn fn, void *arg) {
        queued.push_back(Task{fn, arg, next_task_});
        return next_task_++;
    }

    static FakeHost *&current() noexcept {
        static FakeHost *host = nullptr;
        return host;
    }
    static std::string s(gh_str_t v) { return v.ptr ? std::string(v.ptr, v.len) : std::string(); }
    static const Value &node(const gh_config_node_t *n) { return Value::of(n); }

    // Keys asked for during the current config hook, per table, for the unknown-key check.
    std::map<const Value *, std::set<std::string>> known_;
    std::map<const Value *, std::string> paths_;

    std::string path_of(const gh_config_node_t *n) const {
        auto it = paths_.find(&node(n));
        return it == paths_.end() ? std::string() : it->second;
    }
    void record_error(const gh_config_node_t *n, const std::string &msg) {
        const std::string path = path_of(n);
        config_errors.push_back(path.empty() ? msg : path + ": " + msg);
    }
    void note_child(const gh_config_node_t *table, const std::string &key, const Value *child) {
        known_[&node(table)].insert(key);
        const std::string parent = path_of(table);
        paths_[child] = parent.empty() ? key : parent + "." + key;
    }

  public:
    /* After a config hook: every key of `table` (recursively, into the tables the module
     * reached) the module never asked for becomes an "unknown key" error, as in the kernel. */
    void check_unknown_keys(const gh_config_node_t *table) {
        const Value &t = node(table);
        if (t.type() != GH_CFG_TABLE)
            return;
        const auto &known = known_[&t];
        for (const auto &[key, child] : t.children()) {
            if (!known.count(key)) {
                const std::string parent = path_of(table);
                config_errors.push_back((parent.empty() ? key : parent + "." + key) +
                                        ": unknown key");
            } else if (child.type() == GH_CFG_TABLE) {
                check_unknown_keys(child.handle());
            }
        }
    }
    /* Forget the keys read so far (each config hook starts afresh). */
    void start_config_hook() {
        known_.clear();
        paths_.clear();
    }

  private:
    static std::optional<uint64_t> units(std::string_view text,
                                         std::initializer_list<std::pair<const char *, uint64_t>> u) {
        uint64_t v = 0;
        std::size_t i = 0;
        for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i)
            v = v * 10 + static_cast<uint64_t>(text[i] - '0');
        if (i == 0)
            return std::nullopt;
        for (const auto &[name, factor] : u)
            if (text.substr(i) == name)
                return v * factor;
        return std::nullopt;
    }
    static gh_status_t type_error(const gh_config_node_t *n, const char *want) {
        get().record_error(n, std::string("must be ") + want);
        return GH_ERR_INVALID;
    }

    static void fill_config(gh_host_api_v1 &t) {
        t.cfg_type = [](const gh_config_node_t *n) { return n ? node(n).type() : GH_CFG_NONE; };
        t.cfg_get = [](const gh_config_node_t *tb, gh_str_t key) -> const gh_config_node_t * {
            if (tb == nullptr || node(tb).type() != GH_CFG_TABLE)
                return nullptr;
            const std::string k = s(key);
            for (const auto &[name, child] : node(tb).children())
                if (name == k) {
                    get().note_child(tb, k, &child);
                    return child.handle();
                }
            get().known_[&node(tb)].insert(k);
            return nullptr;
        };
        t.cfg_size = [](const gh_config_node_t *n) -> size_t {
            return n && (node(n).type() == GH_CFG_TABLE || node(n).type() == GH_CFG_ARRAY)
                       ? node(n).children().size()
                       : 0;
        };
        t.cfg_at = [](const gh_config_node_t *n, size_t i, gh_str_t *key) -> const gh_config_node_t * {
            if (n == nullptr || i >= node(n).children().size())
                return nullptr;
            const auto &[name, child] = node(n).children()[i];
            if (key != nullptr)
                *key = gh::str(name);
            get().note_child(n, node(n).type() == GH_CFG_TABLE ? name : std::to_string(i), &child);
            return child.handle();
        };
        t.cfg_string = [](const gh_config_node_t *n, gh_str_t *out) {
            if (node(n).type() != GH_CFG_STRING)
                return type_error(n, "a string");
            *out = gh::str(node(n).text());
            return GH_OK;
        };
        t.cfg_int = [](const gh_config_node_t *n, int64_t *out) {
            if (node(n).type() != GH_CFG_INT)
                return type_error(n, "an integer");
            *out = node(n).integer();
            return GH_OK;
        };
        t.cfg_float = [](const gh_config_node_t *n, double *out) {
            if (node(n).type() == GH_CFG_INT)
                *out = static_cast<double>(node(n).integer());
            else if (node(n).type() == GH_CFG_FLOAT)
                *out = node(n).number();
            else
                return type_error(n, "a number");
            return GH_OK;
        };
        t.cfg_bool = [](const gh_config_node_t *n, int32_t *out) {
            if (node(n).type() != GH_CFG_BOOL)
                return type_error(n, "a boolean");
            *out = node(n).boolean() ? 1 : 0;
            return GH_OK;
        };
        t.cfg_duration_ms = [](const gh_config_node_t *n, uint64_t *out) {
            const Value &v = node(n);
            std::optional<uint64_t> ms;
            if (v.type() == GH_CFG_INT && v.integer() >= 0)
                ms = static_cast<uint64_t>(v.integer());
            else if (v.type() == GH_CFG_STRING)
                ms = units(v.text(), {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
                                      {"d", 86400000}});
            if (!ms)
                return type_error(n, "a duration such as \"250ms\", \"5s\", \"2m\"");
            *out = *ms;
            return GH_OK;
        };
        t.cfg_bytes = [](const gh_config_node_t *n, uint64_t *out) {
            const Value &v = node(n);
            std::optional<uint64_t> b;
            if (v.type() == GH_CFG_INT && v.integer() >= 0)
                b = static_cast<uint64_t>(v.integer());
            else if (v.type() == GH_CFG_STRING)
                b = units(v.text(), {{"", 1}, {"b", 1}, {"k", 1024}, {"K", 1024},
                                     {"m", 1024 * 1024}, {"M", 1024 * 1024},
                                     {"g", 1024ull * 1024 * 1024}, {"G", 1024ull * 1024 * 1024}});
            if (!b)
                return type_error(n, "a size such as \"512\", \"64k\", \"10m\"");
            *out = *b;
            return GH_OK;
        };
        t.cfg_error = [](const gh_config_node_t *n, gh_str_t msg) { get().record_error(n, s(msg)); };
    }

    static void fill_metrics(gh_host_api_v1 &t) {
        t.metric_register = [](gh_module_t *, uint32_t, gh_str_t name, gh_str_t, const gh_str_t *,
                               size_t, const double *, size_t) -> gh_metric_t * {
            FakeHost &h = get();
            const std::string n = s(name);
            for (std::size_t i = 0; i < h.metrics.size(); ++i)
                if (h.metrics[i] == n)
                    return reinterpret_cast<gh_metric_t *>(i + 1);
            h.metrics.push_back(n);
            return reinterpret_cast<gh_metric_t *>(h.metrics.size()); // index + 1, never read
        };
        t.metric_record = [](gh_metric_t *m, uint32_t op, const gh_str_t *values, size_t n,
                             double v) {
            FakeHost &h = get();
            const std::size_t index = reinterpret_cast<std::size_t>(m);
            if (index == 0 || index > h.metrics.size())
                return;
            MetricRecord r{h.metrics[index - 1], {}, op, v};
            for (size_t i = 0; i < n; ++i)
                r.labels.push_back(s(values[i]));
            h.records.push_back(std::move(r));
        };
    }

    static void fill_streams(gh_host_api_v1 &t) {
        t.stream_get = [](gh_stream_t *st, uint32_t fact, gh_str_t *out) {
            if (st == nullptr || out == nullptr || fact > GH_FACT_UPSTREAM_ERROR)
                return GH_ERR_INVALID;
            const std::string *v = FakeStream::of(st).fact(fact);
            *out = v ? gh::str(*v) : gh_str_t{"", 0};
            return GH_OK;
        };
        t.header_get = [](gh_stream_t *st, uint32_t which, gh_str_t name, size_t index,
                          gh_str_t *out) {
            for (const auto &[n, v] : FakeStream::of(st).block(which))
                if (gh::http::iequals(n, gh::sv(name)) && index-- == 0) {
                    *out = gh::str(v);
                    return GH_OK;
                }
            return GH_ERR_NOT_FOUND;
        };
        t.header_count = [](gh_stream_t *st, uint32_t which) {
            return FakeStream::of(st).block(which).size();
        };
        t.header_at = [](gh_stream_t *st, uint32_t which, size_t i, gh_str_t *name, gh_str_t *value) {
            auto &b = FakeStream::of(st).block(which);
            if (i >= b.size())
                return GH_ERR_NOT_FOUND;
            if (name)
                *name = gh::str(b[i].first);
            if (value)
                *value = gh::str(b[i].second);
            return GH_OK;
        };
        t.header_set = [](gh_stream_t *st, uint32_t which, gh_str_t name, gh_str_t value,
                          uint32_t mode) {
            const std::string n = s(name), v = s(value);
            if (n.empty() || n.find_first_of(" \t\r\n:\0", 0, 6) != std::string::npos ||
                v.find_first_of("\r\n\0", 0, 3) != std::string::npos)
                return GH_ERR_INVALID;
            auto &b = FakeStream::of(st).block(which);
            if (mode != GH_HEADER_ADD)
                for (auto it = b.begin(); it != b.end();)
                    it = gh::http::iequals(it->first, n) ? b.erase(it) : it + 1;
            if (mode != GH_HEADER_REMOVE)
                b.emplace_back(n, v);
            return GH_OK;
        };
        t.response_status = [](gh_stream_t *st) {
            FakeStream &f = FakeStream::of(st);
            return f.reply ? f.reply->status : f.status;
        };
        t.respond = [](gh_stream_t *st, uint32_t status, const gh_header_t *headers, size_t n,
                       gh_bytes_t body) {
            if (status < 200 || status > 599)
                return GH_ERR_INVALID;
            FakeStream::Reply r;
            r.status = status;
            for (size_t i = 0; i < n; ++i)
                r.headers.emplace_back(s(headers[i].name), s(headers[i].value));
            r.body = std::string(gh::sv(body));
            r.length = r.body.size();
            FakeStream::of(st).reply = std::move(r);
            return GH_OK;
        };
        t.stream_ctx = [](gh_stream_t *st, gh_module_t *m) -> void * {
            auto &c = FakeStream::of(st).ctx;
            auto it = c.find(m);
            return it == c.end() ? nullptr : it->second;
        };
        t.stream_set_ctx = [](gh_stream_t *st, gh_module_t *m, void *c) {
            FakeStream::of(st).ctx[m] = c;
        };
        t.stream_resume = [](gh_stream_t *st, gh_action_t a) { FakeStream::of(st).resumed = a; };
        t.log_field = [](gh_stream_t *st, gh_module_t *, gh_str_t name, gh_str_t value) {
            const std::string n = s(name);
            if (n.empty() || n.size() > 64 || value.len > 1024 ||
                n.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos)
                return GH_ERR_INVALID;
            auto &fields = FakeStream::of(st).log_fields;
            for (auto &[k, v] : fields)
                if (k == n) {
                    v = s(value);
                    return GH_OK;
                }
            fields.emplace_back(n, s(value));
            return GH_OK;
        };
    }

    static void fill_bodies(gh_host_api_v1 &t) {
        t.body_subscribe = [](gh_stream_t *st, gh_module_t *, uint32_t direction, uint32_t mode) {
            if (direction > GH_DIR_RESPONSE || mode > GH_BODY_BUFFER)
                return GH_ERR_INVALID;
            FakeStream::of(st).subscriptions.insert({direction, mode});
            return GH_OK;
        };
        t.body_write = [](gh_stream_t *st, uint32_t direction, gh_bytes_t data) {
            if (direction > GH_DIR_RESPONSE)
                return GH_ERR_INVALID;
            FakeStream::of(st).written[direction] += std::string(gh::sv(data));
            return GH_OK;
        };
        t.body_held = [](gh_stream_t *st, uint32_t direction, gh_bytes_t *out) {
            if (direction > GH_DIR_RESPONSE)
                return GH_ERR_INVALID;
            *out = gh::bytes(FakeStream::of(st).held[direction]);
            return GH_OK;
        };
        t.respond_stream = [](gh_stream_t *st, uint32_t status, const gh_header_t *headers,
                              size_t n, uint64_t length) {
            gh_status_t r = get().table_.respond(st, status, headers, n, gh_bytes_t{nullptr, 0});
            if (r == GH_OK) {
                FakeStream::of(st).reply->streamed = true;
                FakeStream::of(st).reply->length = length;
            }
            return r;
        };
        t.reply_write = [](gh_stream_t *st, gh_bytes_t data, uint32_t flags) {
            auto &reply = FakeStream::of(st).reply;
            if (!reply || !reply->streamed || reply->ended)
                return GH_ERR_STATE;
            reply->body += std::string(gh::sv(data));
            reply->ended = (flags & (GH_CHUNK_LAST | GH_CHUNK_ABORT)) != 0;
            reply->aborted = (flags & GH_CHUNK_ABORT) != 0;
            return GH_OK;
        };
        t.reply_drained = [](gh_stream_t *, gh_task_fn fn, void *arg) {
            get().queue(fn, arg);
            return GH_OK;
        };
    }

    static void fill_async(gh_host_api_v1 &t) {
        t.current_worker = []() { return get().worker; };
        t.timer_start = [](uint64_t, gh_task_fn fn, void *arg) -> gh_timer_t * {
            return fn ? reinterpret_cast<gh_timer_t *>(get().queue(fn, arg)) : nullptr;
        };
        t.timer_cancel = [](gh_timer_t *timer) {
            auto &q = get().queued;
            for (auto it = q.begin(); it != q.end(); ++it)
                if (it->id == reinterpret_cast<uintptr_t>(timer)) {
                    q.erase(it);
                    return;
                }
        };
        t.offload = [](gh_task_fn work, gh_task_fn done, void *arg) {
            if (work == nullptr)
                return GH_ERR_INVALID;
            get().queue(work, arg);
            if (done != nullptr)
                get().queue(done, arg);
            return GH_OK;
        };
        t.post = [](gh_worker_t *w, gh_task_fn fn, void *arg) {
            if (w == nullptr || fn == nullptr)
                return GH_ERR_INVALID;
            get().queue(fn, arg);
            return GH_OK;
        };
        t.now_ms = []() { return get().now; };
        t.callout = [](const gh_callout_request_t *r, gh_callout_done_fn done, void *arg) {
            if (r == nullptr || done == nullptr || r->upstream.len == 0)
                return GH_ERR_INVALID;
            Callout c{s(r->upstream), s(r->method), s(r->target),
                      std::string(gh::sv(r->body)), {}, done, arg};
            for (size_t i = 0; i < r->header_count; ++i)
                c.headers.emplace_back(s(r->headers[i].name), s(r->headers[i].value));
            get().callouts.push_back(std::move(c));
            return GH_OK;
        };
        t.fd_watch = [](int fd, uint32_t events, gh_fd_fn fn, void *arg) -> gh_fd_watch_t * {
            FakeHost &h = get();
            if (fd < 0 || fn == nullptr || (events & ~(GH_FD_READ | GH_FD_WRITE)) != 0 ||
                h.watch_of(fd) != nullptr)
                return nullptr;
            h.watches.push_back(std::make_unique<FdWatch>(FdWatch{fd, events, fn, arg, false}));
            return reinterpret_cast<gh_fd_watch_t *>(h.watches.back().get());
        };
        t.fd_watch_set = [](gh_fd_watch_t *w, uint32_t events) {
            auto *watch = reinterpret_cast<FdWatch *>(w);
            if (watch == nullptr || watch->cancelled || (events & ~(GH_FD_READ | GH_FD_WRITE)))
                return GH_ERR_INVALID;
            watch->events = events;
            return GH_OK;
        };
        t.fd_watch_cancel = [](gh_fd_watch_t *w) {
            if (w != nullptr)
                reinterpret_cast<FdWatch *>(w)->cancelled = true; // kept: fire_fd may be iterating
        };
    }

    static void fill_pools(gh_host_api_v1 &t) {
        t.pool_size = [](const gh_pool_t *p) -> uint32_t {
            return p ? static_cast<uint32_t>(FakePool::of(p).peers.size()) : 0;
        };
        t.pool_peer = [](const gh_pool_t *p, uint32_t index, gh_peer_info_t *out) {
            if (p == nullptr || out == nullptr || out->struct_size < offsetof(gh_peer_info_t, address))
                return GH_ERR_INVALID;
            const FakePool &pool = FakePool::of(p);
            if (index >= pool.peers.size())
                return GH_ERR_NOT_FOUND;
            const FakePool::Peer &peer = pool.peers[index];
            gh_peer_info_t info{};
            info.struct_size = out->struct_size;
            info.weight = peer.weight;
            info.max_inflight = peer.max_inflight;
            info.backup = peer.backup ? 1 : 0;
            info.inflight = peer.inflight;
            info.address = gh::str(peer.address);
            std::memcpy(out, &info, out->struct_size < sizeof info ? out->struct_size : sizeof info);
            return GH_OK;
        };
        t.pool_name = [](const gh_pool_t *p) {
            return p ? gh::str(FakePool::of(p).name) : gh_str_t{nullptr, 0};
        };
    }

    static gh_host_api_v1 make_table() {
        gh_host_api_v1 t{};
        t.struct_size = sizeof t;
        t.abi_major = GH_ABI_MAJOR;
        t.abi_minor = GH_ABI_MINOR;
        t.kernel_version = gh_str_t{"0.0.0-test", 10};
        t.log = [](gh_module_t *, uint32_t level, gh_str_t msg) {
            static const char *const names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
            get().logs.push_back(std::string(names[level > 3 ? 3 : level]) + " " + s(msg));
        };
        fill_config(t);
        fill_metrics(t);
        fill_streams(t);
        fill_bodies(t);
        fill_async(t);
        fill_pools(t);
        return t;
    }

    const gh_host_api_v1 *previous_;
    gh_host_api_v1 table_{};
};

} // namespace gh::testing

#endif // GATEHOUSE_SDK_TESTING_HOST_HPP
