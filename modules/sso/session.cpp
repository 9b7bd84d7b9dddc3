// sso: session and login-state encoding (see session.hpp).
#include "session.hpp"

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

std::string encode_session(const Session &s) {
    json j = {{"v", 1},         {"id", s.id},     {"p", s.provider}, {"sub", s.sub},
              {"c", s.claims},  {"t", s.created}, {"seen", s.seen}};
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
    if (auto c = j.find("c"); c != j.end() && c->is_object())
        s.claims = std::move(*c);
    else
        s.claims = json::object();
    s.id_token = str(j, "it");
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
