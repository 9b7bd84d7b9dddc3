// cache_disk: the admin endpoint (SDK 1.2 admin_handle) -- purge by key or prefix, stats.
#include "filter.hpp"

namespace cache_disk {

namespace {

int hex_digit(char h) {
    return h >= '0' && h <= '9'   ? h - '0'
           : h >= 'a' && h <= 'f' ? h - 'a' + 10
           : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                  : -1;
}

// The value of `name` in a query string, percent-decoded ('+' stays '+': keys contain them).
std::optional<std::string> query_param(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        const size_t amp = query.find('&');
        std::string_view p = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        const size_t eq = p.find('=');
        if (p.substr(0, eq) != name)
            continue;
        std::string_view v = eq == std::string_view::npos ? std::string_view() : p.substr(eq + 1);
        std::string out;
        for (size_t i = 0; i < v.size(); ++i) {
            if (v[i] == '%' && i + 2 < v.size() && hex_digit(v[i + 1]) >= 0 &&
                hex_digit(v[i + 2]) >= 0) {
                out.push_back(static_cast<char>(hex_digit(v[i + 1]) * 16 + hex_digit(v[i + 2])));
                i += 2;
            } else {
                out.push_back(v[i]);
            }
        }
        return out;
    }
    return std::nullopt;
}

} // namespace

void CacheFilter::admin(void *self, const gh_admin_request_t *request,
                        gh_admin_response_t *response) {
    auto &me = *static_cast<CacheFilter *>(self);
    const std::string_view method = gh::sv(request->method);
    const std::string_view path = gh::sv(request->path);
    const std::string_view query = gh::sv(request->query);
    std::vector<std::shared_ptr<Store>> stores;
    {
        std::lock_guard lock(me.stores_mu_);
        for (auto &[p, weak] : me.stores_)
            if (auto s = weak.lock())
                stores.push_back(std::move(s));
    }
    auto reply = [&](unsigned status, std::string body) {
        me.admin_reply_ = std::move(body);
        response->status = status;
        response->content_type = gh::str("application/json");
        response->body = gh::bytes(me.admin_reply_);
    };
    if (path == "/stats" && method == "GET") {
        std::string out = "{\"stores\":[";
        for (size_t i = 0; i < stores.size(); ++i)
            out += (i ? "," : "") + std::string("{\"objects\":") +
                   std::to_string(stores[i]->objects()) +
                   ",\"bytes\":" + std::to_string(stores[i]->bytes()) +
                   ",\"memory_bytes\":" + std::to_string(stores[i]->memory_bytes()) + "}";
        return reply(200, out + "]}\n");
    }
    if (path != "/purge")
        return reply(404, "{\"error\":\"not found: use POST /purge?key=... or ?prefix=..., "
                          "GET /stats\"}\n");
    if (method != "POST" && method != "DELETE" && method != "PURGE")
        return reply(405, "{\"error\":\"purge with POST\"}\n");
    auto key = query_param(query, "key");
    auto prefix = query_param(query, "prefix");
    if (key.has_value() == prefix.has_value() || (prefix && prefix->empty()) ||
        (key && key->empty()))
        return reply(400, "{\"error\":\"give exactly one of key= or prefix= (non-empty)\"}\n");
    size_t purged = 0;
    for (const auto &store : stores) {
        std::vector<ObjectPtr> gone = key ? store->erase_key(*key) : store->erase_prefix(*prefix);
        purged += gone.size();
        store->discard(std::move(gone));
    }
    me.purged_.add(static_cast<double>(purged));
    return reply(200, "{\"purged\":" + std::to_string(purged) + "}\n");
}

} // namespace cache_disk
