// Callouts: HTTP requests modules send to a named upstream (a JWKS refresh, a tag-manager hit),
// over TLS when the upstream has `tls = true`.
// Not the hot path, so Beast's message types and serializer are fine here.
#include "log.hpp"
#include "modules/services.hpp"
#include "net/worker.hpp"
#include "runtime.hpp"
#include "tls/client_context.hpp"

#include <boost/asio/post.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <openssl/x509.h>

#include <chrono>
#include <mutex>
#include <type_traits>

namespace gatehouse::modules {

namespace beast = boost::beast;
namespace bhttp = beast::http;

namespace {

std::mutex generation_mutex;
std::shared_ptr<const Generation> generation;

constexpr uint64_t max_callout_body = 8 * 1024 * 1024;

// One callout on its own connection: plain TCP, or TLS when the upstream has `tls = true`
// (the pool's client context: verification, SNI, client certificate).
template <class Stream>
class Callout : public std::enable_shared_from_this<Callout<Stream>> {
public:
    static constexpr bool tls = !std::is_same_v<Stream, beast::tcp_stream>;

    Callout(net::Worker& worker, std::shared_ptr<const Generation> gen, upstream::UpstreamPool& pool,
            upstream::Peer& peer, tls::ClientContext* tls_context, gh_callout_done_fn done,
            void* arg)
        : generation_(std::move(gen)), pool_(pool), peer_(peer), tls_(tls_context),
          stream_(open(worker, tls_context)), done_(done), arg_(arg),
          guard_(upstream::InflightGuard::adopt(&peer)) {}

    bhttp::request<bhttp::string_body> request;
    std::chrono::milliseconds timeout{0};

    void start() {
        started_ = std::chrono::steady_clock::now();
        beast::get_lowest_layer(stream_).expires_after(timeout);
        beast::get_lowest_layer(stream_).async_connect(
            peer_.endpoint,
            [self = this->shared_from_this()](beast::error_code ec) { self->on_connect(ec); });
    }

private:
    static Stream open(net::Worker& worker, tls::ClientContext* tls_context) {
        if constexpr (tls)
            return Stream(worker.io(), tls_context->context());
        else
            return Stream(worker.io());
    }
    void on_connect(beast::error_code ec) {
        if (ec)
            return finish(ec, GH_OUTCOME_CONNECT_FAILURE);
        if constexpr (tls) {
            if (!tls_->prepare(stream_.native_handle(), peer_.entry.host))
                return finish(beast::error_code(boost::asio::error::invalid_argument),
                              GH_OUTCOME_CONNECT_FAILURE);
            stream_.async_handshake(boost::asio::ssl::stream_base::client,
                                    [self = this->shared_from_this()](beast::error_code ec) {
                                        if (ec)
                                            return self->finish(ec, GH_OUTCOME_CONNECT_FAILURE);
                                        self->write();
                                    });
        } else {
            write();
        }
    }
    void write() {
        bhttp::async_write(stream_, request,
                           [self = this->shared_from_this()](beast::error_code ec, size_t) {
                               if (ec)
                                   return self->finish(ec, GH_OUTCOME_RESET);
                               self->read();
                           });
    }
    void read() {
        parser_.body_limit(max_callout_body);
        parser_.header_limit(64 * 1024);
        bhttp::async_read(stream_, buffer_, parser_,
                          [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              self->finish(ec, ec ? GH_OUTCOME_RESET : GH_OUTCOME_SUCCESS);
                          });
    }
    void finish(beast::error_code ec, uint32_t outcome) {
        if (ec == beast::error::timeout)
            outcome = GH_OUTCOME_TIMEOUT;
        const auto& response = parser_.get();
        if (!ec && response.result_int() >= 500)
            outcome = GH_OUTCOME_HTTP_5XX;
        // Latency to the end of the response, as the balancer's report for proxied requests
        // has it to the response head: a callout's body is small and read whole.
        const auto latency = std::chrono::duration_cast<std::chrono::microseconds>(
            std::chrono::steady_clock::now() - started_);
        pool_.report(peer_, outcome, ec ? 0 : response.result_int(),
                     static_cast<uint64_t>(latency.count()));
        guard_.release();
        std::vector<gh_header_t> headers;
        gh_callout_response_t out{};
        out.struct_size = sizeof out;
        std::string error;
        if (ec) {
            out.status = GH_ERR_INTERNAL;
            error = ec.message();
            if constexpr (tls) {
                const long verify = SSL_get_verify_result(stream_.native_handle());
                if (verify != X509_V_OK)
                    error = X509_verify_cert_error_string(verify);
            }
            out.error = {error.data(), error.size()};
        } else {
            out.status = static_cast<int32_t>(response.result_int());
            for (const auto& f : response)
                headers.push_back({{f.name_string().data(), f.name_string().size()},
                                   {f.value().data(), f.value().size()}});
            out.headers = headers.data();
            out.header_count = headers.size();
            out.body = {reinterpret_cast<const uint8_t*>(response.body().data()),
                        response.body().size()};
        }
        beast::error_code ignored;
        beast::get_lowest_layer(stream_).socket().close(ignored);
        done_(arg_, &out);
    }

    std::shared_ptr<const Generation> generation_;
    upstream::UpstreamPool& pool_;
    upstream::Peer& peer_;
    tls::ClientContext* tls_; // owned by generation_
    Stream stream_;
    beast::flat_buffer buffer_;
    bhttp::response_parser<bhttp::string_body> parser_;
    gh_callout_done_fn done_;
    void* arg_;
    upstream::InflightGuard guard_;
    std::chrono::steady_clock::time_point started_;
};

// Builds the request on `c` and starts it from a fresh stack (`done` never runs inside
// start_callout). False for a request Beast refuses.
template <class C>
bool send(std::shared_ptr<C> c, net::Worker& worker, const gh_callout_request_t* r,
          std::string_view method, std::string_view target, std::string_view host,
          std::chrono::milliseconds timeout) {
    try {
        c->request.method_string(method);
        c->request.target(target);
        c->request.version(11);
        c->request.set(bhttp::field::host, host);
        for (size_t i = 0; i < r->header_count; ++i)
            c->request.set(std::string_view(r->headers[i].name.ptr, r->headers[i].name.len),
                           std::string_view(r->headers[i].value.ptr, r->headers[i].value.len));
        c->request.body().assign(reinterpret_cast<const char*>(r->body.ptr),
                                 r->body.ptr ? r->body.len : 0);
        c->request.prepare_payload();
    } catch (const std::exception&) {
        return false;
    }
    c->timeout = timeout;
    boost::asio::post(worker.io(), [c] { c->start(); });
    return true;
}

} // namespace

void set_current_generation(std::shared_ptr<const Generation> g) {
    std::lock_guard lock(generation_mutex);
    generation = std::move(g);
}

std::shared_ptr<const Generation> current_generation() {
    std::lock_guard lock(generation_mutex);
    return generation;
}

boost::asio::thread_pool& offload_pool() {
    static boost::asio::thread_pool pool(2);
    return pool;
}

void stop_offload_pool() {
    offload_pool().stop();
    offload_pool().join();
}

gh_status_t start_callout(const gh_callout_request_t* r, gh_callout_done_fn done, void* arg) {
    net::Worker* worker = net::Worker::current();
    if (!worker)
        return GH_ERR_STATE;
    if (!r || !done || r->struct_size < offsetof(gh_callout_request_t, body) + sizeof(gh_bytes_t))
        return GH_ERR_INVALID;
    auto gen = current_generation();
    upstream::UpstreamPool* pool = gen ? gen->pool({r->upstream.ptr, r->upstream.len}) : nullptr;
    if (!pool)
        return GH_ERR_NOT_FOUND;
    std::string_view method(r->method.ptr, r->method.len);
    std::string_view target(r->target.ptr, r->target.len);
    if (method.empty() || target.empty() || target[0] != '/')
        return GH_ERR_INVALID;
    std::vector<uint8_t> none(pool->size(), 0);
    upstream::Peer* peer = pool->select(nullptr, 0, none);
    if (!peer)
        return GH_ERR_NOT_FOUND;
    // The Host a client would have sent: the upstream's `host` when set, else the server's
    // address (as for proxied requests that came without one).
    const std::string& host = pool->config().host.empty() ? peer->entry.address : pool->config().host;
    const auto timeout = std::chrono::milliseconds(
        r->timeout_ms ? r->timeout_ms : pool->config().first_byte_timeout.count());
    tls::ClientContext* tls_context = gen->pool_tls(pool->index());
    bool sent;
    if (tls_context) {
        using TlsCallout = Callout<beast::ssl_stream<beast::tcp_stream>>;
        sent = send(std::make_shared<TlsCallout>(*worker, gen, *pool, *peer, tls_context, done, arg),
                    *worker, r, method, target, host, timeout);
    } else {
        using TcpCallout = Callout<beast::tcp_stream>;
        sent = send(std::make_shared<TcpCallout>(*worker, gen, *pool, *peer, nullptr, done, arg),
                    *worker, r, method, target, host, timeout);
    }
    if (!sent)
        return GH_ERR_INVALID;
    return GH_OK;
}

} // namespace gatehouse::modules
