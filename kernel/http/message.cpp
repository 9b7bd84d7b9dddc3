#include "http/message.hpp"

namespace gatehouse::http {

void RequestHead::clear() {
    method = target = host = {};
    version = 11;
    fields.clear();
    framing = {};
    expect_continue = expect_other = false;
}

void ResponseHead::clear() {
    status = 0;
    reason = {};
    version = 11;
    fields.clear();
    framing = {};
    close_delimited = no_body = false;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    for (size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = static_cast<char>(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = static_cast<char>(y + 32);
        if (x != y)
            return false;
    }
    return true;
}

bool is_hop_by_hop(std::string_view name) {
    static constexpr std::string_view names[] = {
        "connection", "keep-alive", "proxy-connection", "te", "trailer",
        "transfer-encoding", "upgrade", "proxy-authenticate", "proxy-authorization"};
    for (auto n : names)
        if (iequals(name, n))
            return true;
    return false;
}

} // namespace gatehouse::http
