#include "runtime.hpp"

#include "log.hpp"
#include "modules/config_node.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace gatehouse {

Generation::~Generation() {
    // Pools first (they free balancer state that may point into module configs), then routes'
    // filter configs, then module configs, in reverse order.
    pools_.clear();
    for (auto& route : routes_)
        for (auto& f : route->filters)
            if (f.route_config != module_config(f.module) && f.module->desc.route_config_free)
                f.module->desc.route_config_free(f.module->state, f.route_config);
    for (auto it = instances_.rbegin(); it != instances_.rend(); ++it) {
        if (it->active && it->module->desc.deactivate)
            it->module->desc.deactivate(it->module->state, it->config);
        if (it->config && it->module->desc.config_free)
            it->module->desc.config_free(it->module->state, it->config);
    }
}

bool Generation::instance_config_ok(const modules::LoadedModule* module) const {
    for (const auto& i : instances_)
        if (i.module == module)
            return i.config_ok;
    return false;
}

void* Generation::module_config(const modules::LoadedModule* module) const {
    for (const auto& i : instances_)
        if (i.module == module)
            return i.config;
    return nullptr;
}

upstream::UpstreamPool* Generation::pool(std::string_view name) const {
    for (const auto& p : pools_)
        if (p->name() == name)
            return p.get();
    return nullptr;
}

bool Generation::parse_module_configs(modules::ModuleSet& modules, config::Diagnostics& diag) {
    bool ok = true;
    for (const auto& m : modules.all()) {
        ModuleInstance inst{m.get()};
        const toml::table* table = nullptr;
        if (auto it = config_->module_tables.find(m->name); it != config_->module_tables.end())
            table = it->second;
        std::string section = (m->desc.kinds & GH_KIND_FILTER) ? "filter" : "balancer";
        modules::ConfigSession session(diag);
        const gh_config_node_t* root = session.root(table, section + "." + m->name);
        if (m->desc.config_parse) {
            gh_status_t rc = m->desc.config_parse(m->state, root, &inst.config);
            if (rc != GH_OK && !session.failed())
                session.error(root, fmt::format("module '{}' refused its config ({})", m->name, rc));
        }
        inst.config_ok = session.finish();
        ok = inst.config_ok && ok;
        instances_.push_back(inst);
    }
    return ok;
}

bool Generation::build_pools(modules::ModuleSet& modules, std::vector<std::string>& errors) {
    uint32_t index = 0;
    for (const auto& [name, upstream_config] : config_->upstreams) {
        auto pool = std::make_unique<upstream::UpstreamPool>(upstream_config, index++);
        std::string error;
        modules::LoadedModule* balancer = modules.find(upstream_config.balancer);
        if (!pool->resolve(error) ||
            !pool->bind_balancer(balancer, module_config(balancer), error)) {
            errors.push_back(fmt::format("{}:{}: [upstream.{}] {}", config_->file,
                                         upstream_config.line, name, error));
            return false;
        }
        pools_.push_back(std::move(pool));
    }
    return true;
}

bool Generation::build_routes(modules::ModuleSet& modules, config::Diagnostics& diag) {
    bool ok = true;
    for (size_t i = 0; i < config_->routes.size(); ++i) {
        const config::RouteConfig& rc = config_->routes[i];
        auto route = std::make_unique<Route>();
        route->index = static_cast<uint32_t>(i);
        route->config = &rc;
        route->pool = pool(rc.upstream);
        for (const auto& name : rc.filters) {
            modules::LoadedModule* m = modules.find(name);
            // A module not loaded, or whose own table was refused, has had its error reported.
            if (!m || !instance_config_ok(m))
                continue;
            if (!m->has_filter) {
                diag.error(rc.filters_line, fmt::format("route[{}].filters", i),
                           fmt::format("module '{}' is not a filter", name));
                ok = false;
                continue;
            }
            FilterBinding binding{m, module_config(m), m->filter.phases};
            const toml::table* table = nullptr;
            if (auto it = rc.filter_config.find(name); it != rc.filter_config.end())
                table = it->second;
            if (m->desc.route_config_parse) {
                modules::ConfigSession session(diag);
                const gh_config_node_t* node =
                    table ? session.root(table, fmt::format("route[{}].filter_config.{}", i, name))
                          : nullptr;
                void* out = nullptr;
                gh_status_t status = m->desc.route_config_parse(m->state, binding.route_config,
                                                                node, &out);
                if (status != GH_OK && !session.failed() && node)
                    session.error(node, "the module refused this route's config");
                if (status != GH_OK && !node) // no table of its own: point at the filters list
                    diag.error(rc.filters_line, fmt::format("route[{}].filters", i),
                               fmt::format("module '{}' refused this route (see its message "
                                           "above)",
                                           name));
                if (!session.finish() || status != GH_OK) {
                    ok = false;
                    continue;
                }
                if (out)
                    binding.route_config = out;
            }
            route->phase_mask |= binding.phases;
            route->filters.push_back(binding);
        }
        route->response_body_order = route->filters;
        // Inspectors (1.4) first, then transforms, encoders, observers.
        const auto rank = [](const FilterBinding& f) {
            uint32_t c = f.module->filter.response_body_class;
            return c == GH_BODY_CLASS_INSPECT ? -1 : static_cast<int>(c);
        };
        std::stable_sort(route->response_body_order.begin(), route->response_body_order.end(),
                         [&rank](const FilterBinding& a, const FilterBinding& b) {
                             return rank(a) < rank(b);
                         });
        router_.add(rc.host, rc.path, rc.match == config::PathMatch::exact, route.get());
        routes_.push_back(std::move(route));
    }
    return ok;
}

std::shared_ptr<Generation> Generation::build(std::unique_ptr<config::Config> config,
                                              modules::ModuleSet& modules,
                                              config::Diagnostics& diag,
                                              std::vector<std::string>& errors) {
    // Every stage runs even after another found errors, so `check` lists them all at once;
    // only the stages with effects (resolving servers, reading certificates) wait for a valid
    // config. A generation with any error is not returned.
    auto gen = std::shared_ptr<Generation>(new Generation());
    gen->config_ = std::move(config);
    gen->parse_module_configs(modules, diag);
    for (const auto& [name, u] : gen->config_->upstreams) {
        modules::LoadedModule* m = modules.find(u.balancer);
        if (m && !m->has_balancer)
            diag.error(u.balancer_line, fmt::format("upstream.{}.balancer", name),
                       fmt::format("module '{}' is not a balancer", u.balancer));
    }
    if (diag.ok() && errors.empty() && gen->build_pools(modules, errors))
        gen->build_tls(errors);
    gen->build_routes(modules, diag);
    if (!diag.ok() || !errors.empty())
        return nullptr;
    for (const auto& inst : gen->instances_)
        if (inst.module->has_filter &&
            (inst.module->filter.phases & GH_PHASE_BIT(GH_PHASE_REQUEST_HEADERS)))
            gen->early_filters_.push_back({inst.module, inst.config, inst.module->filter.phases});
    return gen;
}

void Generation::bind_metrics(metrics::KernelMetrics& km) {
    std::vector<std::string> routes, pools(pools_.size());
    for (const auto& r : routes_)
        routes.push_back(r->config->name);
    for (const auto& p : pools_)
        pools[p->index()] = p->name();
    metrics_ = km.bind(routes, pools);
}

std::shared_ptr<tls::TlsListener> Generation::listener_tls(const std::string& key) const {
    auto it = listener_tls_.find(key);
    return it == listener_tls_.end() ? nullptr : it->second;
}

bool Generation::build_tls(std::vector<std::string>& errors) {
    for (const auto& l : config_->listeners) {
        if (!l.tls)
            continue;
        std::string error;
        auto tls = tls::TlsListener::build(*l.tls, error);
        if (!tls) {
            errors.push_back(fmt::format("{}:{}: [listener.tls] {}", config_->file, l.tls->line, error));
            return false;
        }
        listener_tls_[l.key()] = std::move(tls);
    }
    pool_tls_.resize(pools_.size());
    for (const auto& pool : pools_) {
        const auto& tls = pool->config().tls;
        if (!tls.enabled)
            continue;
        std::string error;
        pool_tls_[pool->index()] = tls::ClientContext::build(tls, error);
        if (!pool_tls_[pool->index()]) {
            errors.push_back(fmt::format("{}:{}: [upstream.{}.tls] {}", config_->file,
                                         pool->config().line, pool->name(), error));
            return false;
        }
    }
    return true;
}

std::shared_ptr<Generation> Generation::load(const std::string& file, modules::ModuleSet& modules,
                                             std::vector<std::string>& errors,
                                             std::vector<std::string>& warnings) {
    config::Diagnostics diag(file);
    auto cfg = config::load_config(file, diag);
    std::vector<std::string> other;
    std::shared_ptr<Generation> gen;
    if (cfg) {
        std::vector<std::string> missing;
        for (const auto& name : cfg->modules.load)
            if (!modules.find(name))
                missing.push_back(name);
        uint32_t load_line = cfg->modules.load_line;
        if (!modules.load(cfg->modules.dir, missing, other))
            for (auto& e : other)
                e = fmt::format("{}:{}: [modules.load] {}", file, load_line, e);
        gen = build(std::move(cfg), modules, diag, other);
    }
    for (const auto& d : diag.errors())
        errors.push_back(d.to_string());
    for (const auto& d : diag.warnings())
        warnings.push_back(d.to_string());
    errors.insert(errors.end(), other.begin(), other.end());
    if (!errors.empty())
        gen.reset();
    return gen;
}

bool Generation::activate(std::vector<std::string>& errors) {
    for (auto& inst : instances_) {
        if (inst.module->desc.activate &&
            inst.module->desc.activate(inst.module->state, inst.config) != GH_OK) {
            errors.push_back(fmt::format("module '{}': activate failed", inst.module->name));
            return false;
        }
        inst.active = true;
    }
    return true;
}

} // namespace gatehouse
