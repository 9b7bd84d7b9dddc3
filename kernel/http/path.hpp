// Request-target normalisation before routing (RFC 3986 §6.2.2): percent-encoded unreserved
// characters decoded, remaining escapes upper-cased, dot-segments removed, "//" merged. The
// normalised form is what routing sees and what is forwarded, so the upstream never sees a path
// the route did not match.
#pragma once

#include <string>
#include <string_view>

namespace gatehouse::http {

// Splits an origin-form target into path and query and normalises the path into `out`.
// Returns false if the target is invalid (bad escape, climbs above "/", not origin-form).
bool normalise_target(std::string_view target, std::string& out_path, std::string_view& query);

} // namespace gatehouse::http
