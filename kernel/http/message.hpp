// A parsed HTTP/1.1 message head as views: name/value pairs pointing into the connection's
// storage of the original bytes, plus the framing facts the proxy needs. No allocation per field
// beyond the (reused) vector.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace gatehouse::http {

// The header names the proxy treats specially.
enum class FieldKind : uint8_t {
    other,
    hop_by_hop, // RFC 9110 §7.6.1: describes this connection only, never forwarded
    expect,
    content_length,
    forwarded,
    x_forwarded_for,
    x_forwarded_proto,
    x_forwarded_host,
    unclassified, // not looked at yet: kind_of() classifies by name
};

struct Field {
    std::string_view name;
    std::string_view value;
    // Set by the parser from the field Beast has looked up anyway; fields added later (modules'
    // edits) leave it unclassified.
    FieldKind kind = FieldKind::unclassified;
};

struct Framing {
    bool chunked = false;
    bool has_content_length = false;
    uint64_t content_length = 0;
    bool keep_alive = true;   // after this message, per version and Connection
    bool upgrade = false;     // Connection: upgrade + Upgrade
    // Connection lists names other than close/keep-alive/upgrade: fields that are hop-by-hop
    // for this message only (RFC 9110 §7.6.1).
    bool connection_options = false;
};

struct RequestHead {
    std::string_view method;
    std::string_view target;
    unsigned version = 11; // 10 or 11
    std::vector<Field> fields;
    Framing framing;
    std::string_view host;         // Host value as sent (may include a port)
    bool has_host = false;         // a Host field came (HTTP/1.0 may leave it out)
    bool expect_continue = false;
    bool expect_other = false;     // an Expect we cannot meet -> 417
    bool has_body() const { return framing.chunked || framing.content_length > 0; }
    void clear();
};

struct ResponseHead {
    unsigned status = 0;
    std::string_view reason;
    unsigned version = 11;
    std::vector<Field> fields;
    Framing framing;
    bool close_delimited = false; // body ends when the upstream closes
    bool no_body = false;         // 1xx, 204, 304, or a response to HEAD
    void clear();
};

// RFC 3986 reg-name / IP-literal / port characters only, as a Host value may hold.
bool valid_host(std::string_view host);

// Moves every view of a head that points into [from, from + size) to the same offset in `to`
// (the head's own copy of its bytes), so the read buffer can be reused.
void rebase_views(RequestHead& head, const char* from, const char* to, size_t size);
void rebase_views(ResponseHead& head, const char* from, const char* to, size_t size);

// ASCII case-insensitive equality (header names, tokens). Inline: it is on every hot path.
inline bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    for (size_t i = 0; i < a.size(); ++i) {
        unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
        if (x != y && ((x | 0x20u) != (y | 0x20u) || (x | 0x20u) < 'a' || (x | 0x20u) > 'z'))
            return false;
    }
    return true;
}
// Calls fn(token) for each comma-separated element of a header value, trimmed of OWS.
template <class Fn>
void for_each_token(std::string_view value, Fn&& fn) {
    size_t start = 0;
    while (start <= value.size()) {
        size_t comma = value.find(',', start);
        if (comma == std::string_view::npos)
            comma = value.size();
        std::string_view item = value.substr(start, comma - start);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t'))
            item.remove_prefix(1);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t'))
            item.remove_suffix(1);
        if (!item.empty())
            fn(item);
        start = comma + 1;
    }
}

// One switch on the length and at most two comparisons instead of a comparison per name.
FieldKind classify(std::string_view name);
inline FieldKind kind_of(const Field& f) {
    return f.kind != FieldKind::unclassified ? f.kind : classify(f.name);
}

inline bool is_hop_by_hop(std::string_view name) { return classify(name) == FieldKind::hop_by_hop; }

} // namespace gatehouse::http
