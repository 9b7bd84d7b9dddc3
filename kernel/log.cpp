#include "log.hpp"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>

namespace gatehouse::log {

std::atomic<int> current_level{static_cast<int>(Level::info)};

namespace {
std::mutex output_mutex;
FILE* output = stderr;

const char* level_name(Level level) {
    switch (level) {
    case Level::error: return "error";
    case Level::warn: return "warn";
    case Level::info: return "info";
    default: return "debug";
    }
}
} // namespace

bool parse_level(std::string_view name, Level& out) {
    static constexpr std::pair<std::string_view, Level> levels[] = {
        {"error", Level::error}, {"warn", Level::warn}, {"info", Level::info},
        {"debug", Level::debug}};
    for (auto [n, l] : levels)
        if (n == name) {
            out = l;
            return true;
        }
    return false;
}

void set_level(Level level) { current_level.store(static_cast<int>(level)); }

bool set_file(const std::string& path, std::string& error) {
    FILE* next = stderr;
    if (!path.empty()) {
        next = std::fopen(path.c_str(), "a");
        if (!next) {
            error = std::strerror(errno);
            return false;
        }
        std::setvbuf(next, nullptr, _IOLBF, 0);
    }
    std::lock_guard lock(output_mutex);
    if (output != stderr)
        std::fclose(output);
    output = next;
    return true;
}

void write(Level level, std::string_view source, std::string_view message) {
    using namespace std::chrono;
    auto now = system_clock::now();
    std::time_t seconds = system_clock::to_time_t(now);
    auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    std::string line = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z {} [{}] {}\n",
                                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                   tm.tm_min, tm.tm_sec, millis, level_name(level), source,
                                   message);
    std::lock_guard lock(output_mutex);
    std::fwrite(line.data(), 1, line.size(), output);
    std::fflush(output);
}

} // namespace gatehouse::log
