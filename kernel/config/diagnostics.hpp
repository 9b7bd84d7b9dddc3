// Config errors with their place: every message the operator sees reads
// "file:line: [key.path] message".
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::config {

struct Diagnostic {
    std::string file;
    uint32_t line = 0;
    std::string key_path;
    std::string message;

    std::string to_string() const;
};

class Diagnostics {
public:
    explicit Diagnostics(std::string file) : file_(std::move(file)) {}

    void error(const toml::source_region& where, std::string_view key_path, std::string message);
    void error(uint32_t line, std::string_view key_path, std::string message);
    // Accepted, but likely not what was meant: `check`, the start and a reload print these.
    void warn(const toml::source_region& where, std::string_view key_path, std::string message);
    bool ok() const { return errors_.empty(); }
    const std::vector<Diagnostic>& errors() const { return errors_; }
    const std::vector<Diagnostic>& warnings() const { return warnings_; }
    const std::string& file() const { return file_; }

private:
    std::string file_;
    std::vector<Diagnostic> errors_;
    std::vector<Diagnostic> warnings_;
};

// A duration written as a bare integer is read as milliseconds; nginx reads seconds there, so
// `connect_timeout = 5` is most likely a mistake: warn, naming both spellings.
void warn_bare_duration(Diagnostics& diag, const toml::node& node, std::string_view key_path);

// The candidate closest to `key` by edit distance, if it is close enough to be a likely typo.
std::string closest_match(std::string_view key, const std::vector<std::string>& candidates);

} // namespace gatehouse::config
