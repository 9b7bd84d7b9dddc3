// The end of a request as operators see it: the access-log record and the request metrics.
#include "net/client_connection.hpp"

#include "http/status.hpp"
#include "log.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

namespace gatehouse::net {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
const char* termination_name(Termination t) {
    switch (t) {
    case Termination::completed: return "completed";
    case Termination::rejected: return "rejected";
    case Termination::local_reply: return "local_reply";
    case Termination::client_abort: return "client_abort";
    case Termination::upstream_error: return "upstream_error";
    case Termination::upstream_reset: return "upstream_reset";
    case Termination::timeout: return "timeout";
    case Termination::dropped: return "dropped";
    }
    return "completed";
}

int64_t micros(std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
    if (from.time_since_epoch().count() == 0 || to.time_since_epoch().count() == 0)
        return -1;
    return std::chrono::duration_cast<std::chrono::microseconds>(to - from).count();
}

std::string_view request_header(const http::RequestHead& head, std::string_view name) {
    for (const auto& f : head.fields)
        if (http::iequals(f.name, name))
            return f.value;
    return {};
}
} // namespace

void ClientConnection::log_access() {
    if (!timing_.started || timing_.logged)
        return;
    timing_.logged = true;
    auto now = std::chrono::steady_clock::now();
    unsigned status = stream_.has_reply ? stream_.reply_status : response_.status;
    if (status == 0 && termination_ == Termination::client_abort)
        status = 499; // nginx's "client closed request", so aborts show in the metrics
    generation_->metrics().request_done(worker_.id(),
                                        stream_.route ? stream_.route->index : metrics::kNoRoute,
                                        status, static_cast<uint64_t>(micros(timing_.start, now)));
    accesslog::AccessLog* log = generation_->access_log();
    if (!log)
        return;
    accesslog::AccessRecord r;
    r.start = worker_.wall_time(timing_.start);
    r.client_address = stream_.client_address;
    r.method = request_.method;
    r.target = stream_.normalised_target.empty() ? request_.target
                                                 : std::string_view(stream_.normalised_target);
    r.host = request_.host;
    r.user_agent = request_header(request_, "user-agent");
    r.referer = request_header(request_, "referer");
    r.route = stream_.route ? std::string_view(stream_.route->config->name) : "";
    r.upstream = pool_ ? std::string_view(pool_->name()) : "";
    r.upstream_address = stream_.peer_address;
    r.version = request_.version;
    r.status = stream_.has_reply ? stream_.reply_status : response_.status;
    r.bytes_sent = timing_.bytes_out;
    r.bytes_received = timing_.bytes_in;
    r.header_read_us = micros(timing_.start, timing_.head);
    r.upstream_connect_us = micros(timing_.connect_start, timing_.connected);
    r.upstream_first_byte_us = micros(timing_.connect_start, timing_.first_byte);
    r.total_us = micros(timing_.start, now);
    r.termination = termination_name(termination_);
    r.tls = stream_.tls;
    r.attempts = attempt_ + (stale_retried_ ? 1 : 0);
    r.fields = stream_.log_fields;
    log->write(worker_.id(), r);
}

} // namespace gatehouse::net
