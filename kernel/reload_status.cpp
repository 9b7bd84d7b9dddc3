#include "reload_status.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace gatehouse::reload_status {

std::string path_for(const std::string& pid_file) { return pid_file + ".reload"; }

bool write(const std::string& path, const Status& s, std::string& error) {
    std::string text = fmt::format("pid {}\nconfig {}\nattempt {}\nresult {}\ngeneration {}\n{}",
                                   s.pid, s.config, s.attempt, s.ok ? "ok" : "failed",
                                   s.generation, s.message);
    std::string temporary = path + ".tmp";
    FILE* f = std::fopen(temporary.c_str(), "w");
    bool ok = f && std::fwrite(text.data(), 1, text.size(), f) == text.size();
    int saved = errno;
    if (f && std::fclose(f) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    if (ok && std::rename(temporary.c_str(), path.c_str()) != 0) {
        ok = false;
        saved = errno;
    }
    if (!ok) {
        std::remove(temporary.c_str());
        error = fmt::format("cannot write '{}': {}", path, std::strerror(saved));
    }
    return ok;
}

std::optional<Status> read(const std::string& path) {
    std::ifstream in(path);
    // The five "key value" lines in write()'s order, then the message.
    const char* keys[] = {"pid ", "config ", "attempt ", "result ", "generation "};
    std::string values[5];
    for (size_t i = 0; i < 5; ++i) {
        std::string line;
        if (!std::getline(in, line) || !line.starts_with(keys[i]))
            return std::nullopt;
        values[i] = line.substr(std::strlen(keys[i]));
    }
    Status s;
    try {
        s.pid = std::stol(values[0]);
        s.attempt = std::stoull(values[2]);
        s.generation = std::stoull(values[4]);
    } catch (const std::exception&) {
        return std::nullopt;
    }
    s.config = values[1];
    s.ok = values[3] == "ok";
    std::ostringstream message;
    message << in.rdbuf();
    s.message = message.str();
    return s;
}

} // namespace gatehouse::reload_status
