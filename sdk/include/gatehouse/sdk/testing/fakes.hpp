/*
 * gatehouse SDK, test support -- what a module's hooks are handed: config values, streams, pools.
 * Part of <gatehouse/sdk/testing.hpp> (include that one); see it for the whole picture.
 */
#ifndef GATEHOUSE_SDK_TESTING_FAKES_HPP
#define GATEHOUSE_SDK_TESTING_FAKES_HPP

#include "gatehouse/sdk.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>


namespace gh::testing {

/* ---- config values ------------------------------------------------------------------------ */

/* A TOML value as the kernel would hand it to config hooks. Build tables and arrays with
 * Value::table / Value::array; scalars convert implicitly ("text", 5, 2.5, true). */
class Value {
  public:
    Value() = default;
    Value(const char *s) : type_(GH_CFG_STRING), text_(s) {}
    Value(std::string s) : type_(GH_CFG_STRING), text_(std::move(s)) {}
    Value(int v) : type_(GH_CFG_INT), integer_(v) {}
    Value(int64_t v) : type_(GH_CFG_INT), integer_(v) {}
    Value(double v) : type_(GH_CFG_FLOAT), number_(v) {}
    Value(bool v) : type_(GH_CFG_BOOL), boolean_(v) {}

    static Value table(std::vector<std::pair<std::string, Value>> entries = {}) {
        Value v;
        v.type_ = GH_CFG_TABLE;
        v.children_ = std::move(entries);
        return v;
    }
    static Value array(std::vector<Value> items = {}) {
        Value v;
        v.type_ = GH_CFG_ARRAY;
        for (Value &i : items)
            v.children_.emplace_back("", std::move(i));
        return v;
    }

    /* The C handle for config hooks; valid while this Value lives and is not modified. */
    const gh_config_node_t *handle() const noexcept {
        return reinterpret_cast<const gh_config_node_t *>(this);
    }
    static const Value &of(const gh_config_node_t *n) noexcept {
        return *reinterpret_cast<const Value *>(n);
    }

    uint32_t type() const noexcept { return type_; }
    const std::string &text() const noexcept { return text_; }
    int64_t integer() const noexcept { return integer_; }
    double number() const noexcept { return number_; }
    bool boolean() const noexcept { return boolean_; }
    const std::vector<std::pair<std::string, Value>> &children() const noexcept { return children_; }

  private:
    uint32_t type_ = GH_CFG_NONE;
    std::string text_;
    int64_t integer_ = 0;
    double number_ = 0;
    bool boolean_ = false;
    std::vector<std::pair<std::string, Value>> children_; // tables (key) and arrays ("")
};

/* ---- streams ------------------------------------------------------------------------------ */

/* One request/response exchange as a module sees it. Fill facts and headers, pass it to a hook
 * (Loaded::phase / body), then read what the module did. */
class FakeStream {
  public:
    using Fields = std::vector<std::pair<std::string, std::string>>;
    struct Reply {
        uint32_t status = 0;
        Fields headers;
        std::string body;
        bool streamed = false;
        uint64_t length = GH_LENGTH_UNKNOWN;
        bool ended = false; // a streamed body got GH_CHUNK_LAST (or ABORT: aborted)
        bool aborted = false;
    };

    FakeStream() {
        facts_[GH_FACT_METHOD] = "GET";
        facts_[GH_FACT_TARGET] = "/";
        facts_[GH_FACT_PATH] = "/";
        facts_[GH_FACT_HOST] = "example.test";
        facts_[GH_FACT_SCHEME] = "http";
        facts_[GH_FACT_CLIENT_ADDR] = "192.0.2.1:40000";
        facts_[GH_FACT_VERSION] = "HTTP/1.1";
    }
    gh_stream_t *handle() noexcept { return reinterpret_cast<gh_stream_t *>(this); }
    static FakeStream &of(gh_stream_t *s) noexcept { return *reinterpret_cast<FakeStream *>(s); }
    /* A gh::Stream over this fake, for calling module code that takes one. */
    gh::Stream stream() noexcept { return gh::Stream(handle()); }

    void set_fact(uint32_t fact, std::string value) { facts_[fact] = std::move(value); }
    const std::string *fact(uint32_t fact) const {
        auto it = facts_.find(fact);
        return it == facts_.end() ? nullptr : &it->second;
    }
    void add_header(uint32_t which, std::string name, std::string value) {
        block(which).emplace_back(std::move(name), std::move(value));
    }
    /* The first value of `name` (ASCII case-insensitive), or nullopt. */
    std::optional<std::string> header(uint32_t which, std::string_view name) const {
        for (const auto &[n, v] : block(which))
            if (gh::http::iequals(n, name))
                return v;
        return std::nullopt;
    }
    Fields &block(uint32_t which) { return headers_[which < 2 ? which : 0]; }
    const Fields &block(uint32_t which) const { return headers_[which < 2 ? which : 0]; }

    uint32_t status = 0;                 // the upstream's (response_status without a reply)
    std::optional<Reply> reply;          // respond / respond_stream
    Fields log_fields;                   // log_field, as "name" (without the module prefix)
    std::optional<gh_action_t> resumed;  // the last stream_resume
    std::set<std::pair<uint32_t, uint32_t>> subscriptions; // {direction, mode}
    std::string held[2];                 // what body_held shows, per direction
    std::string written[2];              // body_write output, per direction
    std::map<gh_module_t *, void *> ctx; // stream_ctx slots

  private:
    std::map<uint32_t, std::string> facts_;
    Fields headers_[2];
};

/* ---- pools (balancers) -------------------------------------------------------------------------- */

/* An upstream pool as a balancer sees it: peers with weight, max_inflight, backup, the current
 * in-flight count and an address. Change `peers` between select calls to simulate load. */
struct FakePool {
    struct Peer {
        uint32_t weight = 1;
        uint64_t inflight = 0;
        uint32_t max_inflight = 0;
        bool backup = false;
        std::string address = "127.0.0.1:8080";
    };
    std::string name = "app";
    std::vector<Peer> peers;

    const gh_pool_t *handle() const noexcept { return reinterpret_cast<const gh_pool_t *>(this); }
    static const FakePool &of(const gh_pool_t *p) noexcept {
        return *reinterpret_cast<const FakePool *>(p);
    }
    gh::Pool pool() const noexcept { return gh::Pool(handle()); }
};

/* The arguments of one select call: every peer eligible unless `eligible` says otherwise. */
class FakeSelect {
  public:
    explicit FakeSelect(std::size_t peers, std::vector<uint8_t> eligible = {},
                        uint32_t attempt = 0)
        : eligible_(eligible.empty() ? std::vector<uint8_t>(peers, 1) : std::move(eligible)) {
        ctx_.struct_size = sizeof ctx_;
        ctx_.attempt = attempt;
        ctx_.peer_count = static_cast<uint32_t>(eligible_.size());
        ctx_.eligible = eligible_.data();
    }
    const gh_select_ctx_t &raw() const noexcept { return ctx_; }
    gh::SelectContext context() const noexcept { return gh::SelectContext(ctx_); }

  private:
    std::vector<uint8_t> eligible_;
    gh_select_ctx_t ctx_{};
};

} // namespace gh::testing

#endif // GATEHOUSE_SDK_TESTING_FAKES_HPP
