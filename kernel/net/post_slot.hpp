// Memory for a connection's own posted continuations. A write that completes inline goes on from
// the event loop (asio::post), once or twice per request; Asio 1.74 allocates each posted
// function and keeps one block per thread for reuse, which many connections' posts in flight
// defeat: a malloc and a free per post. A connection rarely has more than one post in flight, so
// it lends its own block; a second one at the same time gets the heap.
//
// Lifetime: Asio moves the function (which holds the connection) out of the block and frees the
// block before running or destroying it, so the connection outlives every use of its slot.
#pragma once

#include <cstddef>
#include <new>
#include <utility>

namespace gatehouse::net {

class PostSlot {
public:
    void* take(size_t bytes) {
        if (used_ || bytes > sizeof bytes_)
            return ::operator new(bytes);
        used_ = true;
        return bytes_;
    }
    void give_back(void* p) {
        if (p == static_cast<void*>(bytes_))
            used_ = false;
        else
            ::operator delete(p);
    }

private:
    alignas(std::max_align_t) unsigned char bytes_[128];
    bool used_ = false;
};

template <class T>
struct PostSlotAllocator {
    using value_type = T;
    explicit PostSlotAllocator(PostSlot* slot) noexcept : slot(slot) {}
    template <class U>
    PostSlotAllocator(const PostSlotAllocator<U>& other) noexcept : slot(other.slot) {}
    T* allocate(size_t n) { return static_cast<T*>(slot->take(n * sizeof(T))); }
    void deallocate(T* p, size_t) noexcept { slot->give_back(p); }
    template <class U>
    bool operator==(const PostSlotAllocator<U>& other) const noexcept {
        return slot == other.slot;
    }
    template <class U>
    bool operator!=(const PostSlotAllocator<U>& other) const noexcept {
        return slot != other.slot;
    }
    PostSlot* slot;
};

// A function to post whose memory comes from `slot` (Asio finds the allocator through
// allocator_type / get_allocator()). Post it to the io_context's own executor: the type-erased
// any_io_executor of a socket wraps the function in memory of its own.
template <class Fn>
struct PostSlotHandler {
    using allocator_type = PostSlotAllocator<void>;
    allocator_type get_allocator() const noexcept { return allocator_type(slot); }
    void operator()() { fn(); }
    Fn fn;
    PostSlot* slot;
};

template <class Fn>
PostSlotHandler<std::decay_t<Fn>> in_slot(PostSlot& slot, Fn&& fn) {
    return {std::forward<Fn>(fn), &slot};
}

} // namespace gatehouse::net
