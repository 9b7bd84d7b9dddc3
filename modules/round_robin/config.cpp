// round_robin: configuration. Weights come from the upstream's servers, not from this table.
#include "config.hpp"

namespace round_robin {

std::unique_ptr<Config> parse_config(gh::ConfigNode /*table*/, const Config &base) {
    // Deliberately reads nothing: the kernel turns every key of the table into an unknown-key
    // error, which is the right answer for a module without keys.
    return std::make_unique<Config>(base);
}

} // namespace round_robin
