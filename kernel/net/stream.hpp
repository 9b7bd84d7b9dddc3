// The kernel side of gh_stream_t: one request/response exchange as modules see it. Lives inside
// its ClientConnection and is reset (not reallocated) per request.
#pragma once

#include "http/message.hpp"
#include "runtime.hpp"

#include <gatehouse/gatehouse.h>

#include <list>
#include <string>
#include <vector>

namespace gatehouse::net {
class ClientConnection;
}

struct gh_stream {
    gatehouse::net::ClientConnection* connection = nullptr;
    const gatehouse::Route* route = nullptr;
    gatehouse::http::RequestHead* request = nullptr;
    gatehouse::http::ResponseHead* response = nullptr;
    std::string path;             // normalised
    std::string_view query;
    std::string host;             // lower-case, no port
    std::string client_address;   // "ip:port"
    std::string peer_address;     // selected upstream server
    // Fields modules add to this request's access log line (SDK 1.3 log_field), in order.
    std::vector<std::pair<std::string, std::string>> log_fields;
    std::string normalised_target;
    uint32_t phase = GH_PHASE_REQUEST_HEADERS;
    bool tls = false;

    // Local reply prepared by a filter (host->respond) or by the kernel.
    bool has_reply = false;
    uint32_t reply_status = 0;
    std::vector<gatehouse::http::Field> reply_headers; // views into reply_store (or static)
    std::string reply_store;
    std::string reply_body;
    bool reply_streamed = false;          // respond_stream: the body follows via reply_write
    uint64_t reply_length = UINT64_MAX;   // its declared length (GH_LENGTH_UNKNOWN)

    // GH_PHASE_UPSTREAM_ERROR: why the upstream failed and the status the kernel would send.
    std::string_view upstream_error;
    uint32_t upstream_error_status = 0;

    // Per-filter context slots, in route filter order (early filters first).
    struct Slot {
        gh_module_t* module;
        void* ctx;
    };
    std::vector<Slot> slots;

    // Body subscriptions, per direction: which modules asked, and how.
    struct Subscription {
        gh_module_t* module;
        uint32_t mode;
    };
    std::vector<Subscription> subscriptions[2];
    std::string held_body[2];      // GH_BODY_BUFFER
    // A response peek (body_peek): how much the filters asked to see, what the kernel read for
    // them (decoded, not yet through the body filters), whether it ran, and whether the kernel
    // has read the whole response body.
    uint64_t peek_bytes = 0;
    std::string peeked;
    bool peek_done = false;
    bool peek_whole = false; // GH_PEEK_WHOLE: hold to the end or body_limit, never cut at a pause
    bool response_body_complete = false;
    bool body_overflowed[2] = {false, false};
    std::string body_out;          // what filters emitted with body_write during on_body
    uint32_t body_writer_direction = 0;
    bool in_on_body = false;

    // Strings filters added to header blocks; list nodes keep views stable, and an empty list
    // allocates nothing.
    std::list<std::string> arena;
    std::string_view keep(std::string_view s) { return arena.emplace_back(s); }

    void reset();
    // Gives back the capacity of per-request strings and vectors (an idle connection).
    void release_memory();
    bool subscribed(uint32_t direction) const { return !subscriptions[direction].empty(); }
};
