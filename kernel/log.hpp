// The kernel's own log: start-up, listening addresses, modules, errors. One line per event,
// "2026-11-28T01:02:03.456Z info [source] message". Not the access log.
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <string>
#include <string_view>

namespace gatehouse::log {

enum class Level : int { error = 0, warn = 1, info = 2, debug = 3 };

bool parse_level(std::string_view name, Level& out);
void set_level(Level level);
// Empty path = stderr. Returns false (and keeps the old target) if the file cannot be opened.
bool set_file(const std::string& path, std::string& error);

extern std::atomic<int> current_level;
inline bool enabled(Level level) {
    return static_cast<int>(level) <= current_level.load(std::memory_order_relaxed);
}

void write(Level level, std::string_view source, std::string_view message);

template <class... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
    write(Level::error, "kernel", fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::warn))
        write(Level::warn, "kernel", fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::info))
        write(Level::info, "kernel", fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(Level::debug))
        write(Level::debug, "kernel", fmt::format(f, std::forward<Args>(args)...));
}

} // namespace gatehouse::log
