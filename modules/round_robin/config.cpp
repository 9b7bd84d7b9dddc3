// round_robin: configuration. Weights come from the upstream's servers, not from this table.
#include "config.hpp"

namespace round_robin {

const gh::Keys<Config> &keys() {
    // No keys: read() reads none, so the kernel reports every key in the table as unknown.
    static const gh::Keys<Config> declared("round_robin");
    return declared;
}

std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base) {
    auto c = std::make_unique<Config>(base);
    keys().read(table, *c);
    return c;
}

} // namespace round_robin
