// abi_conformance: the 1.3 readiness watches, driving the module's own socket the way a client
// library (hiredis) would. After the PAUSE chain's callout, when `watch_port` is set: connect
// without blocking to 127.0.0.1:watch_port, wait for GH_FD_WRITE (the connect finished), send
// `GET /watch`, then read the answer on GH_FD_READ at most 16 bytes per call -- the rest must be
// reported again (level-triggered) -- cancel the watch from inside its callback at end of
// stream, close the socket, and resume the stream.
#include "conformance.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace abi_conformance {

namespace {

struct WatchLeg {
    StreamState *st = nullptr;
    void (*finish)(StreamState *, bool) = nullptr;
    int fd = -1;
    gh_fd_watch_t *watch = nullptr;
    bool connected = false;
    unsigned read_calls = 0;
    std::string answer;
};

void end_leg(WatchLeg *leg, bool ok) noexcept {
    if (leg->watch != nullptr)
        g_host->fd_watch_cancel(leg->watch); // from inside the callback: fn must not run again
    if (leg->fd >= 0)
        ::close(leg->fd);
    StreamState *st = leg->st;
    auto finish = leg->finish;
    delete leg;
    finish(st, ok);
}

void on_ready(void *arg, uint32_t events) noexcept {
    auto *leg = static_cast<WatchLeg *>(arg);
    StreamState *st = leg->st;
    st->check(g_host->current_worker() == st->worker, "fd_watch_worker");
    if (events == GH_FD_WRITE && !leg->connected) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(leg->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        st->check(err == 0, "fd_watch_connect");
        static const char kRequest[] = "GET /watch HTTP/1.0\r\nHost: watch\r\n\r\n";
        const bool sent = err == 0 && ::send(leg->fd, kRequest, sizeof kRequest - 1,
                                             MSG_NOSIGNAL) == sizeof kRequest - 1;
        st->check(sent, "fd_watch_send");
        leg->connected = true;
        const bool switched = sent && g_host->fd_watch_set(leg->watch, GH_FD_READ) == GH_OK;
        st->check(switched, "fd_watch_set");
        if (!switched)
            end_leg(leg, false);
        return;
    }
    if (events != GH_FD_READ) { // a write report after fd_watch_set(READ), or GH_FD_ERROR
        st->check(false, "fd_watch_events");
        return end_leg(leg, false);
    }
    ++leg->read_calls;
    char buf[16];
    const ssize_t n = ::recv(leg->fd, buf, sizeof buf, 0);
    if (n > 0) {
        leg->answer.append(buf, static_cast<size_t>(n));
        return; // the rest must be reported again
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    const bool ok = n == 0 && leg->answer.rfind("HTTP/1.", 0) == 0 &&
                    leg->answer.find(" 200 ") != std::string::npos &&
                    leg->answer.size() >= 8 &&
                    leg->answer.compare(leg->answer.size() - 8, 8, "watch-ok") == 0;
    st->check(ok, "fd_watch_answer");
    // 16 bytes per call: a full answer needs many calls, which only a level-triggered watch makes.
    st->check(leg->read_calls > leg->answer.size() / 16, "fd_watch_level_triggered");
    end_leg(leg, ok);
}

// What fd_watch must refuse: a negative fd, unknown condition bits, a regular file, a
// descriptor already watched on this worker.
void check_refusals(StreamState *st, gh_fd_watch_t *watch, int fd) noexcept {
    auto noop = [](void *, uint32_t) noexcept {};
    st->check(g_host->fd_watch(-1, GH_FD_READ, noop, nullptr) == nullptr, "fd_watch_bad_fd");
    st->check(g_host->fd_watch(fd, 0x80u, noop, nullptr) == nullptr, "fd_watch_bad_events");
    st->check(g_host->fd_watch(fd, GH_FD_READ, nullptr, nullptr) == nullptr, "fd_watch_null_fn");
    st->check(g_host->fd_watch(fd, GH_FD_READ, noop, nullptr) == nullptr, "fd_watch_twice");
    st->check(g_host->fd_watch_set(watch, 0x80u) == GH_ERR_INVALID, "fd_watch_set_bad");
    if (FILE *file = std::tmpfile()) {
        st->check(g_host->fd_watch(::fileno(file), GH_FD_READ, noop, nullptr) == nullptr,
                  "fd_watch_regular_file");
        std::fclose(file);
    }
}

} // namespace

void start_watch_leg(StreamState *st, void (*finish)(StreamState *, bool)) noexcept {
    auto *leg = new (std::nothrow) WatchLeg;
    if (leg == nullptr)
        return finish(st, false);
    leg->st = st;
    leg->finish = finish;
    leg->fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(st->config->watch_port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int r = leg->fd < 0 ? -1
                              : ::connect(leg->fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
    st->check(leg->fd >= 0 && (r == 0 || errno == EINPROGRESS), "fd_watch_socket");
    if (leg->fd < 0 || (r != 0 && errno != EINPROGRESS))
        return end_leg(leg, false);
    leg->watch = g_host->fd_watch(leg->fd, GH_FD_WRITE, &on_ready, leg);
    st->check(leg->watch != nullptr, "fd_watch");
    if (leg->watch == nullptr)
        return end_leg(leg, false);
    check_refusals(st, leg->watch, leg->fd);
}

} // namespace abi_conformance
