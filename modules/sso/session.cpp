// sso: session and login-state encoding (see session.hpp).
#include "session.hpp"

#include <algorithm>

namespace sso {

using json = nlohmann::json;

namespace {

std::string str(const json &j, const char *name) {
    auto it = j.find(name);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int64_t num(const json &j, const char *name) {
    auto it = j.find(name);
    return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

} // namespace

json identity_claims(const json &claims) {
    static const char *const protocol[] = {"iss", "sub", "aud", "exp", "iat", "nbf", "nonce",
                                           "azp", "at_hash", "c_hash", "auth_time", "sid",
                                           "jti", "acr", "amr", "s_hash"};
    json out = json::object();
    for (auto it = claims.begin(); it != claims.end(); ++it)
        if (std::find(std::begin(protocol), std::end(protocol), it.key()) == std::end(protocol))
            out[it.key()] = it.value();
    return out;
}

namespace {

// The identity claims of a compact JWS's payload (not verified here: see encode_session).
std::optional<json> id_token_claims(std::string_view compact) {
    const size_t a = compact.find('.');
    const size_t b = a == std::string_view::npos ? a : compact.find('.', a + 1);
    if (b == std::string_view::npos)
        return std::nullopt;
    auto payload = b64url_decode(compact.substr(a + 1, b - a - 1));
    json claims = payload ? json::parse(*payload, nullptr, false) : json();
    if (!claims.is_object())
        return std::nullopt;
    return identity_claims(claims);
}

} // namespace

std::string encode_session(const Session &s) {
    json j = {{"v", 1}, {"id", s.id}, {"p", s.provider}, {"sub", s.sub}, {"t", s.created},
              {"seen", s.seen}};
    const bool derivable = !s.id_token.empty() && id_token_claims(s.id_token) == s.claims;
    if (!derivable)
        j["c"] = s.claims;
    if (!s.sid.empty())
        j["sid"] = s.sid;
    if (!s.id_token.empty())
        j["it"] = s.id_token;
    if (!s.access_token.empty())
        j["at"] = s.access_token;
    if (!s.refresh_token.empty())
        j["rt"] = s.refresh_token;
    if (s.access_expires != 0)
        j["ae"] = s.access_expires;
    return j.dump();
}

std::optional<Session> decode_session(std::string_view text) {
    json j = json::parse(text, nullptr, false);
    if (!j.is_object() || num(j, "v") != 1)
        return std::nullopt;
    Session s;
    s.id = str(j, "id");
    s.provider = str(j, "p");
    s.sub = str(j, "sub");
    s.sid = str(j, "sid");
    s.id_token = str(j, "it");
    if (auto c = j.find("c"); c != j.end() && c->is_object())
        s.claims = std::move(*c);
    else if (auto from_token = s.id_token.empty() ? std::nullopt : id_token_claims(s.id_token))
        s.claims = std::move(*from_token);
    else
        s.claims = json::object();
    s.access_token = str(j, "at");
    s.refresh_token = str(j, "rt");
    s.created = num(j, "t");
    s.seen = num(j, "seen");
    s.access_expires = num(j, "ae");
    if (s.id.empty() || s.sub.empty() || s.created <= 0)
        return std::nullopt;
    return s;
}

std::string encode_login(const LoginState &l) {
    return json{{"s", l.state},     {"n", l.nonce},    {"v", l.verifier},
                {"r", l.return_to}, {"p", l.provider}, {"t", l.created}}
        .dump();
}

std::optional<LoginState> decode_login(std::string_view text) {
    json j = json::parse(text, nullptr, false);
    if (!j.is_object())
        return std::nullopt;
    LoginState l{str(j, "s"), str(j, "n"), str(j, "v"), str(j, "r"), str(j, "p"), num(j, "t")};
    if (l.state.empty() || l.nonce.empty() || l.verifier.empty() || l.created <= 0)
        return std::nullopt;
    return l;
}

std::vector<std::string> split_chunks(std::string_view sealed) {
    std::vector<std::string> out;
    for (size_t at = 0; at < sealed.size(); at += kChunk)
        out.emplace_back(sealed.substr(at, kChunk));
    if (out.empty())
        out.emplace_back();
    return out;
}

} // namespace sso
