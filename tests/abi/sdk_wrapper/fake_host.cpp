// The fake host table used by sdk_wrapper_test.
#include "fake_host.hpp"

namespace fake {

Node Node::array(std::vector<Node> items) {
    Node n;
    n.type = GH_CFG_ARRAY;
    for (Node &i : items)
        n.children.emplace_back("", std::move(i));
    return n;
}

namespace {

Recorder g_recorder;

const Node &node(const gh_config_node_t *n) { return *reinterpret_cast<const Node *>(n); }
std::string s(gh_str_t v) { return std::string(v.ptr, v.len); }

gh_status_t wrong_type(const gh_config_node_t *n) {
    (void)n;
    g_recorder.config_errors.push_back("wrong type");
    return GH_ERR_INVALID;
}

void fill_config(gh_host_api_v1 &h) {
    h.cfg_type = [](const gh_config_node_t *n) { return node(n).type; };
    h.cfg_get = [](const gh_config_node_t *t, gh_str_t key) -> const gh_config_node_t * {
        g_recorder.keys_read.push_back(s(key));
        for (const auto &[k, child] : node(t).children)
            if (k == s(key))
                return child.handle();
        return nullptr;
    };
    h.cfg_size = [](const gh_config_node_t *n) { return node(n).children.size(); };
    h.cfg_at = [](const gh_config_node_t *n, size_t i, gh_str_t *key) -> const gh_config_node_t * {
        const Node &p = node(n);
        if (i >= p.children.size())
            return nullptr;
        if (key != nullptr)
            *key = gh_str_t{p.children[i].first.data(), p.children[i].first.size()};
        return p.children[i].second.handle();
    };
    h.cfg_string = [](const gh_config_node_t *n, gh_str_t *out) {
        if (node(n).type != GH_CFG_STRING)
            return wrong_type(n);
        *out = gh_str_t{node(n).text.data(), node(n).text.size()};
        return GH_OK;
    };
    h.cfg_int = [](const gh_config_node_t *n, int64_t *out) {
        if (node(n).type != GH_CFG_INT)
            return wrong_type(n);
        *out = node(n).integer;
        return GH_OK;
    };
    h.cfg_float = [](const gh_config_node_t *n, double *out) {
        if (node(n).type != GH_CFG_FLOAT)
            return wrong_type(n);
        *out = node(n).number;
        return GH_OK;
    };
    h.cfg_bool = [](const gh_config_node_t *n, int32_t *out) {
        if (node(n).type != GH_CFG_BOOL)
            return wrong_type(n);
        *out = node(n).boolean ? 1 : 0;
        return GH_OK;
    };
    h.cfg_duration_ms = [](const gh_config_node_t *n, uint64_t *out) {
        if (node(n).type != GH_CFG_INT)
            return wrong_type(n);
        *out = static_cast<uint64_t>(node(n).integer);
        return GH_OK;
    };
    h.cfg_bytes = h.cfg_duration_ms;
    h.cfg_error = [](const gh_config_node_t *, gh_str_t msg) {
        g_recorder.config_errors.push_back(s(msg));
    };
}

void fill_metrics(gh_host_api_v1 &h) {
    h.metric_register = [](gh_module_t *, uint32_t, gh_str_t name, gh_str_t, const gh_str_t *,
                           size_t, const double *, size_t) -> gh_metric_t * {
        g_recorder.metrics_registered.push_back(s(name));
        // The handle is the name's index + 1, never dereferenced.
        return reinterpret_cast<gh_metric_t *>(g_recorder.metrics_registered.size());
    };
    h.metric_record = [](gh_metric_t *m, uint32_t, const gh_str_t *values, size_t n, double v) {
        std::string key = g_recorder.metrics_registered.at(reinterpret_cast<size_t>(m) - 1) + "{";
        for (size_t i = 0; i < n; ++i)
            key += (i ? "," : "") + s(values[i]);
        g_recorder.metric_records.emplace_back(key + "}", v);
    };
}

void fill_streams(gh_host_api_v1 &h) {
    h.stream_get = [](gh_stream_t *, uint32_t fact, gh_str_t *out) {
        if (fact != GH_FACT_PATH)
            return GH_ERR_NOT_FOUND;
        *out = gh_str_t{"/p", 2};
        return GH_OK;
    };
    h.header_get = [](gh_stream_t *, uint32_t, gh_str_t name, size_t index, gh_str_t *out) {
        auto it = g_recorder.request_headers.find(s(name));
        if (index != 0 || it == g_recorder.request_headers.end())
            return GH_ERR_NOT_FOUND;
        *out = gh_str_t{it->second.data(), it->second.size()};
        return GH_OK;
    };
    h.header_set = [](gh_stream_t *, uint32_t, gh_str_t name, gh_str_t value, uint32_t mode) {
        if (mode == GH_HEADER_REMOVE)
            g_recorder.request_headers.erase(s(name));
        else
            g_recorder.request_headers[s(name)] = s(value);
        return GH_OK;
    };
    h.stream_ctx = [](gh_stream_t *st, gh_module_t *m) -> void * {
        auto it = g_recorder.ctx.find({st, m});
        return it == g_recorder.ctx.end() ? nullptr : it->second;
    };
    h.stream_set_ctx = [](gh_stream_t *st, gh_module_t *m, void *c) { g_recorder.ctx[{st, m}] = c; };
    h.stream_resume = [](gh_stream_t *, gh_action_t a) { g_recorder.resumed = a; };
}

void fill_async(gh_host_api_v1 &h) {
    h.post = [](gh_worker_t *, gh_task_fn fn, void *arg) {
        g_recorder.posted.emplace_back(fn, arg);
        return GH_OK;
    };
    h.timer_start = [](uint64_t, gh_task_fn fn, void *arg) {
        g_recorder.posted.emplace_back(fn, arg);
        return reinterpret_cast<gh_timer_t *>(g_recorder.posted.size());
    };
    h.timer_cancel = [](gh_timer_t *t) {
        g_recorder.cancelled.push_back(t);
        g_recorder.posted.erase(g_recorder.posted.begin() + (reinterpret_cast<size_t>(t) - 1));
    };
    h.now_ms = [] { return uint64_t{42}; };
    h.current_worker = []() -> gh_worker_t * { return nullptr; };
}

} // namespace

Recorder &recorder() { return g_recorder; }

gh_host_api_v1 make_host() {
    g_recorder = Recorder{};
    gh_host_api_v1 h{};
    h.struct_size = sizeof(h);
    h.abi_major = GH_ABI_MAJOR;
    h.abi_minor = GH_ABI_MINOR;
    h.kernel_version = gh_str_t{"9.9.9", 5};
    h.log = [](gh_module_t *, uint32_t, gh_str_t msg) { g_recorder.logs.push_back(s(msg)); };
    fill_config(h);
    fill_metrics(h);
    fill_streams(h);
    fill_async(h);
    return h;
}

void run_queued() {
    auto queued = std::move(g_recorder.posted);
    g_recorder.posted.clear();
    for (auto &[fn, arg] : queued)
        fn(arg);
}

} // namespace fake
