// The kernel's typed configuration. Defaults live here, in one place; kernel/README.md documents
// every field.
#pragma once

#include "accesslog/access_log.hpp"
#include "admin/config.hpp"
#include "config/diagnostics.hpp"
#include "config/health_config.hpp"

#include <toml++/toml.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace gatehouse::config {

using Millis = std::chrono::milliseconds;

struct ServerConfig {
    unsigned workers = 0; // 0 = one per core
    std::string log_level = "info";
    std::string log_file;
    std::string pid_file;
    uint32_t pid_file_line = 0;
};

struct Limits {
    uint64_t max_header_bytes = 16 * 1024;
    uint64_t max_headers = 100;
    uint64_t max_uri_bytes = 8 * 1024;
    uint64_t max_body_bytes = 64ull * 1024 * 1024; // 0 = unlimited
    uint64_t max_response_header_bytes = 32 * 1024;
};

struct Timeouts {
    Millis header{10'000};
    Millis body_idle{30'000};
    Millis keepalive{60'000};
    Millis client_write{30'000};
    Millis tunnel{3'600'000};
    Millis drain{30'000};
};

struct Cidr {
    bool v6 = false;
    uint8_t bytes[16] = {};
    unsigned prefix = 0;
};

struct Forwarding {
    std::vector<Cidr> trusted_proxies;
    bool forwarded = false;
};

struct TlsCertificate {
    std::string cert; // absolute paths after loading
    std::string key;
    uint32_t line = 0;
};

struct TlsListenerConfig {
    std::vector<TlsCertificate> certificates; // the first is the default
    bool tls12 = true;
    bool tls13 = true;
    std::string ciphers; // empty = the kernel's default (Mozilla intermediate)
    std::vector<std::string> alpn{"http/1.1"};
    bool session_tickets = true;
    Millis ticket_key_rotation{3'600'000};
    uint32_t session_cache = 20'000;
    Millis watch_interval{5'000};
    uint32_t line = 0;
};

struct ListenerConfig {
    std::string name;
    std::string host;
    uint16_t port = 0;
    uint32_t line = 0;
    std::optional<TlsListenerConfig> tls;
    std::string key() const; // "host:port" as configured, identifies the listener across reloads
};

struct UpstreamTlsConfig {
    bool enabled = false;
    bool verify = true;
    std::string ca;          // empty = system store
    std::string server_name; // empty = each server's host
    std::string cert;        // client certificate (mTLS)
    std::string key;
};

struct ServerEntry {
    std::string address; // as written, "host:port"
    std::string host;
    uint16_t port = 0;
    uint32_t weight = 1;
    uint32_t max_inflight = 0;
    bool backup = false;
};

// The most idle connections a server keeps per worker when `keepalive` follows demand: the
// most ever needed is what was in use at once, which a single worker rarely takes past a few
// hundred; this bounds what a misbehaving burst can leave open.
constexpr uint32_t keepalive_auto_cap = 1024;

struct UpstreamConfig {
    std::string name;
    std::vector<ServerEntry> servers;
    std::string balancer = "round_robin";
    uint32_t balancer_line = 0;
    uint32_t max_attempts = 0; // 0 = one per server
    uint32_t max_fails = 3;
    Millis fail_backoff{10'000};
    Millis connect_timeout{5'000};
    Millis first_byte_timeout{60'000};
    Millis idle_timeout{60'000};
    // Idle pooled connections per server per worker: a fixed number, or (nullopt, the default)
    // as many as were recently in use, up to keepalive_auto_cap and the server's max_inflight.
    std::optional<uint32_t> keepalive;
    Millis keepalive_timeout{60'000};
    UpstreamTlsConfig tls;
    HealthCheckConfig health;
    uint32_t panic_threshold = 0; // %; 0 = ignore health only when no server is healthy
    std::string host; // Host for a request that came without one; empty = the server's address
    // Replay a POST (any method) once on a new connection when a reused one fails before any
    // response byte. Off: RFC 9110 §9.2.2 -- the server may have acted on it.
    bool retry_non_idempotent = false;
    uint32_t line = 0;
};

enum class PathMatch { prefix, exact };
enum class BodyOverflow { reject, pass };

struct RouteConfig {
    std::string name;
    std::string host; // empty = any; "*.x" = wildcard
    std::string path = "/";
    PathMatch match = PathMatch::prefix;
    std::string upstream;
    uint32_t upstream_line = 0;
    std::vector<std::string> filters;
    uint32_t filters_line = 0;
    // Per-route module tables, by module name (nodes live in Config::document).
    std::map<std::string, const toml::table*> filter_config;
    uint64_t body_limit = 1024 * 1024;
    BodyOverflow body_overflow = BodyOverflow::reject;
    uint32_t line = 0;
};

// PREFIX/lib/gatehouse/modules of the build's install prefix: where its modules are installed.
const char* default_module_dir();
// `--modules-dir DIR`: replaces every config's [modules] dir (a build tree's modules, say), at
// start and on reload. Set once by main() before any config is read; empty = none.
std::string& module_dir_override();

struct ModulesConfig {
    std::string dir = default_module_dir();
    std::vector<std::string> load;
    uint32_t load_line = 0;
};

struct Config {
    std::string file;
    std::string base_dir;
    std::shared_ptr<toml::table> document; // keeps module tables alive
    ServerConfig server;
    Limits limits;
    Timeouts timeouts;
    Forwarding forwarding;
    ModulesConfig modules;
    accesslog::AccessLogConfig access_log;
    admin::AdminConfig admin;
    std::string text_sha256; // of the file as read: /status reports it
    std::vector<ListenerConfig> listeners;
    std::map<std::string, UpstreamConfig> upstreams;
    std::vector<RouteConfig> routes;
    // [filter.NAME] / [balancer.NAME] tables, by module name (may be absent).
    std::map<std::string, const toml::table*> module_tables;
};

// Parses and validates the kernel's part of the config. Module names are checked against
// `modules.load`; module tables are validated later by the modules themselves.
std::unique_ptr<Config> load_config(const std::string& file, Diagnostics& diag);
std::unique_ptr<Config> parse_config(std::string_view text, const std::string& file,
                                     Diagnostics& diag);

bool parse_cidr(std::string_view text, Cidr& out);
bool cidr_contains(const Cidr& cidr, const uint8_t* address, bool v6);
// "host:port" or "[v6]:port".
bool split_host_port(std::string_view text, std::string& host, uint16_t& port);

} // namespace gatehouse::config
