#include "admin/config.hpp"

#include "config/config.hpp"

#include <boost/asio/ip/address.hpp>
#include <fmt/format.h>

namespace gatehouse::admin {

void read_admin_config(config::TableReader& table, AdminConfig& out) {
    if (auto listen = table.string("listen")) {
        boost::system::error_code ec;
        if (!config::split_host_port(*listen, out.host, out.port))
            table.error("listen", fmt::format("'{}' is not ADDRESS:PORT", *listen));
        // A name would need resolving at start and could change under us; the admin endpoint
        // should sit on a known private address.
        else if (boost::asio::ip::make_address(out.host, ec); ec)
            table.error("listen", fmt::format("'{}' is not an IP address", out.host));
        else
            out.enabled = true;
    }
    table.finish();
}

} // namespace gatehouse::admin
