// example: a filter that adds one configured header to every response.
#pragma once

#include "config.hpp"

#include <gatehouse/sdk.hpp>

namespace example {

// Set the configured header on the response. Returns the action for RESPONSE_HEADERS.
// Thread: the stream's worker.
gh_action_t add_response_header(gh::Stream stream, const Config &config);

} // namespace example
