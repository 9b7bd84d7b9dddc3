// sso: the module's entry point. The hooks are in filter.cpp.
#include "filter.hpp"

GH_MODULE(sso::SsoFilter, "sso", "0.1.0", "OpenID Connect single sign-on at the edge")
