#include "admin/admin_server.hpp"

#include "log.hpp"

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <fmt/format.h>

#include <optional>

namespace gatehouse::admin {

namespace beast = boost::beast;
namespace http = boost::beast::http;
using boost::asio::ip::tcp;

namespace {

// Admin requests are small: a scraper or an operator with curl. Anything bigger is refused.
constexpr uint32_t kMaxHeaderBytes = 8 * 1024;
constexpr uint64_t kMaxBodyBytes = 64 * 1024;
// One timeout covers an idle keep-alive connection and a request trickling in.
constexpr auto kReadTimeout = std::chrono::seconds(15);
constexpr auto kWriteTimeout = std::chrono::seconds(10);
// Bounds the admin thread's sockets and memory whatever a client does.
constexpr unsigned kMaxSessions = 32;

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

constexpr const char* kText = "text/plain; charset=utf-8";

Response reply(http::status status, std::string body, const char* content_type = kText) {
    Response res{status, 11};
    res.set(http::field::content_type, content_type);
    res.set(http::field::cache_control, "no-store");
    res.body() = std::move(body);
    return res;
}

// Runs a handler; the admin thread answers 500 rather than die on a handler's exception.
template <class Fn> Response call_handler(const Fn& fn, http::status ok, const char* content_type) {
    if (!fn)
        return reply(http::status::not_implemented, "not available\n");
    try {
        return reply(ok, fn(), content_type);
    } catch (const std::exception& e) {
        log::error("admin: handler failed: {}", e.what());
        return reply(http::status::internal_server_error, fmt::format("error: {}\n", e.what()));
    }
}

} // namespace

class AdminSession : public std::enable_shared_from_this<AdminSession> {
public:
    AdminSession(AdminServer& server, tcp::socket socket)
        : server_(server), stream_(std::move(socket)) {
        ++server_.sessions_;
    }
    ~AdminSession() { --server_.sessions_; }

    void run() { do_read(); }

private:
    void do_read();
    void on_read(beast::error_code ec);
    void send(Response res);
    void on_write(beast::error_code ec);
    Response route(const Request& req);
    Response reload();
    void close();

    AdminServer& server_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    Response res_;
};

void AdminSession::do_read() {
    // A fresh parser per request: its limits apply to each request, not to the connection.
    parser_.emplace();
    parser_->header_limit(kMaxHeaderBytes);
    parser_->body_limit(kMaxBodyBytes);
    stream_.expires_after(kReadTimeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
}

void AdminSession::on_read(beast::error_code ec) {
    if (ec == http::error::header_limit)
        return send(reply(http::status::request_header_fields_too_large, "header too large\n"));
    if (ec == http::error::body_limit)
        return send(reply(http::status::payload_too_large, "body too large\n"));
    if (ec && ec.category() == http::make_error_code(http::error::bad_target).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message)
        return send(reply(http::status::bad_request, "bad request\n"));
    if (ec)
        return close(); // end of stream, timeout, reset: nothing to answer
    Request req = parser_->release();
    Response res = route(req);
    res.version(req.version());
    res.keep_alive(req.keep_alive());
    send(std::move(res));
}

Response AdminSession::route(const Request& req) {
    std::string_view target = req.target();
    std::string_view path = target.substr(0, target.find('?'));
    bool get = req.method() == http::verb::get || req.method() == http::verb::head;

    if (path == "/reload") {
        if (req.method() != http::verb::post) {
            Response res = reply(http::status::method_not_allowed, "method not allowed\n");
            res.set(http::field::allow, "POST");
            return res;
        }
        return reload();
    }
    if (path.rfind("/modules/", 0) == 0) {
        if (!server_.handlers_.module)
            return reply(http::status::not_found, "not found\n");
        try {
            auto r = server_.handlers_.module(req.method_string(), target, req.body());
            if (!r)
                return reply(http::status::not_found, "not found\n");
            Response res = reply(static_cast<http::status>(r->status), std::move(r->body),
                                 kText);
            if (!r->content_type.empty())
                res.set(http::field::content_type, r->content_type);
            return res;
        } catch (const std::exception& e) {
            log::error("admin: module handler failed: {}", e.what());
            return reply(http::status::internal_server_error, "error\n");
        }
    }
    if (path != "/healthz" && path != "/readyz" && path != "/metrics" && path != "/status")
        return reply(http::status::not_found, "not found\n");
    if (!get) {
        Response res = reply(http::status::method_not_allowed, "method not allowed\n");
        res.set(http::field::allow, "GET, HEAD");
        return res;
    }

    Response res;
    if (path == "/healthz")
        res = reply(http::status::ok, "ok\n");
    else if (path == "/readyz")
        res = server_.ready() ? reply(http::status::ok, "ready\n")
                              : reply(http::status::service_unavailable, "draining\n");
    else if (path == "/metrics")
        res = call_handler(server_.handlers_.metrics, http::status::ok,
                           "text/plain; version=0.0.4; charset=utf-8");
    else
        res = call_handler(server_.handlers_.status_json, http::status::ok, "application/json");
    if (req.method() == http::verb::head) {
        // RFC 9110 §9.3.2: the same header fields as GET, no content.
        res.prepare_payload();
        res.body().clear();
    }
    return res;
}

Response AdminSession::reload() {
    if (!server_.handlers_.reload)
        return reply(http::status::not_implemented, "not available\n");
    try {
        auto [ok, text] = server_.handlers_.reload();
        if (!text.empty() && text.back() != '\n')
            text.push_back('\n');
        return reply(ok ? http::status::ok : http::status::internal_server_error, std::move(text));
    } catch (const std::exception& e) {
        log::error("admin: reload failed: {}", e.what());
        return reply(http::status::internal_server_error, fmt::format("error: {}\n", e.what()));
    }
}

void AdminSession::send(Response res) {
    res_ = std::move(res);
    // A refused request leaves unread bytes behind: answer, then close.
    if (parser_ && !parser_->is_done())
        res_.keep_alive(false);
    if (!res_.has_content_length())
        res_.prepare_payload();
    stream_.expires_after(kWriteTimeout);
    http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, size_t) {
        self->on_write(ec);
    });
}

void AdminSession::on_write(beast::error_code ec) {
    if (ec || !res_.keep_alive())
        return close();
    do_read();
}

void AdminSession::close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
}

AdminServer::AdminServer(AdminHandlers handlers)
    : handlers_(std::move(handlers)), acceptor_(io_), accept_backoff_(io_) {}

AdminServer::~AdminServer() {
    stop();
}

std::unique_ptr<AdminServer> AdminServer::start(const tcp::endpoint& endpoint,
                                                AdminHandlers handlers, std::string& error) {
    std::unique_ptr<AdminServer> server(new AdminServer(std::move(handlers)));
    beast::error_code ec;
    auto& a = server->acceptor_;
    a.open(endpoint.protocol(), ec);
    if (!ec)
        a.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec)
        a.bind(endpoint, ec);
    if (!ec)
        a.listen(tcp::socket::max_listen_connections, ec);
    if (ec) {
        auto address = endpoint.address();
        std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
        error = fmt::format("admin listener {}:{}: {}", host, endpoint.port(), ec.message());
        return nullptr;
    }
    server->port_ = a.local_endpoint().port();
    server->accept();
    server->thread_ = std::thread([s = server.get()] {
        // Handlers catch their own exceptions; this keeps the thread alive if Asio throws.
        for (;;) {
            try {
                s->io_.run();
                return;
            } catch (const std::exception& e) {
                log::error("admin: {}", e.what());
            }
        }
    });
    return server;
}

void AdminServer::accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
        if (ec == boost::asio::error::operation_aborted)
            return;
        if (ec) {
            // Out of descriptors and the like: retry shortly rather than spin.
            log::warn("admin: accept failed: {}", ec.message());
            accept_backoff_.expires_after(std::chrono::milliseconds(100));
            accept_backoff_.async_wait([this](beast::error_code e) {
                if (!e)
                    accept();
            });
            return;
        }
        if (sessions_ < kMaxSessions)
            std::make_shared<AdminSession>(*this, std::move(socket))->run();
        accept();
    });
}

void AdminServer::stop() {
    if (!thread_.joinable())
        return;
    io_.stop();
    thread_.join();
    beast::error_code ignored;
    acceptor_.close(ignored);
}

} // namespace gatehouse::admin
