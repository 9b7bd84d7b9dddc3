// waf: the module's entry point. The hooks are in filter.cpp.
#include "filter.hpp"

GH_MODULE(waf::WafFilter, "waf", "0.1.0",
          "ModSecurity rules and the OWASP Core Rule Set (libmodsecurity 3)")
