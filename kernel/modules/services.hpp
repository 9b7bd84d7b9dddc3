// Process-wide services behind the host API: the offload thread pool and the generation that
// callouts resolve upstream names in.
#pragma once

#include <gatehouse/gatehouse.h>

#include <boost/asio/thread_pool.hpp>

#include <memory>

namespace gatehouse {
class Generation;
}

namespace gatehouse::modules {

void set_current_generation(std::shared_ptr<const Generation> generation);
std::shared_ptr<const Generation> current_generation();

boost::asio::thread_pool& offload_pool();
void stop_offload_pool();

// HTTP request to a named upstream; completion on the calling worker (modules/callout.cpp).
gh_status_t start_callout(const gh_callout_request_t* request, gh_callout_done_fn done, void* arg);

} // namespace gatehouse::modules
