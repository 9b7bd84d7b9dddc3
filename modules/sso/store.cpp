// sso: redis-server as the session store, hiredis on the worker's loop (see store.hpp).
#include "store.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <memory>
#include <unordered_map>

namespace sso {

namespace {

// Stores a session and lists it under its index keys; the indexes live as long as the session.
constexpr const char *kPutScript =
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) "
    "for i = 2, #KEYS do redis.call('SADD', KEYS[i], ARGV[3]) "
    "redis.call('EXPIRE', KEYS[i], ARGV[2]) end return 1";
// Deletes every session an index lists, then the index.
constexpr const char *kRevokeScript =
    "local ids = redis.call('SMEMBERS', KEYS[1]) "
    "for _, id in ipairs(ids) do redis.call('DEL', ARGV[1] .. id) end "
    "redis.call('DEL', KEYS[1]) return #ids";

constexpr uint64_t kRetryAfterMs = 1000;

} // namespace

// One per worker and store: a hiredis context driven by a readiness watch.
struct RedisStore::Conn {
    redisAsyncContext *ac = nullptr;
    gh::FdWatch watch;
    uint32_t events = 0;
    uint64_t down_until = 0; // after a failure, answer "unavailable" at once until then

    void want(uint32_t add, uint32_t remove) {
        events = (events | add) & ~remove;
        if (!watch.active()) {
            if (ac == nullptr)
                return;
            redisAsyncContext *ctx = ac;
            watch = gh::FdWatch::start(ctx->c.fd, events, [this, ctx](uint32_t ev) {
                if (ev & GH_FD_READ)
                    redisAsyncHandleRead(ctx);
                else if (ev & GH_FD_WRITE)
                    redisAsyncHandleWrite(ctx);
                else
                    redisAsyncDisconnect(ctx); // GH_FD_ERROR
            });
        } else {
            watch.set(events);
        }
    }
    void failed() {
        down_until = gh::now_ms() + kRetryAfterMs;
        if (ac != nullptr) {
            redisAsyncContext *ctx = ac;
            ac = nullptr;
            redisAsyncFree(ctx); // pending callbacks run with a null reply; cleanup runs
        }
    }
    ~Conn() {
        if (ac != nullptr) {
            redisAsyncContext *ctx = ac;
            ac = nullptr;
            redisAsyncFree(ctx);
        }
    }
};

namespace {

thread_local std::unordered_map<const RedisStore *, std::unique_ptr<RedisStore::Conn>> t_conns;

// A command in flight: its completion runs once, from the reply or from the deadline.
struct Pending {
    std::function<void(bool, int, std::string, long long)> done;
    bool finished = false;
    gh::Timer timer;
};

void finish(const std::shared_ptr<Pending> &p, bool ok, int type, std::string str, long long n) {
    if (p->finished)
        return;
    p->finished = true;
    p->timer.cancel();
    auto done = std::move(p->done);
    done(ok, type, std::move(str), n);
}

} // namespace

RedisStore::Conn *RedisStore::conn() {
    auto &slot = t_conns[this];
    if (!slot)
        slot = std::make_unique<Conn>();
    Conn *c = slot.get();
    if (c->ac != nullptr || gh::now_ms() < c->down_until)
        return c;
    redisAsyncContext *ac = redisAsyncConnect(o_.host.c_str(), o_.port);
    if (ac == nullptr || ac->err) {
        gh::log_warn(gh::cat("sso store: cannot connect to redis ", o_.host, ":", o_.port, ": ",
                             ac ? ac->errstr : "out of memory"));
        if (ac)
            redisAsyncFree(ac);
        c->down_until = gh::now_ms() + kRetryAfterMs;
        return c;
    }
    c->ac = ac;
    ac->data = c;
    ac->ev.data = c;
    ac->ev.addRead = [](void *p) { static_cast<Conn *>(p)->want(GH_FD_READ, 0); };
    ac->ev.delRead = [](void *p) { static_cast<Conn *>(p)->want(0, GH_FD_READ); };
    ac->ev.addWrite = [](void *p) { static_cast<Conn *>(p)->want(GH_FD_WRITE, 0); };
    ac->ev.delWrite = [](void *p) { static_cast<Conn *>(p)->want(0, GH_FD_WRITE); };
    ac->ev.cleanup = [](void *p) {
        auto *c = static_cast<Conn *>(p);
        c->watch.cancel(); // the context is going: stop watching its descriptor
        c->events = 0;
    };
    redisAsyncSetConnectCallback(ac, [](const redisAsyncContext *ctx, int status) {
        if (status != REDIS_OK) {
            auto *c = static_cast<Conn *>(ctx->data);
            gh::log_warn(gh::cat("sso store: redis connection failed: ", ctx->errstr));
            c->ac = nullptr; // hiredis frees the context after this callback
            c->down_until = gh::now_ms() + kRetryAfterMs;
        }
    });
    redisAsyncSetDisconnectCallback(ac, [](const redisAsyncContext *ctx, int status) {
        auto *c = static_cast<Conn *>(ctx->data);
        if (c->ac == ctx) {
            c->ac = nullptr; // freed by hiredis after this callback
            if (status != REDIS_OK) {
                gh::log_warn(gh::cat("sso store: redis connection lost: ", ctx->errstr));
                c->down_until = gh::now_ms() + kRetryAfterMs;
            }
        }
    });
    return c;
}

void RedisStore::command(std::vector<std::string> argv,
                         std::function<void(bool, int, std::string, long long)> done) {
    auto p = std::make_shared<Pending>();
    p->done = std::move(done);
    Conn *c = conn();
    if (c->ac == nullptr) {
        gh::post(gh::current_worker(), [p] { finish(p, false, 0, {}, 0); });
        return;
    }
    std::vector<const char *> args;
    std::vector<size_t> lens;
    for (const std::string &a : argv) {
        args.push_back(a.data());
        lens.push_back(a.size());
    }
    auto *held = new std::shared_ptr<Pending>(p); // owned by hiredis until the callback
    const int rc = redisAsyncCommandArgv(
        c->ac,
        [](redisAsyncContext *, void *r, void *priv) {
            std::unique_ptr<std::shared_ptr<Pending>> held(static_cast<std::shared_ptr<Pending> *>(priv));
            auto *reply = static_cast<redisReply *>(r);
            if (reply == nullptr)
                return finish(*held, false, 0, {}, 0);
            finish(*held, reply->type != REDIS_REPLY_ERROR, reply->type,
                   reply->str ? std::string(reply->str, reply->len) : std::string(),
                   reply->integer);
        },
        held, static_cast<int>(args.size()), args.data(), lens.data());
    if (rc != REDIS_OK) {
        delete held;
        gh::post(gh::current_worker(), [p] { finish(p, false, 0, {}, 0); });
        return;
    }
    // The deadline: an unanswered command fails, and so does the connection (it is out of
    // step now); the next command connects again after the retry delay.
    const RedisStore *self = this;
    p->timer = gh::start_timer(o_.timeout_ms, [p, self] {
        p->timer.release();
        if (p->finished)
            return;
        gh::log_warn("sso store: redis did not answer in time");
        finish(p, false, 0, {}, 0);
        if (auto it = t_conns.find(self); it != t_conns.end())
            it->second->failed();
    });
}

void RedisStore::get(const std::string &id, Got done) {
    command({"GET", o_.prefix + "s:" + id},
            [done = std::move(done)](bool ok, int type, std::string str, long long) {
                if (!ok)
                    return done(false, std::nullopt);
                done(true, type == REDIS_REPLY_STRING ? std::optional<std::string>(std::move(str))
                                                      : std::nullopt);
            });
}

void RedisStore::put(const std::string &id, const std::string &value, int64_t ttl_s,
                     const std::vector<std::string> &indexes, Done done) {
    std::vector<std::string> argv = {"EVAL", kPutScript, std::to_string(1 + indexes.size()),
                                     o_.prefix + "s:" + id};
    for (const std::string &i : indexes)
        argv.push_back(o_.prefix + i);
    argv.push_back(value);
    argv.push_back(std::to_string(std::max<int64_t>(ttl_s, 1)));
    argv.push_back(id);
    command(std::move(argv),
            [done = std::move(done)](bool ok, int, std::string, long long) { done(ok); });
}

void RedisStore::remove(const std::string &id, Done done) {
    command({"DEL", o_.prefix + "s:" + id},
            [done = std::move(done)](bool ok, int, std::string, long long) { done(ok); });
}

void RedisStore::revoke(const std::string &index, Done done) {
    command({"EVAL", kRevokeScript, "1", o_.prefix + index, o_.prefix + "s:"},
            [done = std::move(done)](bool ok, int, std::string, long long) { done(ok); });
}

void RedisStore::try_lock(const std::string &key, uint64_t ttl_ms,
                          std::function<void(bool, bool)> done) {
    command({"SET", o_.prefix + key, "1", "NX", "PX", std::to_string(ttl_ms)},
            [done = std::move(done)](bool ok, int type, std::string str, long long) {
                done(ok, ok && type == REDIS_REPLY_STATUS && str == "OK");
            });
}

void RedisStore::close_worker() { t_conns.erase(this); }

} // namespace sso
