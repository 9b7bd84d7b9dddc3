// Memory for the kernel's posted continuations. A write that completes inline goes on from the
// event loop (asio::post), once or twice per request; Asio 1.74 allocates each posted function
// and keeps one block per thread for reuse, which many connections' posts in flight defeat: a
// malloc and a free per post. These posts take their memory from a per-thread stack of small
// blocks instead (the most recently freed first, still in the CPU cache), as many as are in
// flight at once, and cost no memory per connection.
#pragma once

#include "net/block_memory.hpp"

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace gatehouse::net {

namespace post_memory {
constexpr size_t block = 128; // a posted continuation: the op, a shared_ptr and a little state
constexpr size_t kept = 256;  // free blocks kept per thread

inline void* allocate(size_t bytes) {
    return bytes > block ? ::operator new(bytes) : block_memory::allocate<block, kept>();
}

inline void deallocate(void* p, size_t bytes) {
    if (bytes > block)
        return ::operator delete(p);
    block_memory::deallocate<block, kept>(p);
}
} // namespace post_memory

template <class T>
struct PostAllocator {
    using value_type = T;
    PostAllocator() noexcept = default;
    template <class U>
    PostAllocator(const PostAllocator<U>&) noexcept {}
    T* allocate(size_t n) { return static_cast<T*>(post_memory::allocate(n * sizeof(T))); }
    void deallocate(T* p, size_t n) noexcept { post_memory::deallocate(p, n * sizeof(T)); }
    template <class U>
    bool operator==(const PostAllocator<U>&) const noexcept { return true; }
    template <class U>
    bool operator!=(const PostAllocator<U>&) const noexcept { return false; }
};

// A function to post with that memory (Asio finds the allocator through allocator_type /
// get_allocator()). Post it to the io_context's own executor: the type-erased any_io_executor
// of a socket wraps the function in memory of its own.
template <class Fn>
struct RecycledPost {
    using allocator_type = PostAllocator<void>;
    allocator_type get_allocator() const noexcept { return {}; }
    void operator()() { fn(); }
    Fn fn;
};

template <class Fn>
RecycledPost<std::decay_t<Fn>> recycled(Fn&& fn) {
    return {std::forward<Fn>(fn)};
}

} // namespace gatehouse::net
