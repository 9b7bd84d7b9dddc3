// Active health: the [upstream.NAME.health] reader, rise/fall counting, and which servers the
// pool offers its balancer when some are unhealthy (backup tier, panic threshold).
#include "config/config.hpp"
#include "config/table_reader.hpp"
#include "modules/loader.hpp"
#include "upstream/health_checker.hpp"
#include "upstream/pool.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <thread>

using namespace gatehouse;
using config::Diagnostics;
using config::HealthCheckConfig;
using config::UpstreamConfig;

namespace {

// ---- config --------------------------------------------------------------------------------

std::string config_with(const std::string& upstream_extra) {
    return R"(
[modules]
load = ["round_robin"]
[[listener]]
listen = "127.0.0.1:0"
[upstream.app]
servers = [{ address = "127.0.0.1:9001" }]
)" + upstream_extra + R"(
[[route]]
upstream = "app"
)";
}

struct Parsed {
    std::unique_ptr<config::Config> config;
    std::vector<std::string> errors;
    const UpstreamConfig& app() const { return config->upstreams.at("app"); }
};

Parsed parse(const std::string& text) {
    Diagnostics diag("test.toml");
    Parsed out;
    out.config = config::parse_config(text, "test.toml", diag);
    for (const auto& e : diag.errors())
        out.errors.push_back(e.to_string());
    return out;
}

std::string first_error(const std::string& upstream_extra) {
    auto p = parse(config_with(upstream_extra));
    return p.errors.empty() ? "" : p.errors[0];
}

TEST(HealthConfig, AbsentTableMeansNoActiveChecks) {
    auto p = parse(config_with(""));
    ASSERT_TRUE(p.errors.empty()) << p.errors[0];
    EXPECT_FALSE(p.app().health.enabled);
    EXPECT_EQ(p.app().panic_threshold, 0u);
}

TEST(HealthConfig, EmptyTableEnablesChecksWithTheDocumentedDefaults) {
    auto p = parse(config_with("[upstream.app.health]\n"));
    ASSERT_TRUE(p.errors.empty()) << p.errors[0];
    const HealthCheckConfig& h = p.app().health;
    EXPECT_TRUE(h.enabled);
    EXPECT_EQ(h.path, "/");
    EXPECT_EQ(h.host, "");
    EXPECT_EQ(h.interval.count(), 5000);
    EXPECT_EQ(h.jitter.count(), 500);
    EXPECT_EQ(h.timeout.count(), 2000);
    EXPECT_EQ(h.expect_min, 200u);
    EXPECT_EQ(h.expect_max, 399u);
    EXPECT_EQ(h.rise, 2u);
    EXPECT_EQ(h.fall, 3u);
}

TEST(HealthConfig, EveryKeyIsRead) {
    auto p = parse(config_with(R"(panic_threshold = 50
[upstream.app.health]
path = "/healthz?full=1"
host = "app.internal"
interval = "200ms"
jitter = 0
timeout = "1s"
expect = "204"
rise = 4
fall = 1
)"));
    ASSERT_TRUE(p.errors.empty()) << p.errors[0];
    const HealthCheckConfig& h = p.app().health;
    EXPECT_EQ(p.app().panic_threshold, 50u);
    EXPECT_EQ(h.path, "/healthz?full=1");
    EXPECT_EQ(h.host, "app.internal");
    EXPECT_EQ(h.interval.count(), 200);
    EXPECT_EQ(h.jitter.count(), 0);
    EXPECT_EQ(h.timeout.count(), 1000);
    EXPECT_EQ(h.expect_min, 204u);
    EXPECT_EQ(h.expect_max, 204u);
    EXPECT_EQ(h.rise, 4u);
    EXPECT_EQ(h.fall, 1u);
}

TEST(HealthConfig, ExpectRangeIsRead) {
    auto p = parse(config_with("[upstream.app.health]\nexpect = \"200-299\"\n"));
    ASSERT_TRUE(p.errors.empty()) << p.errors[0];
    EXPECT_EQ(p.app().health.expect_min, 200u);
    EXPECT_EQ(p.app().health.expect_max, 299u);
}

TEST(HealthConfig, BadExpectNamesTheKeyAndTheAllowedForms) {
    for (const char* bad : {"abc", "399-200", "99", "200-600", "200-", "-300", "2OO", ""}) {
        std::string error =
            first_error(std::string("[upstream.app.health]\nexpect = \"") + bad + "\"\n");
        EXPECT_NE(error.find("test.toml:9: [upstream.app.health.expect] '"), std::string::npos)
            << bad << ": " << error;
        EXPECT_NE(error.find("\"200-399\""), std::string::npos) << error;
    }
}

TEST(HealthConfig, OtherBadValuesNameTheirKey) {
    const std::pair<const char*, const char*> cases[] = {
        {"path = \"healthz\"", "[upstream.app.health.path] must start with '/'"},
        {"path = \"/a b\"", "[upstream.app.health.path] must start with '/'"},
        {"host = \"\"", "[upstream.app.health.host] must be a non-empty host name"},
        {"interval = 0", "[upstream.app.health.interval] must be greater than 0"},
        {"timeout = \"0s\"", "[upstream.app.health.timeout] must be greater than 0"},
        {"jitter = \"soon\"", "[upstream.app.health.jitter] expected a duration"},
        {"rise = 0", "[upstream.app.health.rise] 0 is out of range 1..1000"},
        {"fall = \"3\"", "[upstream.app.health.fall] expected an integer, found a string"},
        {"intervl = \"1s\"",
         "[upstream.app.health.intervl] unknown key 'intervl' (did you mean 'interval'?)"},
    };
    for (const auto& [line, expected] : cases) {
        std::string error = first_error(std::string("[upstream.app.health]\n") + line + "\n");
        EXPECT_NE(error.find(expected), std::string::npos) << line << ": " << error;
    }
}

TEST(HealthConfig, PanicThresholdIsAPercentage) {
    EXPECT_NE(first_error("panic_threshold = 101\n")
                  .find("[upstream.app.panic_threshold] 101 is out of range 0..100"),
              std::string::npos);
    EXPECT_NE(first_error("panic_threshold = -1\n").find("[upstream.app.panic_threshold]"),
              std::string::npos);
}

TEST(HealthConfig, HealthMustBeATable) {
    EXPECT_NE(first_error("health = true\n")
                  .find("[upstream.app.health] expected a table, found a boolean"),
              std::string::npos);
}

TEST(HealthConfig, ReaderKeepsDefaultsOfAbsentKeysAndLeavesEnabledAlone) {
    toml::table table = toml::parse("rise = 5\n");
    Diagnostics diag("x.toml");
    config::TableReader reader(table, "h", diag);
    HealthCheckConfig h;
    config::read_health_config(reader, h);
    EXPECT_TRUE(diag.ok());
    EXPECT_FALSE(h.enabled);
    EXPECT_EQ(h.rise, 5u);
    EXPECT_EQ(h.fall, 3u);
    EXPECT_EQ(h.path, "/");
}

// ---- rise / fall ---------------------------------------------------------------------------

TEST(HealthRiseFall, ServerTurnsUnhealthyOnlyAfterFallFailuresInARow) {
    upstream::Peer peer;
    HealthCheckConfig h; // rise 2, fall 3
    EXPECT_FALSE(upstream::apply_check_result(peer, false, h));
    EXPECT_FALSE(upstream::apply_check_result(peer, false, h));
    EXPECT_FALSE(upstream::apply_check_result(peer, true, h)); // the run is broken
    EXPECT_FALSE(upstream::apply_check_result(peer, false, h));
    EXPECT_FALSE(upstream::apply_check_result(peer, false, h));
    EXPECT_TRUE(peer.active_healthy.load());
    EXPECT_TRUE(upstream::apply_check_result(peer, false, h));
    EXPECT_FALSE(peer.active_healthy.load());
    EXPECT_EQ(peer.check_fails.load(), 3u);
    EXPECT_FALSE(upstream::apply_check_result(peer, false, h)); // no second transition
}

TEST(HealthRiseFall, ServerComesBackAfterRisePassesInARow) {
    upstream::Peer peer;
    peer.active_healthy = false;
    HealthCheckConfig h;
    h.rise = 2;
    EXPECT_FALSE(upstream::apply_check_result(peer, true, h));
    EXPECT_FALSE(upstream::apply_check_result(peer, false, h));
    EXPECT_FALSE(upstream::apply_check_result(peer, true, h));
    EXPECT_FALSE(peer.active_healthy.load());
    EXPECT_TRUE(upstream::apply_check_result(peer, true, h));
    EXPECT_TRUE(peer.active_healthy.load());
    EXPECT_EQ(peer.check_passes.load(), 2u);
}

// ---- eligibility ---------------------------------------------------------------------------

// A balancer that records what it was offered and picks the first eligible peer.
std::vector<uint8_t> offered;

extern "C" gh_status_t first_eligible(void*, const gh_pool_t*, const gh_select_ctx_t* ctx,
                                      uint32_t* peer) {
    offered.assign(ctx->eligible, ctx->eligible + ctx->peer_count);
    for (uint32_t i = 0; i < ctx->peer_count; ++i)
        if (ctx->eligible[i]) {
            *peer = i;
            return GH_OK;
        }
    return GH_ERR_NOT_FOUND;
}

struct ServerSpec {
    bool backup = false;
    uint32_t max_inflight = 0;
};

class PoolFixture : public ::testing::Test {
protected:
    void make_pool(const std::vector<ServerSpec>& servers, uint32_t panic_threshold = 0) {
        UpstreamConfig cfg;
        cfg.name = "app";
        cfg.panic_threshold = panic_threshold;
        for (size_t i = 0; i < servers.size(); ++i) {
            config::ServerEntry e;
            e.host = "127.0.0.1";
            e.port = static_cast<uint16_t>(9001 + i);
            e.address = fmt::format("127.0.0.1:{}", e.port);
            e.backup = servers[i].backup;
            e.max_inflight = servers[i].max_inflight;
            cfg.servers.push_back(e);
        }
        balancer_.name = "first";
        balancer_.has_balancer = true;
        balancer_.balancer.struct_size = sizeof balancer_.balancer;
        balancer_.balancer.select = first_eligible;
        pool_ = std::make_unique<upstream::UpstreamPool>(cfg, 0);
        std::string error;
        ASSERT_TRUE(pool_->resolve(error)) << error;
        ASSERT_TRUE(pool_->bind_balancer(&balancer_, nullptr, error)) << error;
        tried_.assign(servers.size(), 0);
    }

    // The peers offered to the balancer for a request, as a 0/1 string ("101").
    std::string offer() {
        offered.clear();
        upstream::Peer* chosen = pool_->select(nullptr, 0, tried_);
        // select() counts the attempt as in flight; this only looks at the offer.
        auto release = upstream::InflightGuard::adopt(chosen);
        std::string out;
        for (uint8_t e : offered)
            out += e ? '1' : '0';
        if (!chosen)
            out += " (none)";
        return out;
    }

    void mark_unhealthy(size_t i) { pool_->peer(i).active_healthy = false; }
    void eject(size_t i) {
        pool_->peer(i).ejected_until_ns = upstream::now_ns() + int64_t{3600} * 1'000'000'000;
    }

    modules::LoadedModule balancer_;
    std::unique_ptr<upstream::UpstreamPool> pool_;
    std::vector<uint8_t> tried_;
};

TEST_F(PoolFixture, AllHealthyPrimariesAreOffered) {
    make_pool({{}, {}, {.backup = true}});
    EXPECT_EQ(offer(), "110");
}

TEST_F(PoolFixture, ActivelyUnhealthyServerIsNotOffered) {
    make_pool({{}, {}, {}});
    mark_unhealthy(1);
    EXPECT_EQ(offer(), "101");
}

TEST_F(PoolFixture, PassivelyEjectedServerIsNotOffered) {
    make_pool({{}, {}, {}});
    eject(0);
    EXPECT_EQ(offer(), "011");
}

TEST_F(PoolFixture, HealthyBackupsAreOfferedWhenNoPrimaryIsHealthy) {
    make_pool({{}, {}, {.backup = true}, {.backup = true}});
    mark_unhealthy(0);
    eject(1);
    mark_unhealthy(3);
    EXPECT_EQ(offer(), "0010");
}

TEST_F(PoolFixture, NobodyHealthyMeansEveryUntriedServerIsOffered) {
    make_pool({{}, {}, {.backup = true}});
    mark_unhealthy(0);
    mark_unhealthy(1);
    eject(2);
    tried_[1] = 1;
    EXPECT_EQ(offer(), "101");
}

TEST_F(PoolFixture, EverythingTriedMeansNoServer) {
    make_pool({{}, {}});
    tried_ = {1, 1};
    EXPECT_EQ(offer(), " (none)");
}

TEST_F(PoolFixture, BelowPanicThresholdHealthIsIgnored) {
    make_pool({{}, {}}, 60); // 1 of 2 healthy = 50% < 60%
    mark_unhealthy(1);
    EXPECT_EQ(offer(), "11");
}

TEST_F(PoolFixture, AtPanicThresholdHealthStillCounts) {
    make_pool({{}, {}}, 50); // 50% is not below 50%
    mark_unhealthy(1);
    EXPECT_EQ(offer(), "10");
}

TEST_F(PoolFixture, PanicCountsPassiveEjectionsAndStillSkipsTriedAndFullServers) {
    make_pool({{}, {}, {}, {.max_inflight = 1}}, 80); // 1 of 4 healthy = 25% < 80%
    eject(0);
    mark_unhealthy(1);
    eject(3);
    tried_[2] = 1;
    ASSERT_TRUE(upstream::UpstreamPool::try_acquire(pool_->peer(3)));
    auto busy = upstream::InflightGuard::adopt(&pool_->peer(3));
    EXPECT_EQ(offer(), "1100");
}

TEST_F(PoolFixture, BackupsDoNotCountTowardsThePanicThreshold) {
    make_pool({{}, {}, {.backup = true}, {.backup = true}}, 60);
    mark_unhealthy(0); // 1 of 2 primaries healthy; the healthy backups do not lift it
    EXPECT_EQ(offer(), "1100");
}

// ---- the checker against a real socket ---------------------------------------------------------

TEST(HealthChecker, RefusedConnectionsMakeAServerUnhealthy) {
    uint16_t port;
    {
        // A port that was just free: connects to it are refused.
        boost::asio::io_context io;
        boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
        port = a.local_endpoint().port();
    }
    UpstreamConfig cfg;
    cfg.name = "app";
    cfg.servers.push_back({fmt::format("127.0.0.1:{}", port), "127.0.0.1", port});
    cfg.health.enabled = true;
    cfg.health.interval = std::chrono::milliseconds(10);
    cfg.health.jitter = std::chrono::milliseconds(0);
    cfg.health.fall = 2;
    upstream::UpstreamPool pool(cfg, 0);
    std::string error;
    ASSERT_TRUE(pool.resolve(error)) << error;
    auto checker = upstream::HealthChecker::start({&pool});
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (pool.peer(0).active_healthy && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    checker->stop();
    EXPECT_FALSE(pool.peer(0).active_healthy.load());
    EXPECT_GE(pool.peer(0).check_fails.load(), 2u);
}

TEST(HealthChecker, PoolsWithoutHealthTableAreNotChecked) {
    UpstreamConfig cfg;
    cfg.name = "app";
    cfg.servers.push_back({"127.0.0.1:1", "127.0.0.1", 1});
    upstream::UpstreamPool pool(cfg, 0);
    auto checker = upstream::HealthChecker::start({&pool});
    ASSERT_NE(checker, nullptr);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    checker->stop();
    EXPECT_EQ(pool.peer(0).check_fails.load(), 0u);
    EXPECT_TRUE(pool.peer(0).active_healthy.load());
}

} // namespace
