#include "config/table_reader.hpp"

#include "config/units.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace gatehouse::config {

const char* type_name(const toml::node& node) {
    switch (node.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    default: return "a date/time";
    }
}

std::optional<uint64_t> read_duration_ms(const toml::node& node) {
    if (auto i = node.value_exact<int64_t>())
        return *i >= 0 ? std::optional<uint64_t>(static_cast<uint64_t>(*i)) : std::nullopt;
    if (auto s = node.value_exact<std::string>())
        return parse_duration_ms(*s);
    return std::nullopt;
}

std::optional<uint64_t> read_bytes(const toml::node& node) {
    if (auto i = node.value_exact<int64_t>())
        return *i >= 0 ? std::optional<uint64_t>(static_cast<uint64_t>(*i)) : std::nullopt;
    if (auto s = node.value_exact<std::string>())
        return parse_bytes(*s);
    return std::nullopt;
}

std::string TableReader::key_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
}

uint32_t TableReader::line(std::string_view key) const {
    const toml::node* n = table_->get(key);
    return static_cast<uint32_t>((n ? n->source() : table_->source()).begin.line);
}

const toml::node* TableReader::node(std::string_view key) {
    if (std::find(known_.begin(), known_.end(), key) == known_.end())
        known_.emplace_back(key);
    return table_->get(key);
}

void TableReader::error(std::string_view key, std::string message) {
    const toml::node* n = table_->get(key);
    diag_->error(n ? n->source() : table_->source(), key_path(key), std::move(message));
}

void TableReader::error_at(const toml::node& n, std::string_view key, std::string message) {
    diag_->error(n.source(), key_path(key), std::move(message));
}

std::optional<std::string> TableReader::string(std::string_view key) {
    const toml::node* n = node(key);
    if (!n)
        return std::nullopt;
    if (auto s = n->value_exact<std::string>())
        return *s;
    error(key, fmt::format("expected a string, found {}", type_name(*n)));
    return std::nullopt;
}

std::string TableReader::string(std::string_view key, std::string fallback) {
    auto s = string(key);
    return s ? *s : std::move(fallback);
}

std::optional<int64_t> TableReader::integer(std::string_view key, int64_t min, int64_t max) {
    const toml::node* n = node(key);
    if (!n)
        return std::nullopt;
    auto i = n->value_exact<int64_t>();
    if (!i) {
        error(key, fmt::format("expected an integer, found {}", type_name(*n)));
        return std::nullopt;
    }
    if (*i < min || *i > max) {
        error(key, fmt::format("{} is out of range {}..{}", *i, min, max));
        return std::nullopt;
    }
    return i;
}

int64_t TableReader::integer(std::string_view key, int64_t fallback, int64_t min, int64_t max) {
    auto i = integer(key, min, max);
    return i ? *i : fallback;
}

bool TableReader::boolean(std::string_view key, bool fallback) {
    const toml::node* n = node(key);
    if (!n)
        return fallback;
    if (auto b = n->value_exact<bool>())
        return *b;
    error(key, fmt::format("expected true or false, found {}", type_name(*n)));
    return fallback;
}

uint64_t TableReader::duration_ms(std::string_view key, uint64_t fallback) {
    const toml::node* n = node(key);
    if (!n)
        return fallback;
    if (auto d = read_duration_ms(*n)) {
        warn_bare_duration(*diag_, *n, key_path(key));
        return *d;
    }
    error(key, "expected a duration such as \"250ms\", \"5s\", \"2m\", \"1h\", \"1d\" or "
               "milliseconds");
    return fallback;
}

uint64_t TableReader::bytes(std::string_view key, uint64_t fallback) {
    const toml::node* n = node(key);
    if (!n)
        return fallback;
    if (auto b = read_bytes(*n))
        return *b;
    error(key, "expected a size such as \"512\", \"16k\", \"10m\", \"1g\" or bytes");
    return fallback;
}

std::vector<std::string> TableReader::strings(std::string_view key) {
    std::vector<std::string> out;
    const toml::node* n = node(key);
    if (!n)
        return out;
    const toml::array* a = n->as_array();
    if (!a) {
        error(key, fmt::format("expected an array of strings, found {}", type_name(*n)));
        return out;
    }
    for (size_t i = 0; i < a->size(); ++i) {
        const toml::node& item = *a->get(i);
        if (auto s = item.value_exact<std::string>())
            out.push_back(*s);
        else
            error_at(item, fmt::format("{}[{}]", key, i),
                     fmt::format("expected a string, found {}", type_name(item)));
    }
    return out;
}

std::optional<TableReader> TableReader::table(std::string_view key) {
    const toml::node* n = node(key);
    if (!n)
        return std::nullopt;
    if (const toml::table* t = n->as_table())
        return TableReader(*t, key_path(key), *diag_);
    error(key, fmt::format("expected a table, found {}", type_name(*n)));
    return std::nullopt;
}

const toml::array* TableReader::array(std::string_view key) {
    const toml::node* n = node(key);
    if (!n)
        return nullptr;
    if (const toml::array* a = n->as_array())
        return a;
    error(key, fmt::format("expected an array, found {}", type_name(*n)));
    return nullptr;
}

void TableReader::finish() {
    for (const auto& [key, value] : *table_) {
        std::string_view name = key.str();
        if (std::find(known_.begin(), known_.end(), name) != known_.end())
            continue;
        std::string hint = closest_match(name, known_);
        std::string message = fmt::format("unknown key '{}'", name);
        if (!hint.empty())
            message += fmt::format(" (did you mean '{}'?)", hint);
        diag_->error(key.source(), key_path(name), std::move(message));
    }
}

} // namespace gatehouse::config
