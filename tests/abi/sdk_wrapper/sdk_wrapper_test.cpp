// sdk.hpp: the descriptor GH_MODULE emits, the phase mask it derives, the noexcept trampolines,
// ConfigNode's readers and error accounting, metrics with labels, and the async helpers.
#include "fake_host.hpp"

#include <gatehouse/sdk.hpp>

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

class SdkWrapper : public ::testing::Test {
  protected:
    void SetUp() override {
        host_ = fake::make_host();
        g_throw = false;
        module_ = gatehouse_module_v1(&host_);
        ASSERT_EQ(module_->load(reinterpret_cast<gh_module_t *>(&self_), &state_), GH_OK);
    }
    void TearDown() override { module_->destroy(state_); }

    void *parse(const fake::Node &table) {
        void *config = nullptr;
        return module_->config_parse(state_, table.handle(), &config) == GH_OK ? config : nullptr;
    }

    gh_host_api_v1 host_{};
    const gh_module_v1 *module_ = nullptr;
    void *state_ = nullptr;
    int self_ = 0;
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
    EXPECT_EQ(gh::Host::kernel_version(), "9.9.9");
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
    EXPECT_EQ(fake::recorder().metrics_registered, std::vector<std::string>{"test_requests_total"});
    EXPECT_EQ(gh::Host::self(), reinterpret_cast<gh_module_t *>(&self_));
}

TEST_F(SdkWrapper, ConfigReadsTypedValuesAndMarksKeysKnown) {
    fake::Node table = fake::Node::table({{"greeting", fake::Node::string("hi")},
                                          {"retries", fake::Node::integer_node(3)},
                                          {"strict", fake::Node::boolean_node(true)}});
    void *config = parse(table);
    ASSERT_NE(config, nullptr);
    auto *c = static_cast<TestConfig *>(config);
    EXPECT_EQ(c->greeting, "hi");
    EXPECT_EQ(c->retries, 3);
    EXPECT_TRUE(c->strict);
    const auto &keys = fake::recorder().keys_read;
    for (const char *k : {"greeting", "retries", "strict"})
        EXPECT_NE(std::find(keys.begin(), keys.end(), k), keys.end()) << k;
    EXPECT_TRUE(fake::recorder().config_errors.empty());
    module_->config_free(state_, config);
}

TEST_F(SdkWrapper, EmptyTableGivesTheDefaults) {
    fake::Node table = fake::Node::table({});
    void *config = parse(table);
    ASSERT_NE(config, nullptr);
    EXPECT_EQ(static_cast<TestConfig *>(config)->greeting, "hello");
    module_->config_free(state_, config);
}

TEST_F(SdkWrapper, WrongTypeRefusesTheConfigEvenIfTheModuleReturnedOne) {
    fake::Node table = fake::Node::table({{"retries", fake::Node::string("three")}});
    EXPECT_EQ(parse(table), nullptr);
    EXPECT_EQ(fake::recorder().config_errors, std::vector<std::string>{"wrong type"});
}

TEST_F(SdkWrapper, OutOfRangeIntegerIsAnErrorWithTheRange) {
    fake::Node table = fake::Node::table({{"retries", fake::Node::integer_node(11)}});
    EXPECT_EQ(parse(table), nullptr);
    ASSERT_EQ(fake::recorder().config_errors.size(), 1u);
    EXPECT_EQ(fake::recorder().config_errors[0], "must be between 0 and 10, got 11");
}

TEST_F(SdkWrapper, ExceptionWhileParsingBecomesAConfigError) {
    fake::Node table = fake::Node::table({{"explode", fake::Node::boolean_node(true)}});
    EXPECT_EQ(parse(table), nullptr);
    EXPECT_EQ(fake::recorder().config_errors,
              std::vector<std::string>{"explode is not a real key"});
}

TEST_F(SdkWrapper, RouteConfigWithoutTableCopiesTheModuleConfig) {
    fake::Node table = fake::Node::table({{"greeting", fake::Node::string("module")}});
    void *config = parse(table);
    ASSERT_NE(config, nullptr);
    void *route = nullptr;
    ASSERT_EQ(module_->route_config_parse(state_, config, nullptr, &route), GH_OK);
    EXPECT_EQ(static_cast<TestConfig *>(route)->greeting, "module");
    fake::Node override_table = fake::Node::table({{"retries", fake::Node::integer_node(7)}});
    void *route2 = nullptr;
    ASSERT_EQ(module_->route_config_parse(state_, config, override_table.handle(), &route2), GH_OK);
    EXPECT_EQ(static_cast<TestConfig *>(route2)->greeting, "module"); // merged over the module's
    EXPECT_EQ(static_cast<TestConfig *>(route2)->retries, 7);
    module_->route_config_free(state_, route);
    module_->route_config_free(state_, route2);
    module_->config_free(state_, config);
}

TEST_F(SdkWrapper, MissingKeyErrorNamesTheKey) {
    fake::Node table = fake::Node::table({});
    gh::ConfigNode(table.handle()).get("needed").error("is required");
    EXPECT_EQ(fake::recorder().config_errors,
              std::vector<std::string>{"missing key `needed`: is required"});
}

TEST_F(SdkWrapper, OneOfListsTheAllowedValues) {
    fake::Node table = fake::Node::table({{"mode", fake::Node::string("fast")}});
    EXPECT_FALSE(gh::ConfigNode(table.handle()).get("mode").one_of({"gzip", "br"}));
    EXPECT_EQ(fake::recorder().config_errors,
              std::vector<std::string>{"must be one of \"gzip\", \"br\", got \"fast\""});
}

TEST_F(SdkWrapper, PhaseHookRunsWithTheRouteConfigAndRecordsLabelledMetrics) {
    TestConfig c;
    c.greeting = "route";
    auto *s = reinterpret_cast<gh_stream_t *>(0x10);
    EXPECT_EQ(module_->filter->on_phase(s, GH_PHASE_ACCESS, &c), GH_CONTINUE);
    EXPECT_EQ(fake::recorder().request_headers["x-greeting"], "route");
    ASSERT_EQ(fake::recorder().metric_records.size(), 1u);
    EXPECT_EQ(fake::recorder().metric_records[0].first, "test_requests_total{access}");
}

TEST_F(SdkWrapper, ThrowingPhaseHookBecomesErrorAndIsLogged) {
    TestConfig c;
    g_throw = true;
    EXPECT_EQ(module_->filter->on_phase(nullptr, GH_PHASE_ACCESS, &c), GH_ERROR);
    ASSERT_FALSE(fake::recorder().logs.empty());
    EXPECT_NE(fake::recorder().logs.back().find("access failed"), std::string::npos);
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
    auto *s = reinterpret_cast<gh_stream_t *>(0x20);
    gh::Stream stream(s);
    stream.emplace_ctx<int>(5);
    ASSERT_NE(stream.ctx<int>(), nullptr);
    EXPECT_EQ(*stream.ctx<int>(), 5);
    TestConfig c;
    module_->filter->on_phase(s, GH_PHASE_STREAM_END, &c); // takes and frees it
    EXPECT_EQ(stream.ctx<int>(), nullptr);
}

TEST_F(SdkWrapper, HostHasChecksStructSizeAndNullPointers) {
    EXPECT_TRUE(gh::host_has(&gh_host_api_v1::post));
    EXPECT_FALSE(GH_HAS(callout)); // the fake host leaves it NULL
    gh_host_api_v1 older = host_;
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
    ASSERT_EQ(gh::post(nullptr, [&ran] { ++ran; }), GH_OK);
    gh::Timer keep = gh::start_timer(10, [&ran] { ran += 10; });
    EXPECT_TRUE(keep.started());
    fake::run_queued();
    EXPECT_EQ(ran, 11);
    keep.release();
    auto counted = std::make_shared<int>(0);
    gh::Timer cancelled = gh::start_timer(10, [counted] { ++*counted; });
    EXPECT_EQ(counted.use_count(), 2);
    cancelled.cancel();
    EXPECT_EQ(counted.use_count(), 1); // the callable was destroyed without running
    fake::run_queued();
    EXPECT_EQ(*counted, 0);
}

TEST_F(SdkWrapper, ThrowingAsyncCallableIsLoggedNotPropagated) {
    ASSERT_EQ(gh::post(nullptr, [] { throw std::runtime_error("task failed"); }), GH_OK);
    fake::run_queued();
    ASSERT_FALSE(fake::recorder().logs.empty());
    EXPECT_NE(fake::recorder().logs.back().find("task failed"), std::string::npos);
}

TEST_F(SdkWrapper, CatConcatenatesStringsNumbersAndBooleans) {
    EXPECT_EQ(gh::cat("a", 1, ' ', true, std::string_view("z"), std::string("s"), 2u), "a1 truezs2");
}

} // namespace
