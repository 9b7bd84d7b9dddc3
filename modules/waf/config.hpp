// waf: the [filter.waf] table (and a route's filter_config.waf) -> Config, and the rule sets it
// names. Defaults live in Config; every key is declared once in config.cpp (keys()).
#pragma once

#include "engine.hpp"

#include <gatehouse/sdk.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace waf {

class LogWriter;

// The generation's log writers: opened by activate (routes are parsed before it, so they share
// this object with the module config, not the writers themselves).
struct Sinks {
    std::shared_ptr<LogWriter> audit;  // JSON events
    std::shared_ptr<LogWriter> native; // the engine's lines
};

enum class Mode { on, detect, off };
enum class ResponseBody { buffer, stream, off };
enum class OnError { closed, open };

// Rule sets compiled for one config generation, by what they are made of: routes with the same
// rules share one set, and routes that differ only in mode, paranoia or thresholds share the
// compiled rules (a small set of settings is merged in front of them).
struct RuleCache {
    std::mutex lock;
    std::map<std::string, Compiled> sets;
    unsigned compiles = 0;        // full compiles (for logs and tests)
    unsigned variants = 0;        // settings merged in front of compiled rules
    double compile_seconds = 0;   // spent in full compiles
};

struct Config {
    Mode mode = Mode::on;
    bool crs = true;
    std::string crs_setup = "/etc/modsecurity/crs/crs-setup.conf";
    std::string crs_rules = "/usr/share/modsecurity-crs/rules";
    int paranoia = 1;
    int inbound_threshold = 5;
    int outbound_threshold = 4;
    std::vector<std::string> rules_before; // files and globs, loaded before the CRS
    std::vector<std::string> rules;        // files and globs, loaded after the CRS
    std::vector<std::string> rules_inline; // SecLang text, after `rules`
    bool base_rules = true;
    bool request_body = true;
    ResponseBody response_body = ResponseBody::buffer;
    std::vector<std::string> response_types = {"text/html", "text/plain", "text/xml"};
    uint64_t offload_above = 64 * 1024;
    int engine_slice_us = 200; // an engine thread yields the CPU this often while it runs (0 = never)
    static constexpr int kMinSliceUs = 50;
    OnError on_error = OnError::closed;
    std::string audit_log;  // JSON events, one per flagged request ("" = none)
    std::string engine_log; // the engine's native lines ("" = none)
    std::vector<std::string> redact = {"password", "passwd", "pwd",    "secret",
                                       "token",    "api_key", "cookie", "authorization"};
    uint64_t match_max = 256;

    // Derived.
    std::shared_ptr<RuleCache> cache;       // this generation's sets (made by the module table)
    std::shared_ptr<const RuleSet> ruleset; // what this scope runs (null when mode = off)
    std::shared_ptr<Sinks> sinks;           // made by the module table, shared with the routes
};

// Every key: name, member, type, range, scope, example and docs (README.md's table is printed
// from it; a unit test keeps the two equal).
const gh::Keys<Config> &keys();

// Parse `table` over `base` (Config{} for the module table, the module config for a route) and
// compile (or find) the rule set. Main thread, config hooks only.
std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base);

// The generated parts of a rule set, exposed for the unit tests.
std::string engine_directives(const Config &c);
std::string settings_directives(const Config &c);
// The sources of the shared part (everything but the settings), in load order; an error names
// a pattern that matches no file.
std::vector<Source> rule_sources(const Config &c, std::string &error);

// The id of the generated settings rule (rules of your own must not use it).
inline constexpr int64_t kSettingsRuleId = 4290001;

} // namespace waf
