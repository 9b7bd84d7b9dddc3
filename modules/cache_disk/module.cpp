// cache_disk: the module's entry point. The hooks are in filter.cpp.
#include "filter.hpp"

GH_MODULE(cache_disk::CacheFilter, "cache_disk", "0.1.0",
          "RFC 9111 shared HTTP cache on disk")
