#pragma once

#include <string_view>

namespace gatehouse::http {

// RFC 9110 §15 reason phrases for the statuses the kernel and modules commonly produce.
std::string_view reason(unsigned status);

} // namespace gatehouse::http
