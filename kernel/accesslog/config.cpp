// `[access_log]` → AccessLogConfig. Defaults are the struct's member initialisers.
#include "accesslog/access_log.hpp"

#include "config/table_reader.hpp"

#include <fmt/format.h>

#include <filesystem>

namespace gatehouse::accesslog {

namespace {

constexpr std::pair<std::string_view, AccessLogConfig::Format> formats[] = {
    {"combined", AccessLogConfig::Format::combined},
    {"json", AccessLogConfig::Format::json},
};

void read_format(config::TableReader& table, AccessLogConfig& out) {
    auto name = table.string("format");
    if (!name)
        return;
    for (auto [known, format] : formats)
        if (*name == known) {
            out.format = format;
            return;
        }
    table.error("format", fmt::format("unknown format '{}' (allowed: combined, json)", *name));
}

// "stdout" is a target, not a file name; relative paths are the config file's neighbours.
void read_path(config::TableReader& table, const std::string& base_dir, AccessLogConfig& out) {
    auto path = table.string("path");
    if (!path)
        return;
    out.path = *path;
    if (out.path.empty() || out.path == "stdout" || base_dir.empty())
        return;
    std::filesystem::path p(out.path);
    if (p.is_relative())
        out.path = (std::filesystem::path(base_dir) / p).lexically_normal().string();
}

} // namespace

void read_access_log_config(config::TableReader& table, const std::string& base_dir,
                            AccessLogConfig& out) {
    read_path(table, base_dir, out);
    read_format(table, out);
    table.finish();
}

} // namespace gatehouse::accesslog
