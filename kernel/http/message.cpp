#include "http/message.hpp"

namespace gatehouse::http {

void RequestHead::clear() {
    method = target = host = {};
    version = 11;
    fields.clear();
    framing = {};
    expect_continue = expect_other = has_host = false;
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

FieldKind classify(std::string_view name) {
    auto is = [&](std::string_view lower) { return iequals(name, lower); };
    switch (name.size()) {
    case 2:
        return is("te") ? FieldKind::hop_by_hop : FieldKind::other;
    case 6:
        return is("expect") ? FieldKind::expect : FieldKind::other;
    case 7:
        return is("trailer") || is("upgrade") ? FieldKind::hop_by_hop : FieldKind::other;
    case 9:
        return is("forwarded") ? FieldKind::forwarded : FieldKind::other;
    case 10:
        return is("connection") || is("keep-alive") ? FieldKind::hop_by_hop : FieldKind::other;
    case 14:
        return is("content-length") ? FieldKind::content_length : FieldKind::other;
    case 15:
        return is("x-forwarded-for") ? FieldKind::x_forwarded_for : FieldKind::other;
    case 16:
        return is("proxy-connection")   ? FieldKind::hop_by_hop
               : is("x-forwarded-host") ? FieldKind::x_forwarded_host
                                        : FieldKind::other;
    case 17:
        return is("transfer-encoding")   ? FieldKind::hop_by_hop
               : is("x-forwarded-proto") ? FieldKind::x_forwarded_proto
                                         : FieldKind::other;
    case 18:
        return is("proxy-authenticate") ? FieldKind::hop_by_hop : FieldKind::other;
    case 19:
        return is("proxy-authorization") ? FieldKind::hop_by_hop : FieldKind::other;
    default:
        return FieldKind::other;
    }
}

} // namespace gatehouse::http
