#include "net/buffer.hpp"

#include <sys/mman.h>

#include <new>
#include <vector>

namespace gatehouse::net::buffer_memory {

namespace {
constexpr size_t page = 4096;
// Free buffers kept per size (a connection's request buffer, a response's first page, a full
// response buffer...), enough per size to absorb connection churn; beyond it they go back to
// the OS. Per size, so that many small buffers cannot push the large ones out (each of those
// would then cost an mmap, page faults and an munmap per response).
constexpr size_t per_size_limit = 64;

struct Cache {
    struct SizeClass {
        size_t size;
        std::vector<char*> free; // most recently freed last: still in the CPU cache
    };
    std::vector<SizeClass> classes;
    SizeClass& of(size_t size) {
        for (auto& c : classes)
            if (c.size == size)
                return c;
        return classes.emplace_back(SizeClass{size, {}});
    }
    ~Cache() {
        for (auto& c : classes)
            for (char* data : c.free)
                ::munmap(data, c.size);
    }
};
thread_local Cache cache;
} // namespace

char* allocate(size_t& size) {
    size = (size + page - 1) / page * page;
    auto& free = cache.of(size).free;
    if (!free.empty()) {
        char* data = free.back();
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
    auto& free = cache.of(size).free;
    if (free.size() < per_size_limit) {
        free.push_back(data);
        return;
    }
    ::munmap(data, size);
}

} // namespace gatehouse::net::buffer_memory
