/*
 * gatehouse SDK, C++ wrapper -- declarative module configuration.
 *
 * A module declares each of its keys once: name, the Config member it fills, type, allowed range
 * or values, scope (module table, route table or both), an example and one line of docs; the
 * default is whatever Config{} holds. The declaration then reads a table (range checks with
 * the same wording in every module, keys at the wrong scope refused) and prints the key table
 * its README carries (a unit test keeps the two equal: gh::testing::key_table_mismatch).
 *
 *   const gh::Keys<Config> &keys() {
 *       static const gh::Keys<Config> k = gh::Keys<Config>("mymod")
 *           .flag("enabled", &Config::enabled, gh::Scope::both, "`false` turns the filter off")
 *               .example("enabled = false")
 *           .integer("level", &Config::level, 1, 9, gh::Scope::both, "compression level")
 *               .example("level = 4")
 *           .duration("timeout", [](Config &c) -> uint64_t & { return c.io.timeout_ms; }, 10,
 *                     60000, gh::Scope::module, "how long to wait").example("timeout = \"2s\"");
 *       return k;
 *   }
 *   std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base) {
 *       auto c = std::make_unique<Config>(base);
 *       keys().read(table, *c);   // then checks across keys, if any
 *       return c;
 *   }
 *
 * A slot is a pointer to a Config data member or a callable `T &(Config &)` for nested fields.
 * Errors are recorded on the nodes (the kernel prints file:line and the key path) and refuse the
 * configuration; a key that is absent leaves the slot as it is (the default, or for a route the
 * module table's value).
 *
 * Thread: main; read() only inside config hooks. Ownership: the declaration owns copies of all
 * strings. Include <gatehouse/sdk.hpp> rather than this file.
 */
#ifndef GATEHOUSE_SDK_KEYS_HPP
#define GATEHOUSE_SDK_KEYS_HPP

#include "gatehouse/sdk/config.hpp"
#include "gatehouse/sdk/core.hpp"

#include <cstdint>
#include <cstdio>
#include <functional>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace gh {

/* Where a key may be set: the module's table ([filter.NAME] / [balancer.NAME]), a route's
 * filter_config.NAME table, or both (a route's value overrides the module's). */
enum class Scope : uint8_t { module = 1, route = 2, both = 3 };

namespace detail {
// "250ms", "5s", "2m", "1h", "1d": the largest unit that divides exactly.
inline std::string format_duration(uint64_t ms) {
    const std::pair<uint64_t, const char *> units[] = {
        {86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
    if (ms != 0)
        for (const auto &[size, name] : units)
            if (ms % size == 0)
                return cat(ms / size, name);
    return cat(ms, ms == 0 ? "s" : "ms");
}
// "512", "16k", "1m", "1g": the largest power of 1024 that divides exactly.
inline std::string format_bytes(uint64_t n) {
    const std::pair<uint64_t, const char *> units[] = {
        {1024ull * 1024 * 1024, "g"}, {1024ull * 1024, "m"}, {1024, "k"}};
    if (n != 0)
        for (const auto &[size, name] : units)
            if (n % size == 0)
                return cat(n / size, name);
    return cat(n);
}
inline std::string quoted(std::string_view s) { return cat("\"", s, "\""); }
// 0.5, 1, 1e+20: the shortest that reads back the same (up to 15 significant digits).
inline std::string format_number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.15g", v);
    return buf;
}
} // namespace detail

template <class Config>
class Keys {
  public:
    /* One declared key, as the README table shows it. */
    struct Key {
        std::string name;
        std::string type;         // "integer 1–9", "duration ≥ 1s", "bool", ...
        std::string default_text; // markdown: "`6`", "`\"5s\"`", or the module's own words
        Scope scope = Scope::both;
        std::string example;      // a TOML line, e.g. `level = 4`
        std::string doc;          // one line
        std::function<void(const ConfigNode &, Config &)> read; // the key is present
    };
    /* Returns an error message for a bad value, or "" when it is fine. */
    using Check = std::function<std::string(std::string_view)>;

    /* `module` names the module in wrong-scope messages ([filter.MODULE]). */
    explicit Keys(std::string module) : module_(std::move(module)) {}

    /* ---- declaring keys (each returns *this; example() and shown_default() refine the last) -- */

    template <class Slot>
    Keys &flag(std::string name, Slot slot, Scope scope, std::string doc) {
        return add(std::move(name), "bool", code(default_of(slot) ? "true" : "false"), scope,
                   std::move(doc), [slot](const ConfigNode &n, Config &c) {
                       if (auto v = n.boolean())
                           ref(slot, c) = *v;
                   });
    }
    /* An integer in [min, max] (std::numeric_limits<int64_t>::max() for "no upper bound"). */
    template <class Slot>
    Keys &integer(std::string name, Slot slot, int64_t min, int64_t max, Scope scope,
                  std::string doc) {
        const auto show = [](int64_t v) { return cat(v); };
        return add(std::move(name), typed("integer", min, max, show), code(cat(default_of(slot))),
                   scope, std::move(doc), [slot, min, max, show](const ConfigNode &n, Config &c) {
                       if (auto v = n.integer())
                           if (in_range(n, *v, min, max, show))
                               ref(slot, c) = static_cast<std::decay_t<decltype(ref(slot, c))>>(*v);
                   });
    }
    /* A number (TOML float or integer) in [min, max]. */
    template <class Slot>
    Keys &number(std::string name, Slot slot, double min, double max, Scope scope,
                 std::string doc) {
        const auto show = [](double v) { return detail::format_number(v); };
        return add(std::move(name), typed("number", min, max, show),
                   code(show(default_of(slot))), scope, std::move(doc),
                   [slot, min, max, show](const ConfigNode &n, Config &c) {
                       if (auto v = n.number())
                           if (in_range(n, *v, min, max, show))
                               ref(slot, c) = *v;
                   });
    }
    /* A string; `check` (optional) refuses bad values with its message. `type` names what it
     * is in the table ("header name", "absolute path"). */
    template <class Slot>
    Keys &string(std::string name, Slot slot, Scope scope, std::string doc, Check check = {},
                 std::string type = "string") {
        return add(std::move(name), std::move(type), code(detail::quoted(default_of(slot))), scope,
                   std::move(doc), [slot, check](const ConfigNode &n, Config &c) {
                       if (auto v = n.string())
                           if (passes(n, check, *v))
                               ref(slot, c) = std::move(*v);
                   });
    }
    /* An array of strings (the whole array replaces the default); `check` applies per item. */
    template <class Slot>
    Keys &strings(std::string name, Slot slot, Scope scope, std::string doc, Check check = {},
                  std::string type = "array of strings") {
        std::string shown;
        for (const std::string &s : default_of(slot))
            shown += cat(shown.empty() ? "" : ", ", detail::quoted(s));
        return add(std::move(name), std::move(type), code(cat("[", shown, "]")), scope,
                   std::move(doc), [slot, check](const ConfigNode &n, Config &c) {
                       auto v = n.strings();
                       if (!v)
                           return;
                       for (const std::string &item : *v)
                           if (!passes(n, check, item))
                               return;
                       ref(slot, c) = std::move(*v);
                   });
    }
    /* One of a fixed set of strings, each mapped to a value of the slot's type (an enum). */
    template <class Slot, class T>
    Keys &choice(std::string name, Slot slot, std::vector<std::pair<std::string, T>> values,
                 Scope scope, std::string doc) {
        std::string type, shown;
        for (const auto &[text, value] : values) {
            type += cat(type.empty() ? "" : " or ", "`", detail::quoted(text), "`");
            if (value == default_of(slot))
                shown = code(detail::quoted(text));
        }
        return add(std::move(name), std::move(type), std::move(shown), scope, std::move(doc),
                   [slot, values](const ConfigNode &n, Config &c) {
                       auto v = n.string();
                       if (!v)
                           return;
                       std::string allowed;
                       for (const auto &[text, value] : values) {
                           if (text == *v) {
                               ref(slot, c) = value;
                               return;
                           }
                           allowed += cat(allowed.empty() ? "" : ", ", detail::quoted(text));
                       }
                       n.error(cat("must be one of ", allowed, ", got ", detail::quoted(*v)));
                   });
    }
    /* A duration ("250ms", "5s", "2m", "1h", "1d" or integer ms) in [min_ms, max_ms], stored as
     * milliseconds (duration) or whole seconds (duration_s). */
    template <class Slot>
    Keys &duration(std::string name, Slot slot, uint64_t min_ms, uint64_t max_ms, Scope scope,
                   std::string doc) {
        return time_key(std::move(name), slot, min_ms, max_ms, scope, std::move(doc), 1);
    }
    template <class Slot>
    Keys &duration_s(std::string name, Slot slot, uint64_t min_ms, uint64_t max_ms, Scope scope,
                     std::string doc) {
        return time_key(std::move(name), slot, min_ms, max_ms, scope, std::move(doc), 1000);
    }
    /* A size ("512", "64k", "10m", "1g" or integer bytes) in [min, max]. */
    template <class Slot>
    Keys &bytes(std::string name, Slot slot, uint64_t min, uint64_t max, Scope scope,
                std::string doc) {
        const auto show = [](uint64_t v) { return detail::format_bytes(v); };
        const uint64_t d = static_cast<uint64_t>(default_of(slot));
        return add(std::move(name), typed("size", min, max, show),
                   code(d < 1024 ? cat(d) : detail::quoted(detail::format_bytes(d))), scope,
                   std::move(doc), [slot, min, max, show](const ConfigNode &n, Config &c) {
                       if (auto v = n.bytes())
                           if (in_range(n, *v, min, max, show))
                               ref(slot, c) = static_cast<std::decay_t<decltype(ref(slot, c))>>(*v);
                   });
    }
    /* Anything else: `read(node, config)` runs when the key is present; type and default are
     * given as the README shows them (default as markdown, e.g. "`[\"br\", \"gzip\"]`"). */
    Keys &custom(std::string name, std::string type, std::string default_markdown, Scope scope,
                 std::string doc, std::function<void(const ConfigNode &, Config &)> read) {
        return add(std::move(name), std::move(type), std::move(default_markdown), scope,
                   std::move(doc), std::move(read));
    }

    /* The last key's example: one TOML line, shown in the README table. */
    Keys &example(std::string toml) {
        keys_.back().example = std::move(toml);
        return *this;
    }
    /* The last key's default, in the module's words (markdown), when Config{} cannot say it. */
    Keys &shown_default(std::string markdown) {
        keys_.back().default_text = std::move(markdown);
        return *this;
    }

    /* ---- using the declaration ---- */

    /* Read every declared key present in `table` into `config` (which holds the defaults, or
     * for a route the module's values). A key set at the wrong level is an error. Call inside
     * parse_config. */
    void read(const ConfigNode &table, Config &config) const {
        const ConfigLevel level = config_level();
        for (const Key &k : keys_) {
            const ConfigNode node = table.get(k.name);
            if (!node.present())
                continue;
            if (level == ConfigLevel::route && k.scope == Scope::module)
                node.error(cat("is a module-level key: set it in [filter.", module_,
                               "], not in a route's filter_config"));
            else if (level == ConfigLevel::module && k.scope == Scope::route)
                node.error(cat("is a route-level key: set it in a route's filter_config.",
                               module_));
            else
                k.read(node, config);
        }
    }

    const std::vector<Key> &keys() const noexcept { return keys_; }
    const std::string &module() const noexcept { return module_; }

    /* The README's key table (header, separator and one row per key), or "No keys." */
    std::string markdown() const {
        if (keys_.empty())
            return "No keys.\n";
        std::string out = "| key | type | default | scope | example | meaning |\n"
                          "|---|---|---|---|---|---|\n";
        for (const Key &k : keys_)
            out += cat("| `", k.name, "` | ", cell(k.type), " | ", cell(k.default_text), " | ",
                       scope_text(k.scope), " | ", k.example.empty() ? "" : code(k.example),
                       " | ", cell(k.doc), " |\n");
        return out;
    }

  private:
    template <class Slot>
    static decltype(auto) ref(const Slot &slot, Config &c) {
        if constexpr (std::is_member_object_pointer_v<Slot>)
            return (c.*slot);
        else
            return slot(c);
    }
    template <class Slot>
    static auto default_of(const Slot &slot) {
        Config defaults{};
        return std::decay_t<decltype(ref(slot, defaults))>(ref(slot, defaults));
    }
    // Which bounds a range states: a limit at the type's end is none, and 0 is no lower bound
    // worth stating unless there is an upper one ("0–100").
    enum class Bounds { none, at_least, at_most, between };
    template <class T>
    static Bounds bounds(T min, T max) {
        const bool floor = min > std::numeric_limits<T>::lowest() && min != T{};
        if (max < std::numeric_limits<T>::max())
            return floor || min == T{} ? Bounds::between : Bounds::at_most;
        return floor ? Bounds::at_least : Bounds::none;
    }
    // The type column: "integer 1–9", "size ≥ 1m", "duration ≤ 1h", or the kind alone.
    template <class T, class Show>
    static std::string typed(std::string_view kind, T min, T max, Show show) {
        switch (bounds(min, max)) {
        case Bounds::between: return cat(kind, " ", show(min), "–", show(max));
        case Bounds::at_least: return cat(kind, " ≥ ", show(min));
        case Bounds::at_most: return cat(kind, " ≤ ", show(max));
        default: return std::string(kind);
        }
    }
    template <class T, class Show>
    static bool in_range(const ConfigNode &n, T v, T min, T max, Show show) {
        if (v >= min && v <= max)
            return true;
        switch (bounds(min, max)) {
        case Bounds::between:
            n.error(cat("must be between ", show(min), " and ", show(max), ", got ", show(v)));
            break;
        case Bounds::at_most:
            n.error(cat("must be at most ", show(max), ", got ", show(v)));
            break;
        default:
            n.error(cat("must be at least ", show(min), ", got ", show(v)));
        }
        return false;
    }
    static bool passes(const ConfigNode &n, const Check &check, std::string_view v) {
        if (!check)
            return true;
        std::string why = check(v);
        if (why.empty())
            return true;
        n.error(why);
        return false;
    }
    template <class Slot>
    Keys &time_key(std::string name, Slot slot, uint64_t min_ms, uint64_t max_ms, Scope scope,
                   std::string doc, uint64_t unit_ms) {
        const auto show = [](uint64_t v) { return detail::format_duration(v); };
        const uint64_t d = static_cast<uint64_t>(default_of(slot)) * unit_ms;
        return add(std::move(name), typed("duration", min_ms, max_ms, show),
                   code(detail::quoted(detail::format_duration(d))), scope, std::move(doc),
                   [slot, min_ms, max_ms, unit_ms, show](const ConfigNode &n, Config &c) {
                       if (auto v = n.duration_ms())
                           if (in_range(n, *v, min_ms, max_ms, show))
                               ref(slot, c) = static_cast<std::decay_t<decltype(ref(slot, c))>>(
                                   *v / unit_ms);
                   });
    }
    Keys &add(std::string name, std::string type, std::string default_text, Scope scope,
              std::string doc, std::function<void(const ConfigNode &, Config &)> read) {
        keys_.push_back(Key{std::move(name), std::move(type), std::move(default_text), scope, {},
                            std::move(doc), std::move(read)});
        return *this;
    }
    static std::string code(std::string_view s) { return cat("`", s, "`"); }
    static std::string cell(std::string_view s) {
        std::string out;
        for (char c : s)
            out += c == '|' ? std::string("\\|") : std::string(1, c);
        return out;
    }
    static const char *scope_text(Scope s) {
        return s == Scope::module ? "module" : s == Scope::route ? "route" : "module, route";
    }

    std::string module_;
    std::vector<Key> keys_;
};

} // namespace gh

#endif // GATEHOUSE_SDK_KEYS_HPP
