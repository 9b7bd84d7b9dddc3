// Strict, typed reading of one TOML table: every key read is "known"; finish() reports the keys
// nobody read as unknown, with a "did you mean" among the known ones.
#pragma once

#include "config/diagnostics.hpp"

#include <toml++/toml.h>

#include <optional>
#include <string>
#include <vector>

namespace gatehouse::config {

class TableReader {
public:
    TableReader(const toml::table& table, std::string path, Diagnostics& diag)
        : table_(&table), path_(std::move(path)), diag_(&diag) {}

    const std::string& path() const { return path_; }
    Diagnostics& diagnostics() const { return *diag_; }
    const toml::table& table() const { return *table_; }
    std::string key_path(std::string_view key) const;

    // The node at `key` (marks it known), or nullptr.
    const toml::node* node(std::string_view key);
    bool has(std::string_view key) const { return table_->contains(key); }
    // Line of `key` if present, else of the table itself.
    uint32_t line(std::string_view key) const;

    std::optional<std::string> string(std::string_view key);
    std::string string(std::string_view key, std::string fallback);
    std::optional<int64_t> integer(std::string_view key, int64_t min, int64_t max);
    int64_t integer(std::string_view key, int64_t fallback, int64_t min, int64_t max);
    bool boolean(std::string_view key, bool fallback);
    uint64_t duration_ms(std::string_view key, uint64_t fallback);
    uint64_t bytes(std::string_view key, uint64_t fallback);
    std::vector<std::string> strings(std::string_view key);
    // A sub-table; an absent key reads as an empty table.
    std::optional<TableReader> table(std::string_view key);
    const toml::array* array(std::string_view key);

    // Report unknown keys. Call once, after everything was read.
    void finish();

    void error(std::string_view key, std::string message);
    void error_at(const toml::node& node, std::string_view key, std::string message);

private:
    const toml::table* table_;
    std::string path_;
    Diagnostics* diag_;
    std::vector<std::string> known_;
};

// Reads a node of one of the unit types: a string with a unit, or a plain integer.
std::optional<uint64_t> read_duration_ms(const toml::node& node);
std::optional<uint64_t> read_bytes(const toml::node& node);

const char* type_name(const toml::node& node);

} // namespace gatehouse::config
