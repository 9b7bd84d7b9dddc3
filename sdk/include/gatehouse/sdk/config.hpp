/*
 * gatehouse SDK, C++ wrapper -- configuration nodes.
 *
 * A module's table ([filter.NAME] / [balancer.NAME], or a route's filter_config.NAME) arrives as a
 * gh::ConfigNode. Every key read with get() becomes "known"; the kernel reports the keys a module
 * never asked for as errors (with a "did you mean"), so a module only reads the keys it supports.
 * Typed readers return std::nullopt when the key is absent (no error) or has the wrong type (the
 * kernel records "file:line: [key.path] ..." at the node); error() records a module-specific one.
 * Any recorded error refuses the configuration: the wrapper's config_parse fails even if the
 * module returned a config.
 *
 * Ownership: nodes and the strings they hand out are the kernel's, valid until the config hook
 * returns; copy what you keep (string() does). Thread: the main thread, inside config_parse /
 * route_config_parse only. Include <gatehouse/sdk.hpp> rather than this file.
 */
#ifndef GATEHOUSE_SDK_CONFIG_HPP
#define GATEHOUSE_SDK_CONFIG_HPP

#include "gatehouse/sdk/core.hpp"

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gh {

/* Which table the current config hook reads: the module's ([filter.NAME] / [balancer.NAME]) or
 * a route's filter_config.NAME. */
enum class ConfigLevel : uint8_t { module, route };

namespace detail {
// Errors recorded during the current config hook (config hooks run on the main thread only).
inline unsigned g_config_errors = 0;
// Set by the wrapper before parse_config.
inline ConfigLevel g_config_level = ConfigLevel::module;
} // namespace detail

/* Number of configuration errors recorded since the current config hook started. Thread: main. */
inline unsigned config_error_count() noexcept { return detail::g_config_errors; }

/* The level of the table the current config hook reads (gh::Keys refuses keys declared for
 * the other one). Thread: main, in config hooks. */
inline ConfigLevel config_level() noexcept { return detail::g_config_level; }

/* One TOML node, or an absent one (a key that is not in its table). Absent nodes remember their
 * table and key, so error() on them reads "missing key `k`: ...". Cheap to copy.
 * Ownership: as the file comment; the key given to get() must outlive the node (a literal).
 * Thread: main, during config hooks. */
class ConfigNode {
  public:
    ConfigNode() = default;
    explicit ConfigNode(const gh_config_node_t *node) noexcept : node_(node) {}

    /* The C handle (nullptr if absent). */
    const gh_config_node_t *raw() const noexcept { return node_; }
    /* True if the key was present. */
    bool present() const noexcept { return node_ != nullptr; }
    explicit operator bool() const noexcept { return present(); }
    /* GH_CFG_*; GH_CFG_NONE if absent. */
    uint32_t type() const noexcept { return node_ ? host().cfg_type(node_) : GH_CFG_NONE; }
    bool is_table() const noexcept { return type() == GH_CFG_TABLE; }
    bool is_array() const noexcept { return type() == GH_CFG_ARRAY; }

    /* The child `key` of this table (marks the key as known). Absent if this node is absent or
     * has no such key. */
    ConfigNode get(std::string_view key) const noexcept {
        ConfigNode child;
        child.parent_ = node_;
        child.key_ = key;
        if (node_ != nullptr)
            child.node_ = host().cfg_get(node_, str(key));
        return child;
    }
    /* Entries of a table or elements of an array (0 for scalars and absent nodes). */
    std::size_t size() const noexcept { return node_ ? host().cfg_size(node_) : 0; }
    /* Element i of an array. */
    ConfigNode at(std::size_t i) const noexcept {
        return node_ ? ConfigNode(host().cfg_at(node_, i, nullptr)) : ConfigNode();
    }
    /* Entry i of a table as {key, value}; the key view lives as long as the node. */
    std::pair<std::string_view, ConfigNode> entry(std::size_t i) const noexcept {
        if (node_ == nullptr)
            return {};
        gh_str_t key{nullptr, 0};
        const gh_config_node_t *value = host().cfg_at(node_, i, &key);
        return {sv(key), ConfigNode(value)};
    }

    /* A string, copied. May throw std::bad_alloc. */
    std::optional<std::string> string() const {
        std::optional<std::string_view> v = view();
        if (!v)
            return std::nullopt;
        return std::string(*v);
    }
    /* A string, borrowed until the config hook returns. */
    std::optional<std::string_view> view() const noexcept {
        gh_str_t out{nullptr, 0};
        if (!read(host_fn(&gh_host_api_v1::cfg_string), &out))
            return std::nullopt;
        return sv(out);
    }
    std::optional<int64_t> integer() const noexcept {
        int64_t out = 0;
        return read(host_fn(&gh_host_api_v1::cfg_int), &out) ? std::optional<int64_t>(out)
                                                             : std::nullopt;
    }
    /* An integer in [min, max]; out of range records "must be between min and max". */
    std::optional<int64_t> integer(int64_t min, int64_t max) const {
        std::optional<int64_t> v = integer();
        if (v && (*v < min || *v > max)) {
            error(cat("must be between ", min, " and ", max, ", got ", *v));
            return std::nullopt;
        }
        return v;
    }
    /* A float (TOML integers are accepted by the kernel if it documents so). */
    std::optional<double> number() const noexcept {
        double out = 0;
        return read(host_fn(&gh_host_api_v1::cfg_float), &out) ? std::optional<double>(out)
                                                               : std::nullopt;
    }
    std::optional<bool> boolean() const noexcept {
        int32_t out = 0;
        return read(host_fn(&gh_host_api_v1::cfg_bool), &out) ? std::optional<bool>(out != 0)
                                                              : std::nullopt;
    }
    /* "250ms", "5s", "2m", "1h", "1d" or an integer of milliseconds. */
    std::optional<uint64_t> duration_ms() const noexcept {
        uint64_t out = 0;
        return read(host_fn(&gh_host_api_v1::cfg_duration_ms), &out) ? std::optional<uint64_t>(out)
                                                                     : std::nullopt;
    }
    /* "512", "64k", "10m", "1g" (powers of 1024) or an integer of bytes. */
    std::optional<uint64_t> bytes() const noexcept {
        uint64_t out = 0;
        return read(host_fn(&gh_host_api_v1::cfg_bytes), &out) ? std::optional<uint64_t>(out)
                                                               : std::nullopt;
    }
    /* An array of strings, copied; any other shape records an error. May throw. */
    std::optional<std::vector<std::string>> strings() const {
        if (node_ == nullptr)
            return std::nullopt;
        if (!is_array()) {
            error("must be an array of strings");
            return std::nullopt;
        }
        std::vector<std::string> out;
        bool ok = true;
        for (std::size_t i = 0, n = size(); i < n; ++i) {
            std::optional<std::string> s = at(i).string();
            ok = ok && s.has_value();
            if (s)
                out.push_back(std::move(*s));
        }
        return ok ? std::optional<std::vector<std::string>>(std::move(out)) : std::nullopt;
    }
    /* A string that must be one of `allowed`; otherwise records an error listing them. */
    std::optional<std::string> one_of(std::initializer_list<std::string_view> allowed) const {
        std::optional<std::string> v = string();
        if (!v)
            return std::nullopt;
        std::string list;
        for (std::string_view a : allowed) {
            if (a == *v)
                return v;
            list += cat(list.empty() ? "" : ", ", "\"", a, "\"");
        }
        error(cat("must be one of ", list, ", got \"", *v, "\""));
        return std::nullopt;
    }

    /* Record an error at this node (at its table, for an absent node; logged if there is no
     * table at all); the configuration is refused. `message` copied. */
    void error(std::string_view message) const noexcept {
        ++detail::g_config_errors;
        if (node_ != nullptr) {
            host().cfg_error(node_, str(message));
            return;
        }
        if (parent_ == nullptr) { // no table at all (a route without its own table)
            log_error(message);
            return;
        }
        try {
            host().cfg_error(parent_, str(cat("missing key `", key_, "`: ", message)));
        } catch (...) {
            host().cfg_error(parent_, str(message));
        }
    }

  private:
    template <class Fn>
    static Fn host_fn(Fn gh_host_api_v1::*field) noexcept {
        return host().*field;
    }
    template <class Out>
    bool read(gh_status_t (*fn)(const gh_config_node_t *, Out *), Out *out) const noexcept {
        if (node_ == nullptr)
            return false;
        if (fn(node_, out) == GH_OK)
            return true;
        ++detail::g_config_errors; // the kernel recorded a type error at the node
        return false;
    }

    const gh_config_node_t *node_ = nullptr;
    const gh_config_node_t *parent_ = nullptr;
    std::string_view key_;
};

} // namespace gh

#endif // GATEHOUSE_SDK_CONFIG_HPP
