// abi_conformance: config hooks. Every cfg_* getter is exercised and cross-checked against the
// paired "*_expect" keys (see README.md for the table the module expects).
#include "conformance.hpp"

#include <memory>

namespace abi_conformance {

namespace {

const gh_config_node_t *get(const gh_config_node_t *table, std::string_view key) noexcept {
    return g_host->cfg_get(table, str(key));
}

void error(const gh_config_node_t *node, const std::string &msg) noexcept {
    g_host->cfg_error(node, str(msg));
}

// A required key of type `type`; records "missing"/"must be" errors itself.
const gh_config_node_t *required(const gh_config_node_t *table, std::string_view key,
                                 uint32_t type, bool &ok) noexcept {
    const gh_config_node_t *node = get(table, key);
    global_check(node == nullptr || g_host->cfg_type(node) == type, kCfgType);
    if (node == nullptr) {
        error(table, "abi_conformance needs key `" + std::string(key) + "`");
        ok = false;
    }
    return node;
}

bool read_scalars(const gh_config_node_t *table, Config &c) noexcept {
    bool ok = true;
    gh_str_t s{nullptr, 0};
    int64_t i = 0, expect = 0;
    double f = 0;
    int32_t b = 0;
    uint64_t u = 0;
    if (auto *n = required(table, "callout_upstream", GH_CFG_STRING, ok)) {
        global_check(g_host->cfg_string(n, &s) == GH_OK && s.len > 0, kCfgString);
        c.callout_upstream = std::string(sv(s));
    }
    if (auto *n = required(table, "timer_ms", GH_CFG_INT, ok)) {
        global_check(g_host->cfg_int(n, &i) == GH_OK, kCfgInt);
        if (i < 0 || i > 60000) {
            error(n, "must be between 0 and 60000");
            ok = false;
        }
        c.timer_ms = i;
    }
    if (auto *n = required(table, "ratio", GH_CFG_FLOAT, ok)) {
        global_check(g_host->cfg_float(n, &f) == GH_OK, kCfgFloat);
        c.ratio = f;
    }
    if (auto *n = required(table, "enabled", GH_CFG_BOOL, ok)) {
        global_check(g_host->cfg_bool(n, &b) == GH_OK, kCfgBool);
        c.enabled = b != 0;
    }
    auto *timeout = required(table, "timeout", GH_CFG_STRING, ok);
    auto *timeout_expect = required(table, "timeout_expect_ms", GH_CFG_INT, ok);
    if (timeout && timeout_expect) {
        global_check(g_host->cfg_duration_ms(timeout, &u) == GH_OK &&
                         g_host->cfg_int(timeout_expect, &expect) == GH_OK &&
                         u == static_cast<uint64_t>(expect),
                     kCfgDuration);
        c.timeout_ms = u;
    }
    auto *max_body = required(table, "max_body", GH_CFG_STRING, ok);
    auto *max_body_expect = required(table, "max_body_expect", GH_CFG_INT, ok);
    if (max_body && max_body_expect) {
        global_check(g_host->cfg_bytes(max_body, &u) == GH_OK &&
                         g_host->cfg_int(max_body_expect, &expect) == GH_OK &&
                         u == static_cast<uint64_t>(expect),
                     kCfgBytes);
        c.max_body = u;
    }
    return ok;
}

bool read_composites(const gh_config_node_t *table, Config &c) noexcept {
    bool ok = true;
    if (auto *labels = required(table, "labels", GH_CFG_ARRAY, ok)) {
        const size_t n = g_host->cfg_size(labels);
        global_check(n > 0, kCfgSize);
        for (size_t i = 0; i < n; ++i) {
            gh_str_t s{nullptr, 0};
            const gh_config_node_t *item = g_host->cfg_at(labels, i, nullptr);
            global_check(item != nullptr && g_host->cfg_string(item, &s) == GH_OK, kCfgAt);
            c.labels.emplace_back(sv(s));
        }
        global_check(g_host->cfg_at(labels, n, nullptr) == nullptr, kCfgAt);
    }
    if (auto *extra = required(table, "extra", GH_CFG_TABLE, ok)) {
        const size_t n = g_host->cfg_size(extra);
        global_check(n > 0, kCfgSize);
        for (size_t i = 0; i < n; ++i) {
            gh_str_t key{nullptr, 0};
            int64_t v = 0;
            const gh_config_node_t *item = g_host->cfg_at(extra, i, &key);
            global_check(item != nullptr && key.len > 0, kCfgAt);
            // Entries of `extra` are read by index, never by cfg_get: the kernel must not call
            // them unknown keys.
            if (item != nullptr && g_host->cfg_type(item) == GH_CFG_INT &&
                g_host->cfg_int(item, &v) == GH_OK)
                c.extra.emplace_back(std::string(sv(key)), v);
        }
    }
    global_check(g_host->cfg_size(table) > 0, kCfgSize);
    return ok;
}

} // namespace

gh_status_t config_parse(void *, const gh_config_node_t *table, void **out) noexcept {
    try {
        auto c = std::make_unique<Config>();
        global_check(table != nullptr && g_host->cfg_type(table) == GH_CFG_TABLE, kCfgType);
        global_check(get(table, "abi_probe_absent_key") == nullptr, kCfgGetAbsent);
        bool ok = read_scalars(table, *c);
        ok = read_composites(table, *c) && ok;
        // fail_on_purpose = true: report an error at that node (tests the file:line path).
        if (const gh_config_node_t *fail = get(table, "fail_on_purpose")) {
            int32_t b = 0;
            if (g_host->cfg_bool(fail, &b) != GH_OK) {
                ok = false;
            } else if (b != 0) {
                error(fail, "fail_on_purpose is set: abi_conformance refuses this config");
                ok = false;
            }
        }
        if (const gh_config_node_t *port = get(table, "watch_port")) {
            if (g_host->cfg_int(port, &c->watch_port) != GH_OK) {
                ok = false;
            } else if (c->watch_port < 1 || c->watch_port > 65535) {
                error(port, "must be between 1 and 65535");
                ok = false;
            }
        }
        global_check(get(table, "callout_upstream") != nullptr || !ok, kCfgGet);
        if (!ok)
            return GH_ERR_INVALID;
        *out = c.release();
        return GH_OK;
    } catch (...) {
        return GH_ERR_INTERNAL;
    }
}

void config_free(void *, void *config) noexcept { delete static_cast<Config *>(config); }

gh_status_t route_config_parse(void *, void *config, const gh_config_node_t *table,
                               void **out) noexcept {
    try {
        global_check(config != nullptr, kRouteConfig);
        if (config == nullptr)
            return GH_ERR_INVALID;
        auto c = std::make_unique<Config>(*static_cast<const Config *>(config));
        if (table != nullptr) {
            if (const gh_config_node_t *tag = get(table, "tag")) {
                gh_str_t s{nullptr, 0};
                if (g_host->cfg_string(tag, &s) != GH_OK)
                    return GH_ERR_INVALID;
                c->tag = std::string(sv(s));
            }
        }
        *out = c.release();
        return GH_OK;
    } catch (...) {
        return GH_ERR_INTERNAL;
    }
}

} // namespace abi_conformance
