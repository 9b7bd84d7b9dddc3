// least_conn: lowest inflight/weight wins, weights scale, ties are uniform, ineligible skipped.
#include "least_conn.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace {

// A pool the test controls, behind a host table with only pool_size / pool_peer / pool_name.
struct FakePeer {
    uint32_t weight;
    uint64_t inflight;
};
struct FakePool {
    std::vector<FakePeer> peers;
};

const FakePool &fake(const gh_pool_t *pool) { return *reinterpret_cast<const FakePool *>(pool); }

gh_host_api_v1 fake_host() {
    gh_host_api_v1 h{};
    h.struct_size = sizeof(h);
    h.abi_major = GH_ABI_MAJOR;
    h.abi_minor = GH_ABI_MINOR;
    h.pool_size = [](const gh_pool_t *pool) -> uint32_t {
        return static_cast<uint32_t>(fake(pool).peers.size());
    };
    h.pool_peer = [](const gh_pool_t *pool, uint32_t i, gh_peer_info_t *out) -> gh_status_t {
        const FakePool &p = fake(pool);
        if (i >= p.peers.size() || out == nullptr || out->struct_size < sizeof(gh_peer_info_t))
            return GH_ERR_NOT_FOUND;
        out->weight = p.peers[i].weight;
        out->max_inflight = 0;
        out->backup = 0;
        out->inflight = p.peers[i].inflight;
        out->address = gh_str_t{"127.0.0.1:1", 11};
        return GH_OK;
    };
    h.pool_name = [](const gh_pool_t *) { return gh_str_t{"test", 4}; };
    return h;
}

class LeastConn : public ::testing::Test {
  protected:
    // Select over `peers`, all eligible unless `eligible` says otherwise.
    std::optional<uint32_t> select(const std::vector<FakePeer> &peers,
                                   std::vector<uint8_t> eligible = {}) {
        pool_.peers = peers;
        if (eligible.empty())
            eligible.assign(peers.size(), 1);
        eligible_ = std::move(eligible);
        gh_select_ctx_t ctx{};
        ctx.struct_size = sizeof(ctx);
        ctx.peer_count = static_cast<uint32_t>(peers.size());
        ctx.eligible = eligible_.data();
        gh::Pool pool(reinterpret_cast<const gh_pool_t *>(&pool_), &host_);
        return least_conn::select_peer(pool, gh::SelectContext(ctx));
    }

    gh_host_api_v1 host_ = fake_host();
    FakePool pool_;
    std::vector<uint8_t> eligible_;
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
