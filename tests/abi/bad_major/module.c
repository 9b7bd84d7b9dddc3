/* bad_major: a well-formed module that claims ABI 2.0; a 1.x kernel must refuse it without
 * calling any hook. Written in C to show a plain C module builds with gatehouse_add_module. */
#include <gatehouse/gatehouse.h>

#include <stdio.h>

static gh_status_t bad_major_load(gh_module_t *self, void **state) {
    (void)self;
    (void)state;
    fputs("bad_major: load called (the kernel should have refused the module)\n", stderr);
    return GH_OK;
}

static const gh_filter_v1 bad_major_filter = {sizeof(gh_filter_v1), 0, 0, 0, NULL, NULL};

static const gh_module_v1 bad_major_descriptor = {
    sizeof(gh_module_v1), 2 /* abi_major */, GH_ABI_MINOR, GH_KIND_FILTER,
    "bad_major", "0.0.1", "claims ABI 2.x (tests/abi)",
    bad_major_load, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    &bad_major_filter, NULL};

GH_EXPORT const gh_module_v1 *gatehouse_module_v1(const gh_host_api_v1 *host);
GH_EXPORT const gh_module_v1 *gatehouse_module_v1(const gh_host_api_v1 *host) {
    (void)host;
    return &bad_major_descriptor;
}
