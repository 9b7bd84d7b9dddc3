// The outcome of the running process's last reload, in a file beside its pid file
// (`PID_FILE.reload`), so `gatehouse reload` can tell the user what happened instead of only
// that a signal was sent, and can see which config file the running process reloads.
//
// Written by the main thread at start-up and after each reload attempt (SIGHUP, or the reload
// command), whole or not at all (a temporary file renamed over it); read by the CLI.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace gatehouse::reload_status {

struct Status {
    long pid = 0;
    std::string config;   // absolute path of the file the process loads on reload
    uint64_t attempt = 0; // reload attempts so far; 0 = none since start
    bool ok = true;       // the last attempt's result
    uint64_t generation = 0; // the generation serving now
    std::string message;  // the last attempt's outcome, one line per error
};

std::string path_for(const std::string& pid_file);
bool write(const std::string& path, const Status& status, std::string& error);
std::optional<Status> read(const std::string& path);

} // namespace gatehouse::reload_status
