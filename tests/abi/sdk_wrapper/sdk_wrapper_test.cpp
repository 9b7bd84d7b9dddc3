// sdk.hpp: the descriptor GH_MODULE emits, the phase mask it derives, the noexcept trampolines,
// ConfigNode's readers and error accounting, metrics with labels, and the async helpers -- all
// against the installed test-support header's fake host (gatehouse/sdk/testing.hpp), which these
// tests exercise too.
#include <gatehouse/sdk.hpp>
#include <gatehouse/sdk/testing.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>

namespace {

struct TestConfig {
    std::string greeting = "hello";
    int64_t retries = 1;
    bool strict = false;
};

struct TestPool {
    uint32_t peers = 0;
};

bool g_throw = false;

// A module that is both a filter and a balancer, handling only some phases.
class TestModule : public gh::FilterBalancer<TestModule, TestConfig, TestPool> {
  public:
    TestModule() : requests_("test_requests_total", "requests", {"phase"}) {}

    std::unique_ptr<TestConfig> parse_config(gh::ConfigNode table, const TestConfig &base) {
        auto c = std::make_unique<TestConfig>(base);
        if (auto v = table.get("greeting").string())
            c->greeting = *v;
        if (auto v = table.get("retries").integer(0, 10))
            c->retries = *v;
        if (auto v = table.get("strict").boolean())
            c->strict = *v;
        if (table.get("explode").present())
            throw std::runtime_error("explode is not a real key");
        return c;
    }
    gh_action_t on_access(gh::Stream s, const TestConfig &c) {
        if (g_throw)
            throw std::runtime_error("access failed");
        requests_.inc({"access"});
        s.set_header(GH_HEADERS_REQUEST, "x-greeting", c.greeting);
        return GH_CONTINUE;
    }
    gh_action_t on_response_headers(gh::Stream, const TestConfig &) { return GH_CONTINUE; }
    int32_t on_request_body(gh::Stream, const gh::Chunk &chunk, const TestConfig &) {
        if (chunk.data == "boom")
            throw std::runtime_error("bad chunk");
        return chunk.last ? GH_BODY_CONSUMED : GH_BODY_PASS;
    }
    void on_stream_end(gh::Stream s, const TestConfig &) { s.take_ctx<int>(); }

    std::optional<uint32_t> select(TestPool &, gh::Pool, const gh::SelectContext &ctx) {
        if (g_throw)
            throw std::runtime_error("select failed");
        for (uint32_t i = 0; i < ctx.peer_count(); ++i)
            if (ctx.eligible(i))
                return i;
        return std::nullopt;
    }
    void report(TestPool &, gh::Pool, const gh_outcome_t &) {}

  private:
    gh::Counter requests_;
};

// A balancer without report, and a filter without body hooks, for the descriptor shape.
class PlainBalancer : public gh::Balancer<PlainBalancer> {
  public:
    std::optional<uint32_t> select(gh::NoPoolState &, gh::Pool, const gh::SelectContext &) {
        return 0u;
    }
};
class HeaderFilter : public gh::Filter<HeaderFilter> {
  public:
    static constexpr uint32_t response_body_class = GH_BODY_CLASS_OBSERVE;
    void on_log(gh::Stream, const gh::NoConfig &) {}
};

} // namespace

GH_MODULE(TestModule, "test_module", "1.2.3", "sdk wrapper test module")

namespace {

using gh::testing::Value;

class SdkWrapper : public ::testing::Test {
  protected:
    void SetUp() override {
        g_throw = false;
        module_ = &mod_.descriptor();
        state_ = nullptr; // the wrapper keeps no per-load state
        ASSERT_TRUE(mod_.loaded());
    }

    void *parse(const Value &table) {
        void *config = nullptr;
        return module_->config_parse(state_, table.handle(), &config) == GH_OK ? config : nullptr;
    }
    const std::vector<std::string> &errors() { return host_.config_errors; }

    gh::testing::FakeHost host_;
    gh::testing::Loaded mod_{gatehouse_module_v1};
    const gh_module_v1 *module_ = nullptr;
    void *state_ = nullptr;
};

TEST_F(SdkWrapper, DescriptorCarriesTheAbiVersionAndKinds) {
    EXPECT_EQ(module_->struct_size, sizeof(gh_module_v1));
    EXPECT_EQ(module_->abi_major, GH_ABI_MAJOR);
    EXPECT_EQ(module_->abi_minor, GH_ABI_MINOR);
    EXPECT_EQ(module_->kinds, GH_KIND_FILTER | GH_KIND_BALANCER);
    EXPECT_STREQ(module_->name, "test_module");
    EXPECT_STREQ(module_->version, "1.2.3");
    ASSERT_NE(module_->filter, nullptr);
    ASSERT_NE(module_->balancer, nullptr);
    EXPECT_EQ(module_->filter->struct_size, sizeof(gh_filter_v1));
    EXPECT_EQ(module_->balancer->struct_size, sizeof(gh_balancer_v1));
    EXPECT_NE(module_->balancer->report, nullptr);
    EXPECT_EQ(gh::Host::kernel_version(), "0.0.0-test");
}

TEST_F(SdkWrapper, PhaseMaskHasExactlyTheHooksTheModuleDefines) {
    EXPECT_EQ(module_->filter->phases,
              GH_PHASE_BIT(GH_PHASE_ACCESS) | GH_PHASE_BIT(GH_PHASE_RESPONSE_HEADERS) |
                  GH_PHASE_BIT(GH_PHASE_REQUEST_BODY) | GH_PHASE_BIT(GH_PHASE_STREAM_END));
    EXPECT_NE(module_->filter->on_body, nullptr);

    constexpr gh_module_v1 header_filter =
        gh::detail::Trampolines<HeaderFilter>::describe("h", "1", "d");
    EXPECT_EQ(header_filter.filter->phases, GH_PHASE_BIT(GH_PHASE_LOG));
    EXPECT_EQ(header_filter.filter->on_body, nullptr);
    EXPECT_EQ(header_filter.filter->response_body_class, GH_BODY_CLASS_OBSERVE);
    EXPECT_EQ(header_filter.balancer, nullptr);
    EXPECT_NE(header_filter.route_config_parse, nullptr);
}

TEST_F(SdkWrapper, BalancerWithoutReportLeavesTheHookNull) {
    constexpr gh_module_v1 plain = gh::detail::Trampolines<PlainBalancer>::describe("p", "1", "d");
    EXPECT_EQ(plain.kinds, GH_KIND_BALANCER);
    EXPECT_EQ(plain.filter, nullptr);
    EXPECT_EQ(plain.route_config_parse, nullptr);
    ASSERT_NE(plain.balancer, nullptr);
    EXPECT_EQ(plain.balancer->report, nullptr);
    EXPECT_NE(plain.balancer->select, nullptr);
}

TEST_F(SdkWrapper, LoadRegistersMetricsInTheConstructor) {
    EXPECT_EQ(host_.metrics, std::vector<std::string>{"test_requests_total"});
    EXPECT_EQ(gh::Host::self(), mod_.self());
}

TEST_F(SdkWrapper, ConfigReadsTypedValuesAndMarksKeysKnown) {
    Value table = Value::table({{"greeting", "hi"}, {"retries", 3}, {"strict", true}});
    auto config = mod_.parse(table); // the fake then reports keys never read, like the kernel
    ASSERT_TRUE(config.ok()) << host_.config_errors_text();
    const auto &c = config.as<TestConfig>();
    EXPECT_EQ(c.greeting, "hi");
    EXPECT_EQ(c.retries, 3);
    EXPECT_TRUE(c.strict);
    EXPECT_TRUE(errors().empty());
}

TEST_F(SdkWrapper, EmptyTableGivesTheDefaults) {
    auto config = mod_.parse(Value::table());
    ASSERT_TRUE(config.ok());
    EXPECT_EQ(config.as<TestConfig>().greeting, "hello");
}

TEST_F(SdkWrapper, WrongTypeRefusesTheConfigEvenIfTheModuleReturnedOne) {
    Value table = Value::table({{"retries", "three"}});
    EXPECT_EQ(parse(table), nullptr);
    EXPECT_EQ(errors(), std::vector<std::string>{"retries: must be an integer"});
}

TEST_F(SdkWrapper, OutOfRangeIntegerIsAnErrorWithTheRange) {
    Value table = Value::table({{"retries", 11}});
    EXPECT_EQ(parse(table), nullptr);
    EXPECT_EQ(errors(), std::vector<std::string>{"retries: must be between 0 and 10, got 11"});
}

TEST_F(SdkWrapper, ExceptionWhileParsingBecomesAConfigError) {
    Value table = Value::table({{"explode", true}});
    EXPECT_EQ(parse(table), nullptr);
    EXPECT_EQ(errors(), std::vector<std::string>{"explode is not a real key"});
}

TEST_F(SdkWrapper, RouteConfigWithoutTableCopiesTheModuleConfig) {
    auto config = mod_.parse(Value::table({{"greeting", "module"}}));
    ASSERT_TRUE(config.ok());
    auto route = mod_.route(config, nullptr);
    ASSERT_TRUE(route.ok());
    EXPECT_EQ(route.as<TestConfig>().greeting, "module");
    Value override_table = Value::table({{"retries", 7}});
    auto route2 = mod_.route(config, &override_table);
    ASSERT_TRUE(route2.ok());
    EXPECT_EQ(route2.as<TestConfig>().greeting, "module"); // merged over the module's
    EXPECT_EQ(route2.as<TestConfig>().retries, 7);
}

TEST_F(SdkWrapper, MissingKeyErrorNamesTheKey) {
    Value table = Value::table();
    gh::ConfigNode(table.handle()).get("needed").error("is required");
    EXPECT_EQ(errors(), std::vector<std::string>{"missing key `needed`: is required"});
}

TEST_F(SdkWrapper, OneOfListsTheAllowedValues) {
    Value table = Value::table({{"mode", "fast"}});
    EXPECT_FALSE(gh::ConfigNode(table.handle()).get("mode").one_of({"gzip", "br"}));
    EXPECT_EQ(errors(),
              std::vector<std::string>{"mode: must be one of \"gzip\", \"br\", got \"fast\""});
}

TEST_F(SdkWrapper, PhaseHookRunsWithTheRouteConfigAndRecordsLabelledMetrics) {
    auto config = mod_.parse(Value::table({{"greeting", "route"}}));
    gh::testing::FakeStream s;
    EXPECT_EQ(mod_.phase(s, GH_PHASE_ACCESS, config), GH_CONTINUE);
    EXPECT_EQ(s.header(GH_HEADERS_REQUEST, "X-Greeting"), "route");
    ASSERT_EQ(host_.records.size(), 1u);
    EXPECT_EQ(host_.records[0].name, "test_requests_total");
    EXPECT_EQ(host_.records[0].labels, std::vector<std::string>{"access"});
    EXPECT_EQ(host_.metric("test_requests_total", {"access"}), 1);
}

TEST_F(SdkWrapper, ThrowingPhaseHookBecomesErrorAndIsLogged) {
    TestConfig c;
    g_throw = true;
    EXPECT_EQ(module_->filter->on_phase(nullptr, GH_PHASE_ACCESS, &c), GH_ERROR);
    ASSERT_FALSE(host_.logs.empty());
    EXPECT_NE(host_.logs.back().find("access failed"), std::string::npos);
    EXPECT_EQ(host_.logs.back().rfind("ERROR ", 0), 0u);
}

TEST_F(SdkWrapper, UnhandledPhaseContinuesAndMissingConfigIsAnError) {
    TestConfig c;
    EXPECT_EQ(module_->filter->on_phase(nullptr, GH_PHASE_PRE_UPSTREAM, &c), GH_CONTINUE);
    EXPECT_EQ(module_->filter->on_phase(nullptr, GH_PHASE_ACCESS, nullptr), GH_ERROR);
}

TEST_F(SdkWrapper, BodyHookSeesTheChunkAndAThrowAborts) {
    TestConfig c;
    const std::string data = "abc", boom = "boom";
    gh_body_chunk_t chunk{sizeof(gh_body_chunk_t), GH_CHUNK_LAST, gh::bytes(data)};
    EXPECT_EQ(module_->filter->on_body(nullptr, GH_DIR_REQUEST, &chunk, &c), GH_BODY_CONSUMED);
    chunk.flags = 0;
    EXPECT_EQ(module_->filter->on_body(nullptr, GH_DIR_REQUEST, &chunk, &c), GH_BODY_PASS);
    chunk.data = gh::bytes(boom);
    EXPECT_EQ(module_->filter->on_body(nullptr, GH_DIR_REQUEST, &chunk, &c), GH_BODY_ABORT);
}

TEST_F(SdkWrapper, SelectMapsNoPeerToNotFoundAndAThrowToInternal) {
    TestPool pool;
    uint8_t eligible[] = {0, 1};
    gh_select_ctx_t ctx{sizeof(gh_select_ctx_t), 0, 2, 0, eligible, nullptr};
    uint32_t peer = 99;
    EXPECT_EQ(module_->balancer->select(&pool, nullptr, &ctx, &peer), GH_OK);
    EXPECT_EQ(peer, 1u);
    eligible[1] = 0;
    EXPECT_EQ(module_->balancer->select(&pool, nullptr, &ctx, &peer), GH_ERR_NOT_FOUND);
    g_throw = true;
    EXPECT_EQ(module_->balancer->select(&pool, nullptr, &ctx, &peer), GH_ERR_INTERNAL);
}

TEST_F(SdkWrapper, StreamContextIsStoredPerModuleAndTakenBack) {
    gh::testing::FakeStream s;
    gh::Stream stream = s.stream();
    stream.emplace_ctx<int>(5);
    ASSERT_NE(stream.ctx<int>(), nullptr);
    EXPECT_EQ(*stream.ctx<int>(), 5);
    TestConfig c;
    module_->filter->on_phase(s.handle(), GH_PHASE_STREAM_END, &c); // takes and frees it
    EXPECT_EQ(stream.ctx<int>(), nullptr);
}

TEST_F(SdkWrapper, HostHasChecksStructSizeAndNullPointers) {
    EXPECT_TRUE(gh::host_has(&gh_host_api_v1::post));
    EXPECT_TRUE(GH_HAS(log_field));
    gh_host_api_v1 older = *host_.table();
    older.pool_name = [](const gh_pool_t *) { return gh_str_t{"p", 1}; };
    EXPECT_TRUE(gh::host_has(&gh_host_api_v1::pool_name, &older));
    older.struct_size = offsetof(gh_host_api_v1, pool_size); // a kernel without the pool block
    EXPECT_FALSE(gh::host_has(&gh_host_api_v1::pool_name, &older));
    EXPECT_TRUE(gh::host_has(&gh_host_api_v1::log, &older));
    older.log = nullptr;
    EXPECT_FALSE(gh::host_has(&gh_host_api_v1::log, &older));
    EXPECT_TRUE(gh::host_has(&gh_host_api_v1::kernel_version, &older));
    EXPECT_FALSE(gh::host_has(&gh_host_api_v1::log, nullptr));
}

TEST_F(SdkWrapper, PostAndTimerRunTheCallableOnceAndCancelDropsIt) {
    int ran = 0;
    EXPECT_EQ(gh::post(nullptr, [&ran] { ++ran; }), GH_ERR_INVALID); // no worker
    ASSERT_EQ(gh::post(gh::current_worker(), [&ran] { ++ran; }), GH_OK);
    gh::Timer keep = gh::start_timer(10, [&ran] { ran += 10; });
    EXPECT_TRUE(keep.started());
    host_.run_queued();
    EXPECT_EQ(ran, 11);
    keep.release();
    auto counted = std::make_shared<int>(0);
    gh::Timer cancelled = gh::start_timer(10, [counted] { ++*counted; });
    EXPECT_EQ(counted.use_count(), 2);
    cancelled.cancel();
    EXPECT_EQ(counted.use_count(), 1); // the callable was destroyed without running
    host_.run_queued();
    EXPECT_EQ(*counted, 0);
}

TEST_F(SdkWrapper, ThrowingAsyncCallableIsLoggedNotPropagated) {
    ASSERT_EQ(gh::post(gh::current_worker(), [] { throw std::runtime_error("task failed"); }),
              GH_OK);
    host_.run_queued();
    ASSERT_FALSE(host_.logs.empty());
    EXPECT_NE(host_.logs.back().find("task failed"), std::string::npos);
}

TEST_F(SdkWrapper, UnknownKeysAreReportedLikeTheKernelDoes) {
    auto config = mod_.parse(Value::table({{"greeting", "hi"}, {"greting", "typo"}}));
    EXPECT_FALSE(config.ok());
    EXPECT_EQ(errors(), std::vector<std::string>{"greting: unknown key"});
}

TEST_F(SdkWrapper, FdWatchReportsUntilCancelledEvenFromItsOwnCallback) {
    std::vector<uint32_t> seen;
    gh::FdWatch watch;
    watch = gh::FdWatch::start(7, GH_FD_READ, [&](uint32_t ev) {
        seen.push_back(ev);
        if (seen.size() == 2)
            watch.cancel(); // from inside: the callable lives until it returns
    });
    ASSERT_TRUE(watch.active());
    EXPECT_FALSE(gh::FdWatch::start(7, GH_FD_READ, [](uint32_t) {}).active()); // watched already
    host_.fire_fd(7, GH_FD_WRITE); // not watched
    EXPECT_TRUE(seen.empty());
    EXPECT_EQ(watch.set(GH_FD_READ | GH_FD_WRITE), GH_OK);
    host_.fire_fd(7, GH_FD_WRITE);
    host_.fire_fd(7, GH_FD_READ);
    host_.fire_fd(7, GH_FD_READ); // cancelled by now
    EXPECT_EQ(seen, (std::vector<uint32_t>{GH_FD_WRITE, GH_FD_READ}));
    EXPECT_FALSE(watch.active());
    EXPECT_EQ(host_.watch_of(7), nullptr);
    EXPECT_EQ(watch.set(GH_FD_READ), GH_ERR_STATE);
}

TEST_F(SdkWrapper, FdWatchOnAnOlderKernelIsInactiveAndLogFieldUnsupported) {
    host_.truncate_after(&gh_host_api_v1::reply_drained); // a 1.2 kernel
    EXPECT_FALSE(gh::FdWatch::start(3, GH_FD_READ, [](uint32_t) {}).active());
    gh::testing::FakeStream s;
    EXPECT_EQ(s.stream().log_field("rule", "1"), GH_ERR_UNSUPPORTED);
}

TEST_F(SdkWrapper, LogFieldsAreValidatedAndReplaced) {
    gh::testing::FakeStream s;
    EXPECT_EQ(s.stream().log_field("rule", "1"), GH_OK);
    EXPECT_EQ(s.stream().log_field("rule", "2"), GH_OK);
    EXPECT_EQ(s.stream().log_field("Rule", "x"), GH_ERR_INVALID);
    EXPECT_EQ(s.log_fields, (gh::testing::FakeStream::Fields{{"rule", "2"}}));
}

TEST_F(SdkWrapper, CalloutsWaitForTheTestToCompleteThem) {
    int status = 0;
    std::string body;
    gh::CalloutRequest req;
    req.upstream = "idp";
    req.target = "/jwks";
    ASSERT_EQ(gh::callout(req, [&](const gh::CalloutResponse &r) {
                  status = r.status();
                  body = std::string(r.body());
              }),
              GH_OK);
    ASSERT_EQ(host_.callouts.size(), 1u);
    EXPECT_EQ(host_.callouts[0].target, "/jwks");
    EXPECT_EQ(status, 0);
    host_.complete_callout(200, "{}");
    EXPECT_EQ(status, 200);
    EXPECT_EQ(body, "{}");
}

TEST_F(SdkWrapper, CatConcatenatesStringsNumbersAndBooleans) {
    EXPECT_EQ(gh::cat("a", 1, ' ', true, std::string_view("z"), std::string("s"), 2u), "a1 truezs2");
}

} // namespace
