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

namespace {
void rebase_view(std::string_view& v, const char* from, const char* to, size_t size) {
    if (v.data() >= from && v.data() <= from + size)
        v = {to + (v.data() - from), v.size()};
}

void rebase_fields(std::vector<Field>& fields, const char* from, const char* to, size_t size) {
    for (auto& f : fields) {
        rebase_view(f.name, from, to, size);
        rebase_view(f.value, from, to, size);
    }
}
} // namespace

void rebase_views(RequestHead& head, const char* from, const char* to, size_t size) {
    rebase_fields(head.fields, from, to, size);
    rebase_view(head.method, from, to, size);
    rebase_view(head.target, from, to, size);
    rebase_view(head.host, from, to, size);
}

void rebase_views(ResponseHead& head, const char* from, const char* to, size_t size) {
    rebase_fields(head.fields, from, to, size);
    rebase_view(head.reason, from, to, size);
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
