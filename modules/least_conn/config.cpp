// least_conn: configuration. Weights and in-flight counts come from the kernel's pool.
#include "config.hpp"

namespace least_conn {

const gh::Keys<Config> &keys() {
    // No keys: read() reads none, so the kernel reports every key in the table as unknown.
    static const gh::Keys<Config> declared("least_conn");
    return declared;
}

std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base) {
    auto c = std::make_unique<Config>(base);
    keys().read(table, *c);
    return c;
}

} // namespace least_conn
