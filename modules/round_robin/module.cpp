// round_robin: entry point and registration only; the logic is in round_robin.cpp.
#include "config.hpp"
#include "round_robin.hpp"

#include <gatehouse/sdk.hpp>

namespace round_robin {

class RoundRobinModule : public gh::Balancer<RoundRobinModule, Config, RoundRobinPool> {
  public:
    std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base) {
        return round_robin::parse_config(table, base);
    }
    std::unique_ptr<RoundRobinPool> pool_init(const Config &, gh::Pool pool) {
        return RoundRobinPool::from_pool(pool);
    }
    std::optional<uint32_t> select(RoundRobinPool &state, gh::Pool pool,
                                   const gh::SelectContext &ctx) {
        std::optional<uint32_t> peer = state.select(ctx);
        if (!peer)
            no_eligible_peer_.inc({pool.name()});
        return peer;
    }

  private:
    gh::Counter no_eligible_peer_{"round_robin_no_eligible_peer_total",
                                  "select calls that found no eligible peer", {"upstream"}};
};

} // namespace round_robin

GH_MODULE(round_robin::RoundRobinModule, "round_robin", "0.1.0",
          "smooth weighted round-robin balancer shared across worker threads")
