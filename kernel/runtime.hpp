// One config generation: the parsed config, the modules' configs, upstream pools and compiled
// routes. Immutable once built; connections hold a shared_ptr to the generation they started on.
#pragma once

#include "config/config.hpp"
#include "modules/loader.hpp"
#include "metrics/kernel_metrics.hpp"
#include "routing/router.hpp"
#include "tls/client_context.hpp"
#include "tls/server_context.hpp"
#include "upstream/pool.hpp"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace gatehouse {

struct FilterBinding {
    modules::LoadedModule* module;
    void* route_config; // from route_config_parse (or the module config)
    uint32_t phases;
};

struct Route {
    uint32_t index = 0; // position in the config, for per-route metrics
    const config::RouteConfig* config;
    upstream::UpstreamPool* pool;
    std::vector<FilterBinding> filters;
    uint32_t phase_mask = 0; // union of the filters' phases
    std::vector<FilterBinding> response_body_order; // filters sorted by body class
};

struct ModuleInstance {
    modules::LoadedModule* module;
    void* config = nullptr;
    bool active = false;
    bool config_ok = true; // its table parsed: route tables may be handed to it
};

class Generation {
public:
    ~Generation();

    // Builds everything that does not touch the network. Errors go to `diag` (config errors with
    // file:line) or `errors` (anything else). `modules` must outlive the generation.
    static std::shared_ptr<Generation> build(std::unique_ptr<config::Config> config,
                                             modules::ModuleSet& modules,
                                             config::Diagnostics& diag,
                                             std::vector<std::string>& errors);
    // Reads `file`, loads the modules it names that `modules` does not have yet, and builds the
    // generation. nullptr on any problem; `errors` gets one line each, config errors first;
    // `warnings` what was accepted but is likely a mistake (the caller prints or logs them).
    static std::shared_ptr<Generation> load(const std::string& file, modules::ModuleSet& modules,
                                            std::vector<std::string>& errors,
                                            std::vector<std::string>& warnings);
    // Side effects: modules' activate hooks.
    bool activate(std::vector<std::string>& errors);

    const config::Config& config() const { return *config_; }
    const Route* route(std::string_view host, std::string_view path) const {
        return router_.match(host, path);
    }
    const std::vector<std::unique_ptr<upstream::UpstreamPool>>& pools() const { return pools_; }
    upstream::UpstreamPool* pool(std::string_view name) const;
    const std::vector<ModuleInstance>& modules() const { return instances_; }
    // Filters that want REQUEST_HEADERS, which runs before routing (with module configs).
    const std::vector<FilterBinding>& early_filters() const { return early_filters_; }
    void* module_config(const modules::LoadedModule* module) const;
    bool instance_config_ok(const modules::LoadedModule* module) const;
    // TLS state of the listener with this key (ListenerConfig::key()), or nullptr for plain HTTP.
    std::shared_ptr<tls::TlsListener> listener_tls(const std::string& key) const;
    const std::map<std::string, std::shared_ptr<tls::TlsListener>>& tls_listeners() const {
        return listener_tls_;
    }
    // Client TLS context of an upstream pool (by UpstreamPool::index()), or nullptr.
    tls::ClientContext* pool_tls(uint32_t pool_index) const {
        return pool_index < pool_tls_.size() ? pool_tls_[pool_index].get() : nullptr;
    }
    uint64_t number() const { return number_; }
    // Per-route and per-pool metric cells (bound by the server when it activates the generation).
    const metrics::GenerationMetrics& metrics() const { return metrics_; }
    void bind_metrics(metrics::KernelMetrics& km);
    void set_number(uint64_t n) { number_ = n; }
    // The access log requests served under this generation write to (null = off). Set by the
    // server before the generation is published, and cleared only after the workers stopped: a
    // request reads it without synchronisation.
    accesslog::AccessLog* access_log() const { return access_log_.get(); }
    void set_access_log(std::shared_ptr<accesslog::AccessLog> log) { access_log_ = std::move(log); }

private:
    bool parse_module_configs(modules::ModuleSet& modules, config::Diagnostics& diag);
    bool build_pools(modules::ModuleSet& modules, std::vector<std::string>& errors);
    bool build_routes(modules::ModuleSet& modules, config::Diagnostics& diag);
    bool build_tls(std::vector<std::string>& errors);

    std::unique_ptr<config::Config> config_;
    std::vector<ModuleInstance> instances_;
    std::vector<std::unique_ptr<upstream::UpstreamPool>> pools_;
    std::vector<std::unique_ptr<Route>> routes_;
    std::vector<FilterBinding> early_filters_;
    routing::Router<Route> router_;
    std::map<std::string, std::shared_ptr<tls::TlsListener>> listener_tls_;
    std::vector<std::shared_ptr<tls::ClientContext>> pool_tls_;
    uint64_t number_ = 1;
    metrics::GenerationMetrics metrics_;
    std::shared_ptr<accesslog::AccessLog> access_log_;
};

} // namespace gatehouse
