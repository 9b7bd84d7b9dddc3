#include "modules/loader.hpp"

#include "log.hpp"

#include <fmt/format.h>

#include <cstring>
#include <dlfcn.h>
#include <filesystem>

namespace gatehouse::modules {

namespace {

// Copies the prefix of a module-owned struct that both sides know into a zeroed kernel copy.
template <class T>
void copy_prefix(T& out, const T* in) {
    std::memset(&out, 0, sizeof out);
    if (!in)
        return;
    size_t n = std::min<size_t>(in->struct_size, sizeof out);
    std::memcpy(&out, in, n);
}

std::string refuse(const std::string& name, const std::string& path, const std::string& why,
                   const std::string& todo) {
    return fmt::format("module '{}' ({}): {}; {}", name, path, why, todo);
}

// Boost.DLL reports a failed dlopen with an unhelpful errno text; ask the loader itself.
std::string dlopen_reason(const std::string& path) {
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle) {
        ::dlclose(handle);
        return "unknown loader error";
    }
    const char* text = ::dlerror();
    return text ? text : "unknown loader error";
}

bool check_version(LoadedModule& m, std::vector<std::string>& errors) {
    const gh_module_v1& d = m.desc;
    std::string versions = fmt::format("module ABI {}.{}, kernel ABI {}.{}", d.abi_major,
                                       d.abi_minor, GH_ABI_MAJOR, GH_ABI_MINOR);
    if (d.abi_major != GH_ABI_MAJOR) {
        errors.push_back(refuse(m.name, m.path, "incompatible ABI major (" + versions + ")",
                                fmt::format("rebuild the module against gatehouse SDK {}.x",
                                            GH_ABI_MAJOR)));
        return false;
    }
    if (d.abi_minor > GH_ABI_MINOR) {
        errors.push_back(refuse(m.name, m.path, "module needs a newer kernel (" + versions + ")",
                                fmt::format("upgrade gatehouse to ABI {}.{} or later, or rebuild "
                                            "the module against SDK {}.{}",
                                            d.abi_major, d.abi_minor, GH_ABI_MAJOR,
                                            GH_ABI_MINOR)));
        return false;
    }
    if (d.struct_size < offsetof(gh_module_v1, balancer) + sizeof(void*)) {
        errors.push_back(refuse(m.name, m.path,
                                fmt::format("descriptor too small ({} bytes)", d.struct_size),
                                "rebuild the module against the gatehouse SDK"));
        return false;
    }
    if (!d.name || m.name != d.name) {
        errors.push_back(refuse(m.name, m.path,
                                fmt::format("descriptor names the module '{}'",
                                            d.name ? d.name : "(null)"),
                                "rename the file or fix the module's name"));
        return false;
    }
    return true;
}

bool read_kinds(LoadedModule& m, std::vector<std::string>& errors) {
    const gh_module_v1& d = m.desc;
    if ((d.kinds & GH_KIND_FILTER) && d.filter) {
        copy_prefix(m.filter, d.filter);
        m.has_filter = m.filter.on_phase || m.filter.on_body;
    }
    if ((d.kinds & GH_KIND_BALANCER) && d.balancer) {
        copy_prefix(m.balancer, d.balancer);
        m.has_balancer = m.balancer.select != nullptr;
    }
    if (((d.kinds & GH_KIND_FILTER) && !m.has_filter) ||
        ((d.kinds & GH_KIND_BALANCER) && !m.has_balancer)) {
        errors.push_back(refuse(m.name, m.path, "descriptor declares a kind without its hooks",
                                "fix the module's descriptor"));
        return false;
    }
    return true;
}

} // namespace

std::string LoadedModule::kinds() const {
    std::string out;
    auto add = [&out](const char* k) { out += out.empty() ? k : std::string(",") + k; };
    if (desc.kinds & GH_KIND_FILTER)
        add("filter");
    if (desc.kinds & GH_KIND_BALANCER)
        add("balancer");
    if (desc.kinds & GH_KIND_TASK)
        add("task");
    return out.empty() ? "none" : out;
}

std::mutex admin_mutex;

LoadedModule::~LoadedModule() {
    {
        std::lock_guard lock(admin_mutex); // no admin request reaches a destroyed module
        admin_fn = nullptr;
        admin_arg = nullptr;
    }
    if (load_called && desc.destroy)
        desc.destroy(state);
}

ModuleSet::~ModuleSet() {
    // Destroy in reverse load order.
    while (!modules_.empty())
        modules_.pop_back();
}

bool ModuleSet::load(const std::string& dir, const std::vector<std::string>& names,
                     std::vector<std::string>& errors) {
    size_t before = errors.size();
    for (const auto& name : names) {
        auto m = std::make_unique<LoadedModule>();
        m->name = name;
        m->path = (std::filesystem::path(dir) / (name + ".so")).string();
        std::error_code fs_ec;
        if (!std::filesystem::is_regular_file(m->path, fs_ec)) {
            errors.push_back(refuse(name, m->path, "file not found",
                                    "install the module or fix modules.dir"));
            continue;
        }
        std::error_code ec;
        m->library.load(m->path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local,
                        ec);
        if (ec) {
            errors.push_back(refuse(name, m->path, "cannot load: " + dlopen_reason(m->path),
                                    "check that it was built for this system"));
            continue;
        }
        if (!m->library.has(GH_ENTRY_SYMBOL)) {
            errors.push_back(refuse(name, m->path,
                                    fmt::format("no entry symbol '{}' (not a gatehouse ABI {} "
                                                "module; kernel ABI {}.{})",
                                                GH_ENTRY_SYMBOL, GH_ABI_MAJOR, GH_ABI_MAJOR,
                                                GH_ABI_MINOR),
                                    "rebuild it with the gatehouse SDK's GH_MODULE entry point"));
            continue;
        }
        auto entry = m->library.get<const gh_module_v1*(const gh_host_api_v1*)>(GH_ENTRY_SYMBOL);
        const gh_module_v1* desc = entry(host_api());
        if (!desc) {
            errors.push_back(refuse(name, m->path, "entry point returned no descriptor",
                                    "fix the module"));
            continue;
        }
        copy_prefix(m->desc, desc);
        if (!check_version(*m, errors) || !read_kinds(*m, errors))
            continue;
        if (m->desc.load) {
            gh_status_t rc = m->desc.load(&m->handle, &m->state);
            if (rc != GH_OK) {
                errors.push_back(refuse(name, m->path, fmt::format("load hook failed ({})", rc),
                                        "see the module's log lines above"));
                continue;
            }
        }
        m->load_called = true;
        log::debug("loaded module {} {} (ABI {}.{}, {}) from {}", name, m->desc.version ?
                   m->desc.version : "?", m->desc.abi_major, m->desc.abi_minor, m->kinds(),
                   m->path);
        modules_.push_back(std::move(m));
    }
    return errors.size() == before;
}

LoadedModule* ModuleSet::find(std::string_view name) const {
    for (const auto& m : modules_)
        if (m->name == name)
            return m.get();
    return nullptr;
}

} // namespace gatehouse::modules
