// TOML -> Config, with every error at its file:line and key path.
#include "config/config.hpp"
#include "config/table_reader.hpp"
#include "admin/status.hpp"
#include "http/message.hpp"

#include <boost/asio/ip/address.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace gatehouse::config {

namespace {

uint32_t line_of(const toml::node& n) { return static_cast<uint32_t>(n.source().begin.line); }

// Relative paths in the config are relative to the config file's folder.
std::string absolute(const std::string& base_dir, std::string path) {
    if (path.empty() || path[0] == '/')
        return path;
    return (std::filesystem::path(base_dir) / path).lexically_normal().string();
}

void read_server(TableReader& t, ServerConfig& out, const std::string& base_dir) {
    out.workers = static_cast<unsigned>(t.integer("workers", 0, 0, 1024));
    out.log_level = t.string("log_level", "info");
    static const std::vector<std::string> levels{"error", "warn", "info", "debug"};
    if (std::find(levels.begin(), levels.end(), out.log_level) == levels.end())
        t.error("log_level", fmt::format("'{}' is not one of error, warn, info, debug",
                                         out.log_level));
    out.log_file = absolute(base_dir, t.string("log_file", ""));
    out.pid_file = absolute(base_dir, t.string("pid_file", ""));
    out.pid_file_line = t.line("pid_file");
    t.finish();
}

void read_limits(TableReader& t, Limits& out) {
    out.max_header_bytes = t.bytes("max_header_bytes", out.max_header_bytes);
    out.max_headers = static_cast<uint64_t>(t.integer("max_headers", 100, 1, 10'000));
    out.max_uri_bytes = t.bytes("max_uri_bytes", out.max_uri_bytes);
    out.max_body_bytes = t.bytes("max_body_bytes", out.max_body_bytes);
    out.max_response_header_bytes =
        t.bytes("max_response_header_bytes", out.max_response_header_bytes);
    if (out.max_header_bytes < 256 || out.max_header_bytes > 1024 * 1024)
        t.error("max_header_bytes", "must be between 256 bytes and 1m");
    if (out.max_response_header_bytes < 256 || out.max_response_header_bytes > 1024 * 1024)
        t.error("max_response_header_bytes", "must be between 256 bytes and 1m");
    if (out.max_uri_bytes < 16 || out.max_uri_bytes > out.max_header_bytes)
        t.error("max_uri_bytes", "must be between 16 bytes and max_header_bytes");
    t.finish();
}

void read_timeouts(TableReader& t, Timeouts& out) {
    auto read = [&t](std::string_view key, Millis& field) {
        field = Millis(t.duration_ms(key, static_cast<uint64_t>(field.count())));
        if (field.count() == 0)
            t.error(key, "must be greater than 0");
    };
    read("header", out.header);
    read("body_idle", out.body_idle);
    read("keepalive", out.keepalive);
    read("client_write", out.client_write);
    read("tunnel", out.tunnel);
    read("drain", out.drain);
    t.finish();
}

void read_forwarding(TableReader& t, Forwarding& out) {
    if (const toml::array* a = t.array("trusted_proxies")) {
        for (size_t i = 0; i < a->size(); ++i) {
            const toml::node& item = *a->get(i);
            Cidr cidr;
            auto s = item.value_exact<std::string>();
            if (!s || !parse_cidr(*s, cidr))
                t.error_at(item, fmt::format("trusted_proxies[{}]", i),
                           "expected a CIDR such as \"10.0.0.0/8\" or \"::1/128\"");
            else
                out.trusted_proxies.push_back(cidr);
        }
    }
    out.forwarded = t.boolean("forwarded", false);
    t.finish();
}

void read_modules(TableReader& t, ModulesConfig& out, const std::string& base_dir) {
    out.dir = t.string("dir", out.dir);
    if (!out.dir.empty() && out.dir[0] != '/')
        out.dir = (std::filesystem::path(base_dir) / out.dir).lexically_normal().string();
    out.load = t.strings("load");
    out.load_line = t.line("load");
    for (size_t i = 0; i < out.load.size(); ++i) {
        const auto& name = out.load[i];
        bool valid = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        });
        if (!valid)
            t.error("load", fmt::format("module name '{}' must match [a-z0-9_]+", name));
        if (std::count(out.load.begin(), out.load.end(), name) > 1 &&
            std::find(out.load.begin(), out.load.end(), name) - out.load.begin() !=
                static_cast<ptrdiff_t>(i))
            t.error("load", fmt::format("module '{}' is listed twice", name));
    }
    t.finish();
}

template <class Fn>
void for_each_table_in_array(TableReader& parent, std::string_view key, Fn&& fn) {
    const toml::array* a = parent.array(key);
    if (!a)
        return;
    for (size_t i = 0; i < a->size(); ++i) {
        const toml::node& item = *a->get(i);
        std::string path = fmt::format("{}[{}]", parent.key_path(key), i);
        if (const toml::table* tt = item.as_table()) {
            TableReader reader(*tt, path, parent.diagnostics());
            fn(reader, i, line_of(item));
            reader.finish();
        } else {
            parent.diagnostics().error(item.source(), path,
                                       fmt::format("expected a table, found {}", type_name(item)));
        }
    }
}

void read_protocols(TableReader& t, TlsListenerConfig& out) {
    auto protocols = t.strings("protocols");
    if (!t.has("protocols"))
        return;
    out.tls12 = out.tls13 = false;
    for (const auto& p : protocols) {
        if (p == "TLSv1.2")
            out.tls12 = true;
        else if (p == "TLSv1.3")
            out.tls13 = true;
        else
            t.error("protocols", fmt::format("'{}' is not one of TLSv1.2, TLSv1.3", p));
    }
    if (!out.tls12 && !out.tls13)
        t.error("protocols", "at least one protocol is required");
}

void read_listener_tls(TableReader& t, const std::string& base_dir, TlsListenerConfig& out) {
    out.line = static_cast<uint32_t>(t.table().source().begin.line);
    for_each_table_in_array(t, "certificates", [&](TableReader& c, size_t, uint32_t line) {
        TlsCertificate cert;
        cert.line = line;
        auto path = c.string("cert");
        auto key = c.string("key");
        if (!path || !key)
            c.diagnostics().error(line, c.path(), "each certificate needs `cert` and `key`");
        cert.cert = absolute(base_dir, path.value_or(""));
        cert.key = absolute(base_dir, key.value_or(""));
        out.certificates.push_back(std::move(cert));
    });
    if (out.certificates.empty())
        t.diagnostics().error(out.line, t.key_path("certificates"), "at least one certificate is required");
    read_protocols(t, out);
    out.ciphers = t.string("ciphers", "");
    if (t.has("alpn")) {
        out.alpn = t.strings("alpn");
        for (const auto& p : out.alpn)
            if (p != "http/1.1")
                t.error("alpn", fmt::format("'{}' is not supported (only http/1.1)", p));
    }
    out.session_tickets = t.boolean("session_tickets", true);
    out.ticket_key_rotation =
        Millis(t.duration_ms("ticket_key_rotation", out.ticket_key_rotation.count()));
    out.session_cache = static_cast<uint32_t>(t.integer("session_cache", 20'000, 0, 10'000'000));
    out.watch_interval = Millis(t.duration_ms("watch_interval", out.watch_interval.count()));
    if (out.ticket_key_rotation.count() < 1000)
        t.error("ticket_key_rotation", "must be at least 1s");
    if (out.watch_interval.count() == 0)
        t.error("watch_interval", "must be greater than 0");
    t.finish();
}

void read_upstream_tls(TableReader& t, UpstreamTlsConfig& out) {
    out.enabled = t.boolean("tls", false);
    out.verify = t.boolean("tls_verify", true);
    out.ca = t.string("tls_ca", "");
    out.server_name = t.string("tls_server_name", "");
    out.cert = t.string("tls_cert", "");
    out.key = t.string("tls_key", "");
    if (out.cert.empty() != out.key.empty())
        t.error(out.cert.empty() ? "tls_key" : "tls_cert", "tls_cert and tls_key go together");
    if (!out.enabled)
        for (auto key : {"tls_verify", "tls_ca", "tls_server_name", "tls_cert", "tls_key"})
            if (t.has(key))
                t.error(key, "has no effect without tls = true");
}

void read_listeners(TableReader& root, const std::string& base_dir,
                    std::vector<ListenerConfig>& out) {
    for_each_table_in_array(root, "listener", [&](TableReader& t, size_t i, uint32_t line) {
        ListenerConfig l;
        l.line = line;
        l.name = t.string("name", fmt::format("listener-{}", i));
        auto listen = t.string("listen");
        if (!listen)
            t.diagnostics().error(line, t.path() + ".listen", "required key is missing");
        else if (!split_host_port(*listen, l.host, l.port))
            t.error("listen", fmt::format("'{}' is not ADDRESS:PORT", *listen));
        else {
            boost::system::error_code ec;
            boost::asio::ip::make_address(l.host, ec);
            if (ec)
                t.error("listen", fmt::format("'{}' is not an IP address", l.host));
        }
        if (auto tls = t.table("tls")) {
            l.tls.emplace();
            read_listener_tls(*tls, base_dir, *l.tls);
        }
        for (const auto& other : out)
            if (other.host == l.host && other.port == l.port && l.port != 0)
                t.error("listen", fmt::format("{} is already used by {}", l.key(), other.name));
        out.push_back(std::move(l));
    });
    if (out.empty())
        root.diagnostics().error(1, "listener", "at least one [[listener]] is required");
}

void read_upstream(TableReader& t, UpstreamConfig& u) {
    for_each_table_in_array(t, "servers", [&](TableReader& s, size_t, uint32_t line) {
        ServerEntry e;
        auto address = s.string("address");
        if (!address)
            s.diagnostics().error(line, s.path() + ".address", "required key is missing");
        else if (!split_host_port(*address, e.host, e.port) || e.port == 0)
            s.error("address", fmt::format("'{}' is not HOST:PORT", *address));
        else
            e.address = *address;
        // A server is known by its address (health, in-flight, metrics labels): listed twice
        // it would be two servers sharing one identity. More traffic is what weight is for.
        for (const auto& other : u.servers)
            if (!e.address.empty() && other.port == e.port &&
                http::iequals(other.host, e.host))
                s.error("address", fmt::format("'{}' is already in this upstream as '{}'; give "
                                               "one entry a higher weight instead",
                                               *address, other.address));
        e.weight = static_cast<uint32_t>(s.integer("weight", 1, 1, 1000));
        e.max_inflight = static_cast<uint32_t>(s.integer("max_inflight", 0, 0, 1'000'000));
        e.backup = s.boolean("backup", false);
        u.servers.push_back(std::move(e));
    });
    if (u.servers.empty())
        t.diagnostics().error(u.line, t.key_path("servers"), "an upstream needs at least one server");
    u.balancer = t.string("balancer", u.balancer);
    u.balancer_line = t.line("balancer");
    u.max_attempts = static_cast<uint32_t>(t.integer("max_attempts", 0, 0, 100));
    u.max_fails = static_cast<uint32_t>(t.integer("max_fails", 3, 1, 1000));
    auto duration = [&t](std::string_view key, Millis& field) {
        field = Millis(t.duration_ms(key, static_cast<uint64_t>(field.count())));
        if (field.count() == 0)
            t.error(key, "must be greater than 0");
    };
    duration("fail_backoff", u.fail_backoff);
    duration("connect_timeout", u.connect_timeout);
    duration("first_byte_timeout", u.first_byte_timeout);
    duration("idle_timeout", u.idle_timeout);
    // "auto" (the default) or a fixed number.
    if (const toml::node* k = t.node("keepalive"); k && k->is_string()) {
        if (k->value_exact<std::string>() != "auto")
            t.error("keepalive", fmt::format("'{}' is neither \"auto\" nor a number of connections",
                                             *k->value_exact<std::string>()));
    } else if (k) {
        if (auto n = t.integer("keepalive", 0, 100'000))
            u.keepalive = static_cast<uint32_t>(*n);
    }
    duration("keepalive_timeout", u.keepalive_timeout);
    read_upstream_tls(t, u.tls);
    u.panic_threshold = static_cast<uint32_t>(t.integer("panic_threshold", 0, 0, 100));
    u.host = t.string("host", "");
    u.retry_non_idempotent = t.boolean("retry_non_idempotent", false);
    if (!u.host.empty() && !http::valid_host(u.host))
        t.error("host", fmt::format("'{}' is not a host name or host:port", u.host));
    if (auto h = t.table("health")) {
        u.health.enabled = true;
        read_health_config(*h, u.health);
    }
    t.finish();
}

void read_route(TableReader& t, RouteConfig& r, size_t index) {
    r.name = t.string("name", fmt::format("route-{}", index));
    r.host = t.string("host", "");
    std::transform(r.host.begin(), r.host.end(), r.host.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (r.host.find('*') != std::string::npos && (r.host.rfind("*.", 0) != 0 || r.host.size() < 3 ||
                                                  r.host.find('*', 1) != std::string::npos))
        t.error("host", "a wildcard host must look like \"*.example.com\"");
    // Requests are matched by host name, their Host's port left out: a route host with a port
    // could never match.
    size_t name_end = r.host.starts_with('[') ? r.host.find(']') : 0;
    if (name_end != std::string::npos && r.host.find(':', name_end) != std::string::npos)
        t.error("host", fmt::format("'{}' has a port; a route matches the host name alone (a "
                                    "listener's port is chosen by [[listener]])", r.host));
    r.path = t.string("path", "/");
    if (r.path.empty() || r.path[0] != '/')
        t.error("path", "must start with '/'");
    std::string match = t.string("match", "prefix");
    if (match == "exact")
        r.match = PathMatch::exact;
    else if (match != "prefix")
        t.error("match", fmt::format("'{}' is not one of prefix, exact", match));
    auto upstream = t.string("upstream");
    if (!upstream)
        t.diagnostics().error(r.line, t.key_path("upstream"), "required key is missing");
    else
        r.upstream = *upstream;
    r.filters = t.strings("filters");
    r.filters_line = t.line("filters");
    r.upstream_line = t.line("upstream");
    if (auto fc = t.table("filter_config")) {
        for (const auto& [key, value] : fc->table()) {
            fc->node(key.str());
            if (const toml::table* tt = value.as_table())
                r.filter_config[std::string(key.str())] = tt;
            else
                fc->error(key.str(), "expected a table");
        }
        fc->finish();
    }
    r.body_limit = t.bytes("body_limit", r.body_limit);
    std::string overflow = t.string("body_overflow", "reject");
    if (overflow == "pass")
        r.body_overflow = BodyOverflow::pass;
    else if (overflow != "reject")
        t.error("body_overflow", fmt::format("'{}' is not one of reject, pass", overflow));
}

void read_module_tables(TableReader& root, std::string_view section, Config& cfg) {
    auto t = root.table(section);
    if (!t)
        return;
    for (const auto& [key, value] : t->table()) {
        std::string name(key.str());
        t->node(name);
        if (std::find(cfg.modules.load.begin(), cfg.modules.load.end(), name) ==
            cfg.modules.load.end()) {
            t->error(name, fmt::format("module '{}' is not in modules.load", name));
            continue;
        }
        if (const toml::table* tt = value.as_table())
            cfg.module_tables[name] = tt;
        else
            t->error(name, "expected a table");
    }
    t->finish();
}

bool is_loaded(const Config& cfg, const std::string& name) {
    return std::find(cfg.modules.load.begin(), cfg.modules.load.end(), name) !=
           cfg.modules.load.end();
}

void cross_check(TableReader& root, Config& cfg) {
    Diagnostics& diag = root.diagnostics();
    for (auto& [name, u] : cfg.upstreams)
        if (!is_loaded(cfg, u.balancer))
            diag.error(u.balancer_line, fmt::format("upstream.{}.balancer", name),
                       fmt::format("balancer module '{}' is not in modules.load", u.balancer));
    for (size_t i = 0; i < cfg.routes.size(); ++i) {
        const RouteConfig& r = cfg.routes[i];
        std::string path = fmt::format("route[{}]", i);
        for (size_t j = 0; j < i; ++j)
            if (cfg.routes[j].host == r.host && cfg.routes[j].path == r.path &&
                cfg.routes[j].match == r.match)
                diag.error(r.line, path,
                           fmt::format("same host, path and match as route[{}] (line {}): this "
                                       "one could never be chosen", j, cfg.routes[j].line));
        if (!r.upstream.empty() && !cfg.upstreams.count(r.upstream)) {
            std::vector<std::string> names;
            for (auto& [n, _] : cfg.upstreams)
                names.push_back(n);
            std::string hint = closest_match(r.upstream, names);
            diag.error(r.upstream_line, path + ".upstream",
                       fmt::format("no [upstream.{}]{}", r.upstream,
                                   hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
        }
        for (const auto& f : r.filters)
            if (!is_loaded(cfg, f))
                diag.error(r.filters_line, path + ".filters",
                           fmt::format("filter module '{}' is not in modules.load", f));
        for (const auto& [f, _] : r.filter_config)
            if (std::find(r.filters.begin(), r.filters.end(), f) == r.filters.end())
                diag.error(r.line, path + ".filter_config." + f,
                           fmt::format("'{}' is not in this route's filters", f));
    }
}

} // namespace

const char* default_module_dir() { return GATEHOUSE_DEFAULT_MODULE_DIR; }

std::string& module_dir_override() {
    static std::string dir;
    return dir;
}

std::unique_ptr<Config> parse_config(std::string_view text, const std::string& file,
                                     Diagnostics& diag) {
    auto cfg = std::make_unique<Config>();
    cfg->file = file;
    cfg->base_dir = std::filesystem::path(file).parent_path().string();
    if (cfg->base_dir.empty())
        cfg->base_dir = ".";
    try {
        cfg->document = std::make_shared<toml::table>(toml::parse(text, file));
    } catch (const toml::parse_error& e) {
        diag.error(e.source(), "", fmt::format("TOML syntax: {}", e.description()));
        return nullptr;
    }
    cfg->text_sha256 = admin::config_sha256(text);
    TableReader root(*cfg->document, "", diag);
    // Modules first: other sections refer to module names.
    if (auto t = root.table("modules"))
        read_modules(*t, cfg->modules, cfg->base_dir);
    if (!module_dir_override().empty())
        cfg->modules.dir = module_dir_override();
    if (auto t = root.table("server"))
        read_server(*t, cfg->server, cfg->base_dir);
    if (auto t = root.table("limits"))
        read_limits(*t, cfg->limits);
    if (auto t = root.table("timeouts"))
        read_timeouts(*t, cfg->timeouts);
    if (auto t = root.table("forwarding"))
        read_forwarding(*t, cfg->forwarding);
    if (auto t = root.table("admin"))
        admin::read_admin_config(*t, cfg->admin);
    if (auto t = root.table("access_log"))
        accesslog::read_access_log_config(*t, cfg->base_dir, cfg->access_log);
    read_listeners(root, cfg->base_dir, cfg->listeners);
    if (auto ups = root.table("upstream")) {
        for (const auto& [key, value] : ups->table()) {
            std::string name(key.str());
            ups->node(name);
            const toml::table* tt = value.as_table();
            if (!tt) {
                ups->error(name, "expected a table");
                continue;
            }
            UpstreamConfig u;
            u.name = name;
            u.line = line_of(value);
            TableReader reader(*tt, ups->key_path(name), diag);
            read_upstream(reader, u);
            for (auto* path : {&u.tls.ca, &u.tls.cert, &u.tls.key})
                *path = absolute(cfg->base_dir, *path);
            cfg->upstreams.emplace(name, std::move(u));
        }
        ups->finish();
    }
    for_each_table_in_array(root, "route", [&](TableReader& t, size_t i, uint32_t line) {
        RouteConfig r;
        r.line = line;
        read_route(t, r, i);
        cfg->routes.push_back(std::move(r));
    });
    read_module_tables(root, "filter", *cfg);
    read_module_tables(root, "balancer", *cfg);
    root.finish();
    cross_check(root, *cfg);
    return cfg;
}

std::unique_ptr<Config> load_config(const std::string& file, Diagnostics& diag) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        diag.error(0, "", fmt::format("cannot read config file: {}", std::strerror(errno)));
        return nullptr;
    }
    std::stringstream text;
    text << in.rdbuf();
    return parse_config(text.str(), file, diag);
}

std::string ListenerConfig::key() const {
    return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port)
                                               : fmt::format("{}:{}", host, port);
}

bool split_host_port(std::string_view text, std::string& host, uint16_t& port) {
    size_t colon;
    if (!text.empty() && text[0] == '[') {
        size_t close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return false;
        host = std::string(text.substr(1, close - 1));
        colon = close + 1;
    } else {
        colon = text.rfind(':');
        if (colon == std::string_view::npos || colon == 0)
            return false;
        host = std::string(text.substr(0, colon));
        if (host.find(':') != std::string::npos)
            return false;
    }
    std::string_view digits = text.substr(colon + 1);
    if (digits.empty() || digits.size() > 5)
        return false;
    unsigned value = 0;
    for (char c : digits) {
        if (c < '0' || c > '9')
            return false;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value > 65535)
        return false;
    port = static_cast<uint16_t>(value);
    return true;
}

bool parse_cidr(std::string_view text, Cidr& out) {
    size_t slash = text.find('/');
    std::string address(text.substr(0, slash));
    boost::system::error_code ec;
    auto ip = boost::asio::ip::make_address(address, ec);
    if (ec)
        return false;
    out.v6 = ip.is_v6();
    unsigned max_prefix = out.v6 ? 128 : 32;
    if (out.v6) {
        auto b = ip.to_v6().to_bytes();
        std::copy(b.begin(), b.end(), out.bytes);
    } else {
        auto b = ip.to_v4().to_bytes();
        std::copy(b.begin(), b.end(), out.bytes);
    }
    out.prefix = max_prefix;
    if (slash != std::string_view::npos) {
        std::string_view digits = text.substr(slash + 1);
        if (digits.empty() || digits.size() > 3)
            return false;
        unsigned p = 0;
        for (char c : digits) {
            if (c < '0' || c > '9')
                return false;
            p = p * 10 + static_cast<unsigned>(c - '0');
        }
        if (p > max_prefix)
            return false;
        out.prefix = p;
    }
    return true;
}

bool cidr_contains(const Cidr& cidr, const uint8_t* address, bool v6) {
    if (cidr.v6 != v6)
        return false;
    unsigned full = cidr.prefix / 8, rest = cidr.prefix % 8;
    for (unsigned i = 0; i < full; ++i)
        if (cidr.bytes[i] != address[i])
            return false;
    if (rest == 0)
        return true;
    uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
    return (cidr.bytes[full] & mask) == (address[full] & mask);
}

} // namespace gatehouse::config
