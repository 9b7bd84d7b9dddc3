// compress: the module's entry point. The hooks are in filter.cpp.
#include "filter.hpp"

GH_MODULE(compress_filter::CompressFilter, "compress", "0.2.0",
          "gzip and brotli streaming response compression")
