// example: runtime.
#include "example.hpp"

namespace example {

gh_action_t add_response_header(gh::Stream stream, const Config &config) {
    if (stream.set_header(GH_HEADERS_RESPONSE, config.header, config.value) != GH_OK) {
        gh::log_warn(gh::cat("example: cannot set ", config.header));
        return GH_CONTINUE; // a cosmetic header is not worth failing the request
    }
    return GH_CONTINUE;
}

} // namespace example
