// A fake gh_host_api_v1 for testing sdk.hpp without the kernel: config nodes are a small tree,
// metrics, logs and config errors are recorded, async services queue their callbacks.
#pragma once

#include <gatehouse/gatehouse.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace fake {

// A config node: the C handle is a pointer to one of these.
struct Node {
    uint32_t type = GH_CFG_NONE;
    std::string text;
    int64_t integer = 0;
    double number = 0;
    bool boolean = false;
    std::vector<std::pair<std::string, Node>> children; // tables (key) and arrays (empty key)

    static Node table(std::vector<std::pair<std::string, Node>> c) {
        Node n;
        n.type = GH_CFG_TABLE;
        n.children = std::move(c);
        return n;
    }
    static Node array(std::vector<Node> items);
    static Node string(std::string s) {
        Node n;
        n.type = GH_CFG_STRING;
        n.text = std::move(s);
        return n;
    }
    static Node integer_node(int64_t v) {
        Node n;
        n.type = GH_CFG_INT;
        n.integer = v;
        return n;
    }
    static Node boolean_node(bool v) {
        Node n;
        n.type = GH_CFG_BOOL;
        n.boolean = v;
        return n;
    }
    const gh_config_node_t *handle() const { return reinterpret_cast<const gh_config_node_t *>(this); }
};

// Everything the fake host saw.
struct Recorder {
    std::vector<std::string> logs;
    std::vector<std::string> config_errors;
    std::vector<std::string> keys_read;
    std::vector<std::string> metrics_registered;
    std::vector<std::pair<std::string, double>> metric_records; // "name{v1,v2}" -> value
    std::vector<std::pair<gh_task_fn, void *>> posted;           // post and timers
    std::vector<gh_timer_t *> cancelled;
    std::map<std::pair<gh_stream_t *, gh_module_t *>, void *> ctx;
    std::map<std::string, std::string> request_headers;
    gh_action_t resumed = -1;
};

Recorder &recorder();
// A complete host table over the recorder (fresh recorder state on each call).
gh_host_api_v1 make_host();
// Run and clear every queued post/timer callback.
void run_queued();

} // namespace fake
