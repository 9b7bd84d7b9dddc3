#include "net/stream.hpp"

void gh_stream::reset() {
    route = nullptr;
    path.clear();
    query = {};
    host.clear();
    peer_address.clear();
    normalised_target.clear();
    phase = GH_PHASE_REQUEST_HEADERS;
    has_reply = false;
    reply_status = 0;
    reply_headers.clear();
    reply_body.clear();
    slots.clear();
    for (int d = 0; d < 2; ++d) {
        subscriptions[d].clear();
        held_body[d].clear();
        body_overflowed[d] = false;
    }
    body_out.clear();
    in_on_body = false;
    arena.clear();
}
