#include "net/stream.hpp"

void gh_stream::reset() {
    route = nullptr;
    path.clear();
    query = {};
    host.clear();
    peer_address.clear();
    log_fields.clear();
    normalised_target.clear();
    phase = GH_PHASE_REQUEST_HEADERS;
    has_reply = false;
    reply_status = 0;
    reply_headers.clear();
    reply_body.clear();
    reply_streamed = false;
    reply_length = UINT64_MAX;
    upstream_error = {};
    upstream_error_status = 0;
    slots.clear();
    for (int d = 0; d < 2; ++d) {
        subscriptions[d].clear();
        held_body[d].clear();
        body_overflowed[d] = false;
    }
    body_out.clear();
    peek_bytes = 0;
    peek_whole = false;
    peeked.clear();
    peek_done = response_body_complete = false;
    in_on_body = false;
    arena.clear();
}

void gh_stream::release_memory() {
    for (std::string* str : {&path, &host, &peer_address, &normalised_target, &reply_body,
                             &reply_store,
                             &held_body[0], &held_body[1], &body_out, &peeked})
        std::string().swap(*str);
    std::vector<gatehouse::http::Field>().swap(reply_headers);
    std::vector<Slot>().swap(slots);
    std::list<std::string>().swap(arena);
    for (auto& subs : subscriptions)
        std::vector<Subscription>().swap(subs);
}
