// Loads module shared objects (Boost.DLL), checks their ABI version and keeps a copy of the
// descriptor prefix both sides know (a module built against an older minor has a shorter one).
#pragma once

#include <gatehouse/gatehouse.h>

#include <boost/dll/shared_library.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace gatehouse::modules {
struct LoadedModule;
}

// The opaque handle modules receive as `gh_module_t *self`.
struct gh_module {
    gatehouse::modules::LoadedModule* owner;
};

namespace gatehouse::modules {

struct LoadedModule {
    std::string name;
    std::string path;
    boost::dll::shared_library library;
    gh_module_v1 desc{};       // zero-filled past the module's struct_size
    gh_filter_v1 filter{};     // valid if has_filter
    gh_balancer_v1 balancer{}; // valid if has_balancer
    bool has_filter = false;
    bool has_balancer = false;
    void* state = nullptr; // from load()
    gh_module handle{this};
    bool load_called = false;
    // The module's admin endpoint (SDK 1.2), set on the main thread, called on the admin
    // thread: guarded by admin_mutex.
    gh_admin_fn admin_fn = nullptr;
    void* admin_arg = nullptr;

    std::string kinds() const;
    ~LoadedModule();
};

// Guards every LoadedModule's admin_fn/admin_arg.
extern std::mutex admin_mutex;

class ModuleSet {
public:
    // Loads every module in `names` from `dir`; appends one line per refusal to `errors`.
    bool load(const std::string& dir, const std::vector<std::string>& names,
              std::vector<std::string>& errors);
    LoadedModule* find(std::string_view name) const;
    const std::vector<std::unique_ptr<LoadedModule>>& all() const { return modules_; }
    ~ModuleSet();

private:
    std::vector<std::unique_ptr<LoadedModule>> modules_;
};

const gh_host_api_v1* host_api();

} // namespace gatehouse::modules
