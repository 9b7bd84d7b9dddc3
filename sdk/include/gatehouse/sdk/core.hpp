/*
 * gatehouse SDK, C++ wrapper -- core: string views, the host table, capability checks, logging.
 *
 * Header-only, C++17, compiled into the module: nothing here is a kernel symbol, and everything
 * has hidden visibility when the module is built with gatehouse_add_module().
 * Include <gatehouse/sdk.hpp> rather than this file.
 */
#ifndef GATEHOUSE_SDK_CORE_HPP
#define GATEHOUSE_SDK_CORE_HPP

#include "gatehouse/gatehouse.h"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

/* The oldest kernel minor this module supports; defaults to the SDK it is built with. Define it
 * lower (before including the SDK) to load on older 1.y kernels; then guard every host function
 * appended after that minor with gh::host_has / GH_HAS. */
#ifndef GATEHOUSE_ABI_MINOR_BASELINE
#define GATEHOUSE_ABI_MINOR_BASELINE GH_ABI_MINOR
#endif

namespace gh {

static_assert(GATEHOUSE_ABI_MINOR_BASELINE <= GH_ABI_MINOR,
              "GATEHOUSE_ABI_MINOR_BASELINE cannot be newer than the SDK's GH_ABI_MINOR");

/* ---- string views ------------------------------------------------------------------------- */

/* A gh_str_t as std::string_view. Ownership: borrowed, same lifetime as the gh_str_t.
 * Thread: any. */
inline std::string_view sv(gh_str_t s) noexcept {
    return s.ptr != nullptr ? std::string_view(s.ptr, s.len) : std::string_view();
}

/* A gh_bytes_t as std::string_view. Ownership: borrowed, same lifetime as the gh_bytes_t.
 * Thread: any. */
inline std::string_view sv(gh_bytes_t b) noexcept {
    return b.ptr != nullptr ? std::string_view(reinterpret_cast<const char *>(b.ptr), b.len)
                            : std::string_view();
}

/* A std::string_view as gh_str_t for passing to the host. Ownership: borrowed; the host copies
 * what it keeps before the call returns. Thread: any. */
inline gh_str_t str(std::string_view s) noexcept { return gh_str_t{s.data(), s.size()}; }

/* A std::string_view as gh_bytes_t. Ownership: borrowed, as str(). Thread: any. */
inline gh_bytes_t bytes(std::string_view s) noexcept {
    return gh_bytes_t{reinterpret_cast<const uint8_t *>(s.data()), s.size()};
}

/* ---- the host table -------------------------------------------------------------------------- */

namespace detail {
// One module per shared object, so process-wide slots are enough. Hidden visibility keeps them
// private to the module.
inline const gh_host_api_v1 *g_host = nullptr;
inline gh_module_t *g_self = nullptr;
} // namespace detail

/* Access to the kernel's host table and this module's handle.
 * Ownership: the table and the handle belong to the kernel and stay valid until destroy.
 * Thread: any (set once, on the main thread, before any other hook runs). */
class Host {
  public:
    /* The table given to the entry point, or nullptr before the entry point ran. */
    static const gh_host_api_v1 *api() noexcept { return detail::g_host; }
    /* This module's handle (from the load hook), or nullptr before load. */
    static gh_module_t *self() noexcept { return detail::g_self; }
    /* The kernel's version string ("0.1.0"); static. Empty before the entry point ran. */
    static std::string_view kernel_version() noexcept {
        return detail::g_host != nullptr ? sv(detail::g_host->kernel_version) : std::string_view();
    }
    /* The kernel's ABI version (0.0 before the entry point ran). */
    static uint32_t abi_major() noexcept { return detail::g_host ? detail::g_host->abi_major : 0; }
    static uint32_t abi_minor() noexcept { return detail::g_host ? detail::g_host->abi_minor : 0; }

    /* Set by GH_MODULE's entry point and the load trampoline; tests with a fake host call them. */
    static void set(const gh_host_api_v1 *host) noexcept { detail::g_host = host; }
    static void set_self(gh_module_t *self) noexcept { detail::g_self = self; }
};

/* The host table. Precondition: the entry point ran (true in every hook). Thread: any. */
inline const gh_host_api_v1 &host() noexcept { return *detail::g_host; }

/* True if `host` (default: the module's) provides `field`, i.e. its struct_size covers the field
 * and the pointer is set: the C++ form of GH_HOST_HAS. Needed only for functions appended after
 * GATEHOUSE_ABI_MINOR_BASELINE. Example: gh::host_has(&gh_host_api_v1::callout).
 * Thread: any. */
template <class Field>
bool host_has(Field gh_host_api_v1::*field, const gh_host_api_v1 *table = detail::g_host) noexcept {
    if (table == nullptr)
        return false;
    // The field's offset, measured on a zeroed table of this SDK's layout.
    static const gh_host_api_v1 layout{};
    const auto offset = static_cast<std::size_t>(reinterpret_cast<const char *>(&(layout.*field)) -
                                                 reinterpret_cast<const char *>(&layout));
    if (table->struct_size < offset + sizeof(Field))
        return false;
    if constexpr (std::is_pointer_v<Field>)
        return table->*field != nullptr;
    else
        return true;
}

/* GH_HAS(field): gh::host_has(&gh_host_api_v1::field) on the module's host table. */
#define GH_HAS(field) (::gh::host_has(&gh_host_api_v1::field))

/* ---- logging ------------------------------------------------------------------------------------ */

/* Concatenate strings, characters, booleans and numbers into one std::string (no format
 * language). Ownership: the caller owns the result. Thread: any. May throw std::bad_alloc. */
template <class... Args>
std::string cat(const Args &...args) {
    std::string out;
    auto append = [&out](const auto &arg) {
        using T = std::decay_t<decltype(arg)>;
        if constexpr (std::is_same_v<T, bool>)
            out += arg ? "true" : "false";
        else if constexpr (std::is_same_v<T, char>)
            out += arg;
        else if constexpr (std::is_arithmetic_v<T>)
            out += std::to_string(arg);
        else
            out += std::string_view(arg);
    };
    (append(args), ...);
    return out;
}

/* Log `msg` at `level` (GH_LOG_ERROR/WARN/INFO/DEBUG) as this module. Dropped before the entry
 * point ran. Ownership: `msg` copied by the kernel. Thread: any. */
inline void log(uint32_t level, std::string_view msg) noexcept {
    const gh_host_api_v1 *h = detail::g_host;
    if (h != nullptr && h->log != nullptr)
        h->log(detail::g_self, level, str(msg));
}
/* log() at a fixed level. Ownership and thread: as log(). */
inline void log_error(std::string_view msg) noexcept { log(GH_LOG_ERROR, msg); }
inline void log_warn(std::string_view msg) noexcept { log(GH_LOG_WARN, msg); }
inline void log_info(std::string_view msg) noexcept { log(GH_LOG_INFO, msg); }
inline void log_debug(std::string_view msg) noexcept { log(GH_LOG_DEBUG, msg); }

namespace detail {
/* Log the exception being handled as "<where>: <what>". Call only inside a catch block.
 * Thread: any. */
inline void log_current_exception(const char *where) noexcept {
    try {
        throw;
    } catch (const std::exception &e) {
        try {
            log_error(cat(where, ": exception: ", e.what()));
        } catch (...) {
            log_error(where);
        }
    } catch (...) {
        try {
            log_error(cat(where, ": unknown exception"));
        } catch (...) {
            log_error(where);
        }
    }
}
} // namespace detail

} // namespace gh

#endif // GATEHOUSE_SDK_CORE_HPP
