/* newer_minor: a well-formed module that says it was built against SDK 1.(GH_ABI_MINOR + 1); a
 * kernel of minor GH_ABI_MINOR must refuse it without calling any hook. */
#include <gatehouse/gatehouse.h>

#include <stdio.h>

static gh_status_t newer_minor_load(gh_module_t *self, void **state) {
    (void)self;
    (void)state;
    fputs("newer_minor: load called (the kernel should have refused the module)\n", stderr);
    return GH_OK;
}

static const gh_filter_v1 newer_minor_filter = {sizeof(gh_filter_v1), 0, 0, 0, NULL, NULL};

static const gh_module_v1 newer_minor_descriptor = {
    sizeof(gh_module_v1), GH_ABI_MAJOR, GH_ABI_MINOR + 1 /* abi_minor */, GH_KIND_FILTER,
    "newer_minor", "0.0.1", "built against a newer SDK minor than the kernel (tests/abi)",
    newer_minor_load, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    &newer_minor_filter, NULL};

GH_EXPORT const gh_module_v1 *gatehouse_module_v1(const gh_host_api_v1 *host);
GH_EXPORT const gh_module_v1 *gatehouse_module_v1(const gh_host_api_v1 *host) {
    (void)host;
    return &newer_minor_descriptor;
}
