#include "admin/admin_server.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <stdexcept>

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;
using gatehouse::admin::AdminHandlers;
using gatehouse::admin::AdminServer;

namespace {

using Response = http::response<http::string_body>;

// A blocking HTTP/1.1 client on one connection, for several requests in a row.
class Client {
public:
    explicit Client(uint16_t port) : socket_(io_) {
        socket_.connect({asio::ip::make_address("127.0.0.1"), port});
    }

    Response request(http::verb method, std::string target, std::string body = "") {
        http::request<http::string_body> req{method, target, 11};
        req.set(http::field::host, "127.0.0.1");
        req.body() = std::move(body);
        req.prepare_payload();
        http::write(socket_, req);
        return read(method == http::verb::head);
    }

    Response read(bool head = false) {
        http::response_parser<http::string_body> parser;
        parser.skip(head);
        http::read(socket_, buffer_, parser);
        return parser.release();
    }

    void send_raw(const std::string& bytes) { asio::write(socket_, asio::buffer(bytes)); }

    // True once the server has closed the connection (a read sees end of stream).
    bool closed_by_server() {
        char byte;
        boost::system::error_code ec;
        socket_.read_some(asio::buffer(&byte, 1), ec);
        return ec == asio::error::eof || ec == asio::error::connection_reset;
    }

private:
    asio::io_context io_;
    tcp::socket socket_;
    boost::beast::flat_buffer buffer_;
};

class AdminServerTest : public ::testing::Test {
protected:
    void SetUp() override {
        AdminHandlers h;
        h.metrics = [] {
            return std::string("# HELP gatehouse_x x\n# TYPE gatehouse_x gauge\ngatehouse_x 1\n");
        };
        h.status_json = [this] {
            if (status_throws)
                throw std::runtime_error("no generation");
            return std::string("{\"generation\":1}\n");
        };
        h.reload = [this] {
            std::lock_guard lock(mutex);
            return reload_result;
        };
        std::string error;
        server = AdminServer::start({asio::ip::make_address("127.0.0.1"), 0}, std::move(h), error);
        ASSERT_TRUE(server) << error;
        ASSERT_NE(server->port(), 0);
    }

    Response get(std::string target, http::verb method = http::verb::get) {
        Client client(server->port());
        return client.request(method, std::move(target));
    }

    std::unique_ptr<AdminServer> server;
    // Set by the test thread, read by the admin thread.
    std::mutex mutex;
    std::pair<bool, std::string> reload_result{true, "reloaded: generation 2"};
    std::atomic<bool> status_throws{false};
};

} // namespace

TEST_F(AdminServerTest, HealthzAnswersOk) {
    Response res = get("/healthz");
    EXPECT_EQ(res.result(), http::status::ok);
    EXPECT_EQ(res.body(), "ok\n");
    EXPECT_EQ(res[http::field::content_type], "text/plain; charset=utf-8");
}

TEST_F(AdminServerTest, ReadyzTurns503WhenDraining) {
    Response before = get("/readyz");
    EXPECT_EQ(before.result(), http::status::ok);
    EXPECT_EQ(before.body(), "ready\n");
    server->set_ready(false);
    Response after = get("/readyz");
    EXPECT_EQ(after.result(), http::status::service_unavailable);
    EXPECT_EQ(after.body(), "draining\n");
    EXPECT_EQ(get("/healthz").result(), http::status::ok) << "alive while draining";
}

TEST_F(AdminServerTest, MetricsAreServedAsPrometheusText) {
    Response res = get("/metrics");
    EXPECT_EQ(res.result(), http::status::ok);
    EXPECT_EQ(res[http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_NE(res.body().find("gatehouse_x 1\n"), std::string::npos);
    EXPECT_EQ(get("/metrics?name[]=x").result(), http::status::ok) << "a query is ignored";
}

TEST_F(AdminServerTest, StatusIsJsonAndAFailingHandlerIs500) {
    Response res = get("/status");
    EXPECT_EQ(res.result(), http::status::ok);
    EXPECT_EQ(res[http::field::content_type], "application/json");
    EXPECT_EQ(res.body(), "{\"generation\":1}\n");
    status_throws = true;
    Response failed = get("/status");
    EXPECT_EQ(failed.result(), http::status::internal_server_error);
    EXPECT_NE(failed.body().find("no generation"), std::string::npos);
    EXPECT_EQ(get("/healthz").result(), http::status::ok) << "the admin thread survived";
}

TEST_F(AdminServerTest, ReloadAnswers200OrTheReasonWith500) {
    Client client(server->port());
    Response ok = client.request(http::verb::post, "/reload");
    EXPECT_EQ(ok.result(), http::status::ok);
    EXPECT_EQ(ok.body(), "reloaded: generation 2\n");
    std::unique_lock lock(mutex);
    reload_result = {false, "gatehouse.toml:3: [upstream.app] unknown key; generation 2 kept"};
    lock.unlock();
    Response failed = client.request(http::verb::post, "/reload");
    EXPECT_EQ(failed.result(), http::status::internal_server_error);
    EXPECT_EQ(failed.body(), "gatehouse.toml:3: [upstream.app] unknown key; generation 2 kept\n");
}

TEST_F(AdminServerTest, WrongMethodIs405WithAllow) {
    Response get_reload = get("/reload");
    EXPECT_EQ(get_reload.result(), http::status::method_not_allowed);
    EXPECT_EQ(get_reload[http::field::allow], "POST");
    Response post_metrics = get("/metrics", http::verb::post);
    EXPECT_EQ(post_metrics.result(), http::status::method_not_allowed);
    EXPECT_EQ(post_metrics[http::field::allow], "GET, HEAD");
    EXPECT_EQ(get("/healthz", http::verb::delete_).result(), http::status::method_not_allowed);
}

TEST_F(AdminServerTest, UnknownPathIs404) {
    EXPECT_EQ(get("/").result(), http::status::not_found);
    EXPECT_EQ(get("/healthz/x").result(), http::status::not_found);
    EXPECT_EQ(get("/metrics", http::verb::put).result(), http::status::method_not_allowed);
}

TEST_F(AdminServerTest, HeadHasTheLengthOfGetWithoutBody) {
    Client client(server->port());
    Response head = client.request(http::verb::head, "/healthz");
    EXPECT_EQ(head.result(), http::status::ok);
    EXPECT_EQ(head[http::field::content_length], "3");
    // The next response on the connection parses: no stray body bytes were sent.
    EXPECT_EQ(client.request(http::verb::get, "/readyz").body(), "ready\n");
}

TEST_F(AdminServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
    Client client(server->port());
    for (int i = 0; i < 3; ++i)
        EXPECT_EQ(client.request(http::verb::get, "/healthz").body(), "ok\n");
    // Pipelined: two requests in one write, two responses in order.
    client.send_raw(
        "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /readyz HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_EQ(client.read().body(), "ok\n");
    EXPECT_EQ(client.read().body(), "ready\n");
}

TEST_F(AdminServerTest, ConnectionCloseIsHonoured) {
    Client client(server->port());
    client.send_raw("GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(client.read().body(), "ok\n");
    EXPECT_TRUE(client.closed_by_server());
}

TEST_F(AdminServerTest, OversizedHeaderIs431AndClosed) {
    Client client(server->port());
    client.send_raw("GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(16 * 1024, 'a') +
                    "\r\n\r\n");
    Response res = client.read();
    EXPECT_EQ(res.result(), http::status::request_header_fields_too_large);
    EXPECT_TRUE(client.closed_by_server());
}

TEST_F(AdminServerTest, OversizedBodyIs413) {
    Client client(server->port());
    client.send_raw("POST /reload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n");
    EXPECT_EQ(client.read().result(), http::status::payload_too_large);
    EXPECT_TRUE(client.closed_by_server());
}

TEST_F(AdminServerTest, GarbageIs400AndClosed) {
    Client client(server->port());
    client.send_raw("NOT HTTP AT ALL\r\n\r\n");
    EXPECT_EQ(client.read().result(), http::status::bad_request);
    EXPECT_TRUE(client.closed_by_server());
}

TEST_F(AdminServerTest, AnAddressInUseIsReported) {
    std::string error;
    auto second = AdminServer::start({asio::ip::make_address("127.0.0.1"), server->port()},
                                     AdminHandlers{}, error);
    EXPECT_FALSE(second);
    EXPECT_NE(error.find(fmt::format("127.0.0.1:{}", server->port())), std::string::npos) << error;
}

TEST_F(AdminServerTest, StopClosesTheListener) {
    uint16_t port = server->port();
    server->stop();
    server->stop(); // idempotent
    asio::io_context io;
    tcp::socket socket(io);
    boost::system::error_code ec;
    socket.connect({asio::ip::make_address("127.0.0.1"), port}, ec);
    EXPECT_EQ(ec, asio::error::connection_refused);
}

TEST(AdminServer, UnsetHandlersAnswer501) {
    std::string error;
    auto server =
        AdminServer::start({asio::ip::make_address("127.0.0.1"), 0}, AdminHandlers{}, error);
    ASSERT_TRUE(server) << error;
    Client client(server->port());
    EXPECT_EQ(client.request(http::verb::get, "/metrics").result(), http::status::not_implemented);
    EXPECT_EQ(client.request(http::verb::post, "/reload").result(), http::status::not_implemented);
    EXPECT_EQ(client.request(http::verb::get, "/healthz").result(), http::status::ok);
}
