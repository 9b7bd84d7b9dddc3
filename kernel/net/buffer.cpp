#include "net/buffer.hpp"

#include <sys/mman.h>

#include <new>
#include <vector>

namespace gatehouse::net::buffer_memory {

namespace {
constexpr size_t page = 4096;
// Enough free buffers per thread to absorb connection churn; beyond it they go back to the OS.
constexpr size_t cache_limit = 64;

struct Cache {
    std::vector<std::pair<char*, size_t>> free;
    ~Cache() {
        for (auto [data, size] : free)
            ::munmap(data, size);
    }
};
thread_local Cache cache;
} // namespace

char* allocate(size_t& size) {
    size = (size + page - 1) / page * page;
    auto& free = cache.free;
    for (size_t i = free.size(); i-- > 0;)
        if (free[i].second == size) {
            char* data = free[i].first;
            free[i] = free.back();
            free.pop_back();
            return data;
        }
    void* data = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED)
        throw std::bad_alloc();
    return static_cast<char*>(data);
}

void free(char* data, size_t size) {
    if (!data)
        return;
    if (cache.free.size() < cache_limit) {
        cache.free.emplace_back(data, size);
        return;
    }
    ::munmap(data, size);
}

} // namespace gatehouse::net::buffer_memory
