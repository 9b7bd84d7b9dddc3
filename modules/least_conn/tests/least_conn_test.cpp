// least_conn: lowest inflight/weight wins, weights scale, ties are uniform, ineligible skipped.
#include "least_conn.hpp"
#include "config.hpp"

#include <gatehouse/sdk/testing.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace {

struct FakePeer {
    uint32_t weight;
    uint64_t inflight;
};

// Pools on the SDK's fake host (gatehouse/sdk/testing.hpp).
class LeastConn : public ::testing::Test {
  protected:
    // Select over `peers`, all eligible unless `eligible` says otherwise.
    std::optional<uint32_t> select(const std::vector<FakePeer> &peers,
                                   std::vector<uint8_t> eligible = {}) {
        pool_.peers.clear();
        for (const FakePeer &p : peers)
            pool_.peers.push_back({p.weight, p.inflight});
        gh::testing::FakeSelect ctx(peers.size(), std::move(eligible));
        return least_conn::select_peer(pool_.pool(), ctx.context());
    }

    gh::testing::FakeHost host_;
    gh::testing::FakePool pool_;
};

TEST_F(LeastConn, PeerWithFewestInflightIsChosen) {
    EXPECT_EQ(select({{1, 5}, {1, 2}, {1, 9}}), 1u);
    EXPECT_EQ(select({{1, 0}, {1, 2}, {1, 9}}), 0u);
    EXPECT_EQ(select({{1, 3}, {1, 2}, {1, 1}}), 2u);
}

TEST_F(LeastConn, WeightDividesTheLoad) {
    // 5/3 < 2/1: the heavier server with more requests is still less loaded.
    EXPECT_EQ(select({{1, 2}, {3, 5}}), 1u);
    // 7/3 > 2/1.
    EXPECT_EQ(select({{1, 2}, {3, 7}}), 0u);
}

TEST_F(LeastConn, ComparisonIsExactWithoutFloatingPoint) {
    EXPECT_FALSE(least_conn::less_loaded(2, 1, 6, 3)); // 2/1 == 6/3
    EXPECT_FALSE(least_conn::less_loaded(6, 3, 2, 1));
    EXPECT_TRUE(least_conn::less_loaded(5, 3, 2, 1));
    const uint64_t huge = std::numeric_limits<uint64_t>::max();
    EXPECT_TRUE(least_conn::less_loaded(huge - 1, 1000, huge, 1000)); // no overflow
    EXPECT_TRUE(least_conn::less_loaded(huge, 1000, huge, 999));
}

TEST_F(LeastConn, IneligiblePeersAreSkippedEvenWhenIdle) {
    EXPECT_EQ(select({{1, 0}, {1, 7}, {1, 3}}, {0, 1, 1}), 2u);
    EXPECT_EQ(select({{1, 0}, {1, 7}, {1, 3}}, {0, 1, 0}), 1u);
}

TEST_F(LeastConn, NoEligiblePeerSelectsNothing) {
    EXPECT_FALSE(select({{1, 0}, {1, 0}}, {0, 0}).has_value());
    EXPECT_FALSE(select({}).has_value());
}

TEST_F(LeastConn, TiesAreBrokenRoughlyUniformly) {
    // Peers 0, 2 and 3 tie at 1 request per unit of weight; peer 1 is busier.
    const std::vector<FakePeer> peers = {{1, 1}, {1, 4}, {2, 2}, {3, 3}};
    std::vector<int> counts(peers.size(), 0);
    const int rounds = 30000;
    for (int i = 0; i < rounds; ++i) {
        std::optional<uint32_t> p = select(peers);
        ASSERT_TRUE(p.has_value());
        ++counts[*p];
    }
    EXPECT_EQ(counts[1], 0);
    for (uint32_t tied : {0u, 2u, 3u}) {
        // Expected 10000 each; 5 standard deviations is about 400.
        EXPECT_NEAR(counts[tied], rounds / 3, 600) << "peer " << tied;
    }
}

TEST_F(LeastConn, RandomBelowStaysInRange) {
    for (uint32_t bound : {1u, 2u, 3u, 1000u})
        for (int i = 0; i < 1000; ++i)
            EXPECT_LT(least_conn::random_below(bound), bound);
}

} // namespace

TEST(LeastConnConfig, ReadmeSaysNoKeysAndAnyKeyIsUnknown) {
    EXPECT_EQ(gh::testing::key_table_mismatch(least_conn::keys(), README_PATH), "");
    gh::testing::FakeHost host;
    gh::testing::Value table = gh::testing::Value::table({{"weight", 2}});
    EXPECT_NE(gh::testing::parse_table(least_conn::parse_config, table, least_conn::Config{}), nullptr);
    EXPECT_EQ(host.config_errors, std::vector<std::string>{"weight: unknown key"});
}
