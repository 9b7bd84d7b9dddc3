/*
 * gatehouse SDK, test support -- a module loaded against the fake host, and its README key-table check.
 * Part of <gatehouse/sdk/testing.hpp> (include that one); see it for the whole picture.
 */
#ifndef GATEHOUSE_SDK_TESTING_MODULE_HPP
#define GATEHOUSE_SDK_TESTING_MODULE_HPP

#include "gatehouse/sdk/testing/host.hpp"

#include <cstddef>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>


/* The module's entry point, defined by GH_MODULE in the module's sources linked into the test. */
extern "C" const gh_module_v1 *gatehouse_module_v1(const gh_host_api_v1 *host);

namespace gh::testing {

/* ---- a loaded module ------------------------------------------------------------------------- */

/* A module's descriptor from its entry point, loaded (and destroyed by the destructor) against
 * the FakeHost that exists when it is constructed. */
class Loaded {
  public:
    /* A parsed config, freed with the module's config_free (or route_config_free). */
    class Config {
      public:
        bool ok() const noexcept { return ptr_ != nullptr; }
        void *raw() const noexcept { return ptr_; }
        template <class T>
        const T &as() const noexcept { return *static_cast<const T *>(ptr_); }

      private:
        friend class Loaded;
        std::shared_ptr<void> owner_;
        void *ptr_ = nullptr;
    };

    explicit Loaded(const gh_module_v1 *(*entry)(const gh_host_api_v1 *))
        : desc_(entry(FakeHost::get().table())) {
        if (desc_ != nullptr && desc_->load != nullptr)
            loaded_ = desc_->load(reinterpret_cast<gh_module_t *>(&self_), &state_) == GH_OK;
    }
    ~Loaded() {
        if (loaded_ && desc_->destroy != nullptr)
            desc_->destroy(state_);
    }
    Loaded(const Loaded &) = delete;
    Loaded &operator=(const Loaded &) = delete;

    bool loaded() const noexcept { return loaded_; }
    const gh_module_v1 &descriptor() const noexcept { return *desc_; }
    gh_module_t *self() noexcept { return reinterpret_cast<gh_module_t *>(&self_); }

    /* config_parse on the module table (as [filter.NAME] / [balancer.NAME]); then the kernel's
     * unknown-key check. Not ok() when the module refused it or an error was recorded. */
    Config parse(const Value &table) {
        FakeHost &h = FakeHost::get();
        h.start_config_hook();
        const std::size_t errors = h.config_errors.size();
        void *out = nullptr;
        const gh_status_t st = desc_->config_parse(state_, table.handle(), &out);
        h.check_unknown_keys(table.handle());
        return wrap(st, out, errors, desc_->config_free);
    }
    /* route_config_parse for a route's filter_config.NAME (`table` may be nullptr: a route
     * without its own table). */
    Config route(const Config &module_config, const Value *table) {
        FakeHost &h = FakeHost::get();
        h.start_config_hook();
        const std::size_t errors = h.config_errors.size();
        void *out = nullptr;
        const gh_status_t st = desc_->route_config_parse(
            state_, module_config.raw(), table ? table->handle() : nullptr, &out);
        if (table != nullptr)
            h.check_unknown_keys(table->handle());
        return wrap(st, out, errors, desc_->route_config_free);
    }
    /* Run one phase hook of the filter on `s` with `config`. */
    gh_action_t phase(FakeStream &s, uint32_t phase, const Config &config) {
        return desc_->filter->on_phase(s.handle(), phase, config.raw());
    }
    /* Run on_body with one chunk (`last`: GH_CHUNK_LAST). */
    int32_t body(FakeStream &s, uint32_t direction, std::string_view data, bool last,
                 const Config &config) {
        gh_body_chunk_t chunk{sizeof(gh_body_chunk_t), last ? GH_CHUNK_LAST : 0u, gh::bytes(data)};
        return desc_->filter->on_body(s.handle(), direction, &chunk, config.raw());
    }

  private:
    Config wrap(gh_status_t st, void *out, std::size_t errors_before,
                void (*free_fn)(void *, void *)) {
        Config c;
        if (out != nullptr && free_fn != nullptr) {
            void *state = state_;
            c.owner_ = std::shared_ptr<void>(out, [free_fn, state](void *p) { free_fn(state, p); });
        }
        if (st == GH_OK && out != nullptr &&
            FakeHost::get().config_errors.size() == errors_before)
            c.ptr_ = out;
        return c;
    }

    const gh_module_v1 *desc_;
    int self_ = 0;
    void *state_ = nullptr;
    bool loaded_ = false;
};

/* While it lives, parse_config called directly (not through Loaded) reads `level`'s table: the
 * wrapper's trampolines set it the same way before calling parse_config. */
class AtLevel {
  public:
    explicit AtLevel(gh::ConfigLevel level) noexcept : previous_(gh::detail::g_config_level) {
        gh::detail::g_config_level = level;
    }
    ~AtLevel() { gh::detail::g_config_level = previous_; }
    AtLevel(const AtLevel &) = delete;
    AtLevel &operator=(const AtLevel &) = delete;

  private:
    gh::ConfigLevel previous_;
};

/* A module's parse_config(gh::ConfigNode, const Config &base), called directly (no load): reads
 * `table` over `base` as the `level` table, then runs the kernel's unknown-key check -- what
 * Loaded::parse does, for tests that link only a module's config sources. Errors land in the
 * FakeHost's config_errors. */
template <class Parse, class Config>
auto parse_table(Parse parse, const Value &table, const Config &base,
                 gh::ConfigLevel level = gh::ConfigLevel::module) {
    AtLevel at(level);
    FakeHost::get().start_config_hook();
    auto config = parse(gh::ConfigNode(table.handle()), base);
    FakeHost::get().check_unknown_keys(table.handle());
    return config;
}

/* ---- the README's key table ------------------------------------------------------------------ */

/* "" when the README at `readme_path` carries exactly the key table `keys` prints (the first
 * table under a "## Configuration" heading, or "No keys." in that section for a module without
 * keys); otherwise a message with both tables. With GH_UPDATE_README=1 in the environment it
 * rewrites that table in the README from the declaration instead (then review the diff). */
template <class Config>
std::string key_table_mismatch(const gh::Keys<Config> &keys, const std::string &readme_path) {
    std::ifstream in(readme_path);
    if (!in)
        return "cannot read " + readme_path;
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    // The section, and the table in it: [first, last) line indexes.
    std::size_t section = lines.size(), section_end = lines.size();
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (lines[i].rfind("## ", 0) != 0)
            continue;
        if (section != lines.size()) {
            section_end = i;
            break;
        }
        if (lines[i].rfind("## Configuration", 0) == 0)
            section = i;
    }
    if (section == lines.size())
        return readme_path + ": no \"## Configuration\" section";
    std::size_t first = section_end, last = section_end;
    std::string text, table;
    for (std::size_t i = section + 1; i < section_end; ++i) {
        text += lines[i] + "\n";
        if (first == section_end && lines[i].rfind("| key |", 0) == 0)
            first = i;
        if (first != section_end && last == section_end && lines[i].rfind("|", 0) != 0)
            last = i;
        if (first != section_end && last == section_end)
            table += lines[i] + "\n";
    }
    const std::string declared = keys.markdown();
    if (keys.keys().empty())
        return text.find("No keys.") != std::string::npos
                   ? std::string()
                   : readme_path + ": the module declares no keys; its \"## Configuration\" "
                                   "section must say \"No keys.\"";
    if (table == declared)
        return std::string();
    const char *update = std::getenv("GH_UPDATE_README");
    if (update != nullptr && std::string(update) == "1" && first != section_end) {
        std::ofstream out(readme_path, std::ios::trunc);
        for (std::size_t i = 0; i < first; ++i)
            out << lines[i] << "\n";
        out << declared;
        for (std::size_t i = last; i < lines.size(); ++i)
            out << lines[i] << "\n";
        return out ? std::string() : "cannot write " + readme_path;
    }
    return readme_path + ": the key table under \"## Configuration\" differs from the "
                         "declaration (GH_UPDATE_README=1 rewrites it).\nREADME:\n" +
           table + "declared:\n" + declared;
}

} // namespace gh::testing

#endif // GATEHOUSE_SDK_TESTING_MODULE_HPP
