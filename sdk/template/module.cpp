// example: entry point and registration only.
#include "config.hpp"
#include "example.hpp"

#include <gatehouse/sdk.hpp>

namespace example {

class ExampleFilter : public gh::Filter<ExampleFilter, Config> {
  public:
    std::unique_ptr<Config> parse_config(gh::ConfigNode table, const Config &base) {
        return example::parse_config(table, base);
    }
    // Defining this hook is what subscribes the module to RESPONSE_HEADERS.
    gh_action_t on_response_headers(gh::Stream stream, const Config &config) {
        headers_added_.inc({stream.route()});
        return add_response_header(stream, config);
    }

  private:
    gh::Counter headers_added_{"example_headers_added_total", "responses the filter saw",
                               {"route"}};
};

} // namespace example

GH_MODULE(example::ExampleFilter, "example", "0.1.0", "adds a configured response header")
