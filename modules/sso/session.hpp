// sso: the session a browser carries, sealed into its cookies (AES-256-GCM, see crypto.hpp), and
// the short-lived login state of each sign-in in flight.
#pragma once

#include "crypto.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sso {

struct Session {
    std::string id; // random, names the session for refresh coordination
    std::string provider;
    std::string sub;
    std::string sid;           // the provider's session id (back-channel logout), if given
    nlohmann::json claims;     // the ID token's claims, protocol claims left out
    std::string id_token;      // for `id_token_hint` at logout
    std::string access_token;  // kept for pass_access_token
    std::string refresh_token;
    int64_t created = 0;        // seconds since the epoch
    int64_t seen = 0;           // last use (idle timeout), refreshed at most once a minute
    int64_t access_expires = 0; // 0 = unknown
};

// The claims of an ID token a session passes on: all but the protocol's own (iss, aud, exp...).
nlohmann::json identity_claims(const nlohmann::json &id_token_claims);

// JSON for the cookie or the store. The claims are left out when the ID token carries them all
// (the usual case): decoding takes them from its payload again -- it was verified at sign-in
// and the session is sealed, so it is trusted as stored. Halves a session's size.
std::string encode_session(const Session &s);
std::optional<Session> decode_session(std::string_view text);

// One sign-in in flight: what the callback needs to finish it.
struct LoginState {
    std::string state, nonce, verifier, return_to, provider;
    int64_t created = 0;
};
std::string encode_login(const LoginState &l);
std::optional<LoginState> decode_login(std::string_view text);

// Cookie chunks: a sealed value longer than kChunk goes into NAME, NAME_1, NAME_2...
constexpr size_t kChunk = 3800;
constexpr size_t kMaxChunks = 8;
std::vector<std::string> split_chunks(std::string_view sealed);

} // namespace sso
