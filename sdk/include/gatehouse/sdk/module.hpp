/*
 * gatehouse SDK, C++ wrapper -- module base classes, noexcept trampolines and GH_MODULE.
 *
 * A module is one class deriving (CRTP) from gh::Filter<Self, Config>,
 * gh::Balancer<Self, Config, PoolState> or gh::FilterBalancer<Self, Config, PoolState>, plus one
 * GH_MODULE(Self, "name", "version", "description") line in module.cpp. The class "overrides"
 * a hook by declaring a member with the hook's name (no `virtual`): the wrapper detects it at
 * compile time, sets the phase mask from the phase hooks present and leaves the others out, so
 * a phase the module does not handle costs nothing.
 *
 *   lifecycle (main thread)      Self()                       load: no I/O; register metrics
 *                                ~Self()                      destroy
 *   parse_config(table, base) -> std::unique_ptr<Config>      [filter|balancer.NAME] with
 *                                base = Config{}; a route's filter_config.NAME (absent node if
 *                                none) with base = the module config. Read keys, fall back to
 *                                `base`. Errors: table.error(...) or a typed read's type error.
 *   activate / deactivate / worker_init / worker_exit (Config &)   (worker_* on each worker)
 *   filter (stream's worker)     on_request_headers, on_access, on_pre_upstream,
 *                                on_upstream_request, on_response_headers,
 *                                on_upstream_error (1.2):
 *                                    gh_action_t (gh::Stream, const Config &)
 *                                on_log, on_stream_end: void (gh::Stream, const Config &)
 *                                on_request_body, on_response_body:
 *                                    int32_t (gh::Stream, const gh::Chunk &, const Config &)
 *                                static constexpr uint32_t response_body_class (default
 *                                GH_BODY_CLASS_TRANSFORM)
 *   balancer                     pool_init(const Config &, gh::Pool) -> unique_ptr<PoolState>
 *                                    (main thread; the PoolState is freed at pool_free)
 *                                select(PoolState &, gh::Pool, const gh::SelectContext &)
 *                                    -> std::optional<uint32_t>   (required; nullopt = none)
 *                                report(PoolState &, gh::Pool, const gh_outcome_t &)
 *                                    (select and report: any worker, concurrently)
 *
 * Config must be copy-constructible and default-constructible: the wrapper passes Config{} as
 * the base of the module table and copies route configs from it. REQUEST_HEADERS runs before
 * routing, so it sees the module config; every other phase sees the route's.
 *
 * Exceptions: every trampoline is noexcept and catches everything. A phase hook that throws
 * returns GH_ERROR (500), a body hook GH_BODY_ABORT, select GH_ERR_INTERNAL, a config hook
 * records the message as a config error, load/activate return GH_ERR_INTERNAL; each is logged.
 * Include <gatehouse/sdk.hpp> rather than this file.
 */
#ifndef GATEHOUSE_SDK_MODULE_HPP
#define GATEHOUSE_SDK_MODULE_HPP

#include "gatehouse/sdk/config.hpp"
#include "gatehouse/sdk/core.hpp"
#include "gatehouse/sdk/pool.hpp"
#include "gatehouse/sdk/stream.hpp"

#include <memory>
#include <optional>
#include <type_traits>

namespace gh {

/* Config type for modules without keys: any key in their table is an unknown-key error. */
struct NoConfig {};
/* Pool state type for balancers that keep none. */
struct NoPoolState {};

/* Lifecycle defaults shared by every module kind. Ownership: the kernel's load hook creates the
 * one Derived instance, destroy deletes it. Thread: main thread. */
template <class Derived, class Config>
class ModuleBase {
  public:
    using config_type = Config;

    /* The module instance (valid between load and destroy). Thread: any. */
    static Derived &instance() noexcept { return *instance_; }

    /* Default: no keys; the result is a copy of `base`. */
    std::unique_ptr<Config> parse_config(ConfigNode /*table*/, const Config &base) {
        return std::make_unique<Config>(base);
    }
    void activate(Config &) {}
    void deactivate(Config &) {}
    void worker_init(Config &) {}
    void worker_exit(Config &) {}

  protected:
    ModuleBase() = default;
    ~ModuleBase() = default;

  private:
    template <class D>
    friend struct detail_module_access;
    static inline Derived *instance_ = nullptr;
};

/* Default filter hooks; a Derived class hides the ones it handles. Thread: the stream's worker. */
template <class Config>
class FilterHooks {
  public:
    static constexpr uint32_t response_body_class = GH_BODY_CLASS_TRANSFORM;
    gh_action_t on_request_headers(Stream, const Config &) { return GH_CONTINUE; }
    gh_action_t on_access(Stream, const Config &) { return GH_CONTINUE; }
    gh_action_t on_pre_upstream(Stream, const Config &) { return GH_CONTINUE; }
    gh_action_t on_upstream_request(Stream, const Config &) { return GH_CONTINUE; }
    gh_action_t on_response_headers(Stream, const Config &) { return GH_CONTINUE; }
    gh_action_t on_upstream_error(Stream, const Config &) { return GH_CONTINUE; } /* 1.2 */
    void on_log(Stream, const Config &) {}
    void on_stream_end(Stream, const Config &) {}
    int32_t on_request_body(Stream, const Chunk &, const Config &) { return GH_BODY_PASS; }
    int32_t on_response_body(Stream, const Chunk &, const Config &) { return GH_BODY_PASS; }
};

/* Default balancer hooks (select has none: a balancer must define it). Thread: pool_init on the
 * main thread, report on any worker. */
template <class Config, class PoolState>
class BalancerHooks {
  public:
    using pool_state_type = PoolState;
    std::unique_ptr<PoolState> pool_init(const Config &, Pool) {
        return std::make_unique<PoolState>();
    }
    void report(PoolState &, Pool, const gh_outcome_t &) {}
};

/* Base of a filter module: `class MyFilter : public gh::Filter<MyFilter, MyConfig>`. */
template <class Derived, class Config = NoConfig>
class Filter : public ModuleBase<Derived, Config>, public FilterHooks<Config> {
  public:
    static constexpr uint32_t kinds = GH_KIND_FILTER;
};

/* Base of a balancer module: `class MyLb : public gh::Balancer<MyLb, MyConfig, MyPool>`. */
template <class Derived, class Config = NoConfig, class PoolState = NoPoolState>
class Balancer : public ModuleBase<Derived, Config>, public BalancerHooks<Config, PoolState> {
  public:
    static constexpr uint32_t kinds = GH_KIND_BALANCER;
};

/* Base of a module that is both (it reads its table from [filter.NAME]). */
template <class Derived, class Config = NoConfig, class PoolState = NoPoolState>
class FilterBalancer : public ModuleBase<Derived, Config>,
                       public FilterHooks<Config>,
                       public BalancerHooks<Config, PoolState> {
  public:
    static constexpr uint32_t kinds = GH_KIND_FILTER | GH_KIND_BALANCER;
};

// True if D declares its own `fn` (its member pointer type differs from the default's).
#define GH_DETAIL_HAS_OWN(D, Defaults, fn)                                                         \
    (!std::is_same_v<decltype(&D::fn), decltype(&Defaults::fn)>)

/* Grants the trampolines access to ModuleBase's instance slot. Not for module code. */
template <class D>
struct detail_module_access {
    static void set(D *d) noexcept { ModuleBase<D, typename D::config_type>::instance_ = d; }
    static D *get() noexcept { return ModuleBase<D, typename D::config_type>::instance_; }
};

namespace detail {

/* The C hooks for module class D. Every function is noexcept and catches everything.
 * Thread: as the C hook it implements (see gatehouse/module.h). */
template <class D>
struct Trampolines {
    using Config = typename D::config_type;
    using Access = detail_module_access<D>;

    static D &self() noexcept { return *Access::get(); }
    static Config &cfg(void *c) noexcept { return *static_cast<Config *>(c); }

    /* ---- lifecycle ---- */
    static gh_status_t load(gh_module_t *module, void **state) noexcept {
        Host::set_self(module);
        try {
            D *d = new D();
            Access::set(d);
            *state = d;
            return GH_OK;
        } catch (...) {
            log_current_exception("load");
            return GH_ERR_INTERNAL;
        }
    }
    static void destroy(void *) noexcept {
        try {
            delete Access::get();
        } catch (...) {
            log_current_exception("destroy");
        }
        Access::set(nullptr);
    }
    // Shared by config_parse and route_config_parse: the errors counted during the call decide.
    static gh_status_t parse(const gh_config_node_t *table, const Config &base,
                             void **out) noexcept {
        g_config_errors = 0;
        ConfigNode node(table);
        try {
            std::unique_ptr<Config> c = self().parse_config(node, base);
            if (c && g_config_errors == 0) {
                *out = c.release();
                return GH_OK;
            }
            if (g_config_errors == 0)
                node.error("configuration rejected by the module");
            return GH_ERR_INVALID;
        } catch (const std::exception &e) {
            node.error(e.what());
        } catch (...) {
            node.error("unknown exception while parsing");
        }
        return GH_ERR_INVALID;
    }
    static gh_status_t config_parse(void *, const gh_config_node_t *table, void **out) noexcept {
        try {
            detail::g_config_level = ConfigLevel::module;
            const Config base{};
            return parse(table, base, out);
        } catch (...) {
            log_current_exception("config_parse");
            return GH_ERR_INTERNAL;
        }
    }
    static gh_status_t route_config_parse(void *, void *config, const gh_config_node_t *table,
                                          void **out) noexcept {
        detail::g_config_level = ConfigLevel::route;
        return parse(table, cfg(config), out);
    }
    static void config_free(void *, void *config) noexcept { delete static_cast<Config *>(config); }
    static gh_status_t activate(void *, void *config) noexcept {
        try {
            self().activate(cfg(config));
            return GH_OK;
        } catch (...) {
            log_current_exception("activate");
            return GH_ERR_INTERNAL;
        }
    }
    template <auto Hook> // &D::worker_init... (possibly a ModuleBase member)
    static void lifecycle(void *, void *config) noexcept {
        try {
            (self().*Hook)(cfg(config));
        } catch (...) {
            log_current_exception("lifecycle hook");
        }
    }

    /* ---- filters ---- */
    using FH = FilterHooks<Config>;
    static constexpr uint32_t phases() noexcept {
        uint32_t m = 0;
        if constexpr ((D::kinds & GH_KIND_FILTER) != 0) {
            if (GH_DETAIL_HAS_OWN(D, FH, on_request_headers))
                m |= GH_PHASE_BIT(GH_PHASE_REQUEST_HEADERS);
            if (GH_DETAIL_HAS_OWN(D, FH, on_access))
                m |= GH_PHASE_BIT(GH_PHASE_ACCESS);
            if (GH_DETAIL_HAS_OWN(D, FH, on_request_body))
                m |= GH_PHASE_BIT(GH_PHASE_REQUEST_BODY);
            if (GH_DETAIL_HAS_OWN(D, FH, on_pre_upstream))
                m |= GH_PHASE_BIT(GH_PHASE_PRE_UPSTREAM);
            if (GH_DETAIL_HAS_OWN(D, FH, on_upstream_request))
                m |= GH_PHASE_BIT(GH_PHASE_UPSTREAM_REQUEST);
            if (GH_DETAIL_HAS_OWN(D, FH, on_response_headers))
                m |= GH_PHASE_BIT(GH_PHASE_RESPONSE_HEADERS);
            if (GH_DETAIL_HAS_OWN(D, FH, on_response_body))
                m |= GH_PHASE_BIT(GH_PHASE_RESPONSE_BODY);
            if (GH_DETAIL_HAS_OWN(D, FH, on_upstream_error))
                m |= GH_PHASE_BIT(GH_PHASE_UPSTREAM_ERROR);
            if (GH_DETAIL_HAS_OWN(D, FH, on_log))
                m |= GH_PHASE_BIT(GH_PHASE_LOG);
            if (GH_DETAIL_HAS_OWN(D, FH, on_stream_end))
                m |= GH_PHASE_BIT(GH_PHASE_STREAM_END);
        }
        return m;
    }
    static gh_action_t dispatch(Stream s, uint32_t phase, const Config &c) {
        D &d = self();
        switch (phase) {
        case GH_PHASE_REQUEST_HEADERS:
            return d.on_request_headers(s, c);
        case GH_PHASE_ACCESS:
            return d.on_access(s, c);
        case GH_PHASE_PRE_UPSTREAM:
            return d.on_pre_upstream(s, c);
        case GH_PHASE_UPSTREAM_REQUEST:
            return d.on_upstream_request(s, c);
        case GH_PHASE_RESPONSE_HEADERS:
            return d.on_response_headers(s, c);
        case GH_PHASE_UPSTREAM_ERROR:
            return d.on_upstream_error(s, c);
        case GH_PHASE_LOG:
            d.on_log(s, c);
            return GH_CONTINUE;
        case GH_PHASE_STREAM_END:
            d.on_stream_end(s, c);
            return GH_CONTINUE;
        default: // body phases deliver data through on_body; nothing to do here
            return GH_CONTINUE;
        }
    }
    static gh_action_t on_phase(gh_stream_t *s, uint32_t phase, void *route_config) noexcept {
        if (route_config == nullptr) {
            log_error("on_phase without a configuration");
            return GH_ERROR;
        }
        try {
            return dispatch(Stream(s), phase, cfg(route_config));
        } catch (...) {
            log_current_exception("on_phase");
            return GH_ERROR;
        }
    }
    static int32_t on_body(gh_stream_t *s, uint32_t direction, const gh_body_chunk_t *chunk,
                           void *route_config) noexcept {
        if (route_config == nullptr || chunk == nullptr)
            return GH_BODY_ABORT;
        try {
            Chunk c{sv(chunk->data), (chunk->flags & GH_CHUNK_LAST) != 0,
                    (chunk->flags & GH_CHUNK_MORE) != 0};
            if (direction == GH_DIR_REQUEST)
                return self().on_request_body(Stream(s), c, cfg(route_config));
            return self().on_response_body(Stream(s), c, cfg(route_config));
        } catch (...) {
            log_current_exception("on_body");
            return GH_BODY_ABORT;
        }
    }
    static constexpr gh_filter_v1 filter_table() noexcept {
        gh_filter_v1 f{};
        f.struct_size = sizeof(gh_filter_v1);
        // Only filter modules instantiate the filter trampolines (they call D's filter hooks).
        if constexpr ((D::kinds & GH_KIND_FILTER) != 0) {
            f.phases = phases();
            f.response_body_class = D::response_body_class;
            f.on_phase = &on_phase;
            const bool bodies = (f.phases & (GH_PHASE_BIT(GH_PHASE_REQUEST_BODY) |
                                             GH_PHASE_BIT(GH_PHASE_RESPONSE_BODY))) != 0;
            f.on_body = bodies ? &on_body : nullptr;
        }
        return f;
    }
    static inline constexpr gh_filter_v1 filter = filter_table();

    /* ---- balancers ---- */
    template <class X = D>
    using PoolState = typename X::pool_state_type;

    template <class X = D>
    static gh_status_t pool_init(void *config, const gh_pool_t *pool, void **state) noexcept {
        if (config == nullptr)
            return GH_ERR_INTERNAL;
        try {
            std::unique_ptr<PoolState<X>> ps = self().pool_init(cfg(config), Pool(pool));
            if (!ps)
                return GH_ERR_INVALID;
            *state = ps.release();
            return GH_OK;
        } catch (...) {
            log_current_exception("pool_init");
            return GH_ERR_INTERNAL;
        }
    }
    template <class X = D>
    static void pool_free(void *state) noexcept {
        delete static_cast<PoolState<X> *>(state);
    }
    template <class X = D>
    static gh_status_t select(void *state, const gh_pool_t *pool, const gh_select_ctx_t *ctx,
                              uint32_t *peer) noexcept {
        try {
            std::optional<uint32_t> p = self().select(*static_cast<PoolState<X> *>(state),
                                                      Pool(pool), SelectContext(*ctx));
            if (!p)
                return GH_ERR_NOT_FOUND;
            *peer = *p;
            return GH_OK;
        } catch (...) {
            log_current_exception("select");
            return GH_ERR_INTERNAL;
        }
    }
    template <class X = D>
    static void report(void *state, const gh_pool_t *pool, const gh_outcome_t *outcome) noexcept {
        try {
            self().report(*static_cast<PoolState<X> *>(state), Pool(pool), *outcome);
        } catch (...) {
            log_current_exception("report");
        }
    }
    static constexpr gh_balancer_v1 balancer_table() noexcept {
        gh_balancer_v1 b{};
        b.struct_size = sizeof(gh_balancer_v1);
        if constexpr ((D::kinds & GH_KIND_BALANCER) != 0) {
            using BH = BalancerHooks<Config, PoolState<>>;
            b.pool_init = &pool_init<>;
            b.pool_free = &pool_free<>;
            b.select = &select<>;
            b.report = GH_DETAIL_HAS_OWN(D, BH, report) ? &report<> : nullptr;
        }
        return b;
    }
    static inline constexpr gh_balancer_v1 balancer = balancer_table();

    /* ---- the descriptor ---- */
    static constexpr gh_module_v1 describe(const char *name, const char *version,
                                           const char *description) noexcept {
        gh_module_v1 m{};
        m.struct_size = sizeof(gh_module_v1);
        m.abi_major = GH_ABI_MAJOR;
        m.abi_minor = GATEHOUSE_ABI_MINOR_BASELINE;
        m.kinds = D::kinds;
        m.name = name;
        m.version = version;
        m.description = description;
        m.load = &load;
        m.config_parse = &config_parse;
        m.config_free = &config_free;
        m.activate = &activate;
        m.deactivate = &lifecycle<&D::deactivate>;
        m.worker_init = &lifecycle<&D::worker_init>;
        m.worker_exit = &lifecycle<&D::worker_exit>;
        m.destroy = &destroy;
        if constexpr ((D::kinds & GH_KIND_FILTER) != 0) {
            m.route_config_parse = &route_config_parse;
            m.route_config_free = &config_free;
            m.filter = &filter;
        }
        if constexpr ((D::kinds & GH_KIND_BALANCER) != 0)
            m.balancer = &balancer;
        return m;
    }
};

} // namespace detail
} // namespace gh

/* GH_MODULE(Class, "name", "version", "description"): emits the module's only exported symbol,
 * `gatehouse_module_v1`, returning a static descriptor (abi_major = GH_ABI_MAJOR, abi_minor =
 * GATEHOUSE_ABI_MINOR_BASELINE) wired to Class's trampolines. "name" must equal the file stem
 * (NAME.so). Use once per module, at namespace scope, in module.cpp.
 * Ownership: the descriptor is static. Thread: the kernel calls the entry on the main thread;
 * it stores the host table and allocates nothing. */
#define GH_MODULE(Class, name, version, description)                                               \
    extern "C" GH_EXPORT const gh_module_v1 *gatehouse_module_v1(const gh_host_api_v1 *host);     \
    extern "C" GH_EXPORT const gh_module_v1 *gatehouse_module_v1(const gh_host_api_v1 *host) {    \
        static constexpr gh_module_v1 descriptor =                                                 \
            ::gh::detail::Trampolines<Class>::describe(name, version, description);                \
        ::gh::Host::set(host);                                                                     \
        return &descriptor;                                                                        \
    }

#endif // GATEHOUSE_SDK_MODULE_HPP
