// round_robin: exact weight shares per cycle, smoothness, skipping and sharing across threads.
#include "round_robin.hpp"
#include "config.hpp"

#include <gatehouse/sdk/testing.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <thread>
#include <vector>

namespace {

using round_robin::RoundRobinPool;
using round_robin::smooth_sequence;

// A select context over `eligible` (1 = may be chosen).
struct Eligibility {
    explicit Eligibility(std::vector<uint8_t> flags) : flags_(std::move(flags)) {
        raw_.struct_size = sizeof(raw_);
        raw_.peer_count = static_cast<uint32_t>(flags_.size());
        raw_.eligible = flags_.data();
    }
    gh::SelectContext ctx() const { return gh::SelectContext(raw_); }

  private:
    std::vector<uint8_t> flags_;
    gh_select_ctx_t raw_{};
};

Eligibility all_eligible(std::size_t n) { return Eligibility(std::vector<uint8_t>(n, 1)); }

std::vector<uint64_t> count_selections(RoundRobinPool &pool, const Eligibility &e, std::size_t n,
                                       std::size_t calls) {
    std::vector<uint64_t> counts(n, 0);
    for (std::size_t i = 0; i < calls; ++i) {
        std::optional<uint32_t> peer = pool.select(e.ctx());
        EXPECT_TRUE(peer.has_value());
        if (peer)
            ++counts.at(*peer);
    }
    return counts;
}

uint32_t reduced_total(const std::vector<uint32_t> &w) {
    uint32_t g = 0, sum = 0;
    for (uint32_t x : w)
        g = std::gcd(g, x);
    for (uint32_t x : w)
        sum += x / g;
    return sum;
}

const std::vector<std::vector<uint32_t>> kWeightSets = {
    {1}, {1, 1, 1}, {5, 1, 1}, {3, 2}, {2, 4, 6}, {10, 7, 3, 1}, {1000, 1}, {4, 4, 4, 4}, {7, 11, 13},
};

TEST(RoundRobin, EveryFullCycleGivesEachServerExactlyItsWeightShare) {
    for (const std::vector<uint32_t> &weights : kWeightSets) {
        RoundRobinPool pool(weights);
        const uint32_t cycle = reduced_total(weights);
        ASSERT_EQ(pool.sequence().size(), cycle);
        const uint32_t g = std::accumulate(weights.begin(), weights.end(), 0u,
                                           [](uint32_t a, uint32_t b) { return std::gcd(a, b); });
        const std::size_t cycles = 5;
        std::vector<uint64_t> counts =
            count_selections(pool, all_eligible(weights.size()), weights.size(), cycle * cycles);
        for (std::size_t i = 0; i < weights.size(); ++i)
            EXPECT_EQ(counts[i], cycles * weights[i] / g) << "peer " << i << " of set starting "
                                                          << weights[0];
    }
}

TEST(RoundRobin, WeightsAreReducedByTheirGcd) {
    EXPECT_EQ(smooth_sequence({2, 4, 6}), smooth_sequence({1, 2, 3}));
    EXPECT_EQ(smooth_sequence({4, 4, 4, 4}).size(), 4u);
}

TEST(RoundRobin, FiveOneOneIsInterleavedLikeNginx) {
    EXPECT_EQ(smooth_sequence({5, 1, 1}), (std::vector<uint32_t>{0, 0, 1, 0, 2, 0, 0}));
}

TEST(RoundRobin, HeavyServerNeverRunsAsLongAsItsWholeWeight) {
    // Plain WRR sends 5 in a row to the heavy server; the smooth order never does, even across
    // the cycle boundary.
    std::vector<uint32_t> seq = smooth_sequence({5, 1, 1});
    std::vector<uint32_t> twice = seq;
    twice.insert(twice.end(), seq.begin(), seq.end());
    std::size_t run = 0, longest = 0;
    for (uint32_t p : twice) {
        run = p == 0 ? run + 1 : 0;
        longest = std::max(longest, run);
    }
    EXPECT_LT(longest, 5u);
}

TEST(RoundRobin, EveryPrefixStaysWithinOneOfTheIdealShare) {
    // Smoothness: after t picks, peer i has been chosen t*w_i/W times, give or take less than 1.
    for (const std::vector<uint32_t> &weights : kWeightSets) {
        std::vector<uint32_t> seq = smooth_sequence(weights);
        const double total = static_cast<double>(seq.size());
        std::vector<uint32_t> reduced_counts(weights.size(), 0);
        std::vector<double> share(weights.size());
        const double wsum = std::accumulate(weights.begin(), weights.end(), 0.0);
        for (std::size_t i = 0; i < weights.size(); ++i)
            share[i] = weights[i] / wsum;
        for (std::size_t t = 0; t < seq.size(); ++t) {
            ++reduced_counts[seq[t]];
            for (std::size_t i = 0; i < weights.size(); ++i)
                EXPECT_LT(std::fabs(reduced_counts[i] - (t + 1) * share[i]), 1.0)
                    << "t=" << t << " peer " << i << " cycle " << total;
        }
    }
}

TEST(RoundRobin, IneligiblePeersAreSkippedAndOthersKeepTheirRatio) {
    RoundRobinPool pool({3, 1, 2});
    Eligibility no_middle({1, 0, 1});
    std::vector<uint64_t> counts = count_selections(pool, no_middle, 3, 600);
    // The cycle a c a b c a without b: a c a c a, so 3:2 stays 3:2.
    EXPECT_EQ(counts[1], 0u);
    EXPECT_EQ(counts[0], 360u);
    EXPECT_EQ(counts[2], 240u);
}

TEST(RoundRobin, OnlyEligiblePeerIsAlwaysChosen) {
    RoundRobinPool pool({5, 1, 1});
    Eligibility only_last({0, 0, 1});
    std::vector<uint64_t> counts = count_selections(pool, only_last, 3, 50);
    EXPECT_EQ(counts[2], 50u);
}

TEST(RoundRobin, NoEligiblePeerIsNotFound) {
    RoundRobinPool pool({2, 1});
    Eligibility none({0, 0});
    EXPECT_FALSE(pool.select(none.ctx()).has_value());
}

TEST(RoundRobin, PeersBeyondTheContextCountAreNotChosen) {
    RoundRobinPool pool({1, 1, 1});
    Eligibility two({1, 1}); // the context knows only two peers
    std::vector<uint64_t> counts = count_selections(pool, two, 3, 30);
    EXPECT_EQ(counts[2], 0u);
}

TEST(RoundRobin, EmptyPoolSelectsNothing) {
    RoundRobinPool pool(std::vector<uint32_t>{});
    Eligibility none({});
    EXPECT_FALSE(pool.select(none.ctx()).has_value());
}

TEST(RoundRobin, ThreadsSharingOnePoolStillGetExactShares) {
    const std::vector<uint32_t> weights = {5, 3, 1, 1};
    RoundRobinPool pool(weights);
    const std::size_t cycle = pool.sequence().size(); // 10
    const std::size_t threads = 4, per_thread = cycle * 2500;
    Eligibility all = all_eligible(weights.size());
    std::vector<std::vector<uint64_t>> counts(threads, std::vector<uint64_t>(weights.size(), 0));
    std::vector<std::thread> workers;
    for (std::size_t t = 0; t < threads; ++t)
        workers.emplace_back([&, t] {
            for (std::size_t i = 0; i < per_thread; ++i)
                if (std::optional<uint32_t> p = pool.select(all.ctx()))
                    ++counts[t][*p];
        });
    for (std::thread &w : workers)
        w.join();
    const uint64_t cycles = threads * per_thread / cycle;
    for (std::size_t i = 0; i < weights.size(); ++i) {
        uint64_t sum = 0;
        for (std::size_t t = 0; t < threads; ++t)
            sum += counts[t][i];
        EXPECT_EQ(sum, cycles * weights[i]) << "peer " << i;
    }
}

} // namespace

namespace {

TEST(RoundRobin, ThreadsNeverChooseAnIneligiblePeer) {
    RoundRobinPool pool({2, 3, 1});
    Eligibility no_middle({1, 0, 1});
    std::vector<std::vector<uint64_t>> counts(3, std::vector<uint64_t>(3, 0));
    std::vector<std::thread> workers;
    for (std::size_t t = 0; t < counts.size(); ++t)
        workers.emplace_back([&, t] {
            for (int i = 0; i < 20000; ++i)
                if (std::optional<uint32_t> p = pool.select(no_middle.ctx()))
                    ++counts[t][*p];
        });
    for (std::thread &w : workers)
        w.join();
    uint64_t first = 0, middle = 0, last = 0;
    for (const auto &c : counts) {
        first += c[0];
        middle += c[1];
        last += c[2];
    }
    EXPECT_EQ(middle, 0u);
    EXPECT_EQ(first + last, 60000u);
    EXPECT_GT(first, last); // 2:1 between the remaining two, give or take thread interleaving
}

} // namespace

TEST(RoundRobinConfig, ReadmeSaysNoKeysAndAnyKeyIsUnknown) {
    EXPECT_EQ(gh::testing::key_table_mismatch(round_robin::keys(), README_PATH), "");
    gh::testing::FakeHost host;
    gh::testing::Value table = gh::testing::Value::table({{"weight", 2}});
    EXPECT_NE(gh::testing::parse_table(round_robin::parse_config, table, round_robin::Config{}), nullptr);
    EXPECT_EQ(host.config_errors, std::vector<std::string>{"weight: unknown key"});
}
