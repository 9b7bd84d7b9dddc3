// least_conn: entry point and registration only; the logic is in least_conn.cpp.
#include "config.hpp"
#include "least_conn.hpp"

#include <gatehouse/sdk.hpp>

namespace least_conn {

class LeastConnModule : public gh::Balancer<LeastConnModule, Config> {
  public:
    std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base) {
        return least_conn::parse_config(table, base);
    }
    std::optional<uint32_t> select(gh::NoPoolState &, gh::Pool pool,
                                   const gh::SelectContext &ctx) {
        std::optional<uint32_t> peer = select_peer(pool, ctx);
        if (!peer)
            no_eligible_peer_.inc({pool.name()});
        return peer;
    }

  private:
    gh::Counter no_eligible_peer_{"least_conn_no_eligible_peer_total",
                                  "select calls that found no eligible peer", {"upstream"}};
};

} // namespace least_conn

GH_MODULE(least_conn::LeastConnModule, "least_conn", "0.1.0",
          "weighted least-connections balancer over the kernel's in-flight counters")
