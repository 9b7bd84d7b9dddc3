// least_conn: configuration. Weights and in-flight counts come from the kernel's pool.
#include "config.hpp"

namespace least_conn {

std::unique_ptr<Config> parse_config(gh::ConfigNode /*table*/, const Config &base) {
    // Deliberately reads nothing: the kernel turns every key of the table into an unknown-key
    // error, which is the right answer for a module without keys.
    return std::make_unique<Config>(base);
}

} // namespace least_conn
