/* no_entry: a shared object with exported symbols but no gatehouse_module_v1; the kernel must
 * refuse it with one line naming the missing symbol. */
__attribute__((visibility("default"))) int gh_no_entry_marker(void);
__attribute__((visibility("default"))) int gh_no_entry_marker(void) { return 42; }
