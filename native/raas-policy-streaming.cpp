// raas-local: StreamingLLM (Xiao et al., arXiv 2309.17453) in the page machinery.
//
// Attention sinks plus a recent window: the first n_sink positions of the
// sequence are pinned (set_policy / reset pin them), the prompt is pinned like
// for every policy, and to make room the oldest closed decode page goes: the
// window is the most recent pages that fit the budget. No scores are needed.

#include "raas.h"

static void streaming_reset(raas_seq & st) {
    if (st.params.n_sink > 0) {
        st.pin(0, st.params.n_sink); // the attention sinks: the first positions of the sequence
    }
}

static int streaming_victim(const raas_seq & st) {
    const llama_pos newest = st.newest_pos();
    for (size_t i = 0; i < st.pages.size(); ++i) {
        // pages are in position order: the first evictable one is the oldest
        if (raas_page_evictable(st.pages[i], newest)) {
            return (int) i;
        }
    }
    return -1;
}

const raas_policy raas_policy_streaming = {
    /*.kind         =*/ LLAMA_RAAS_KIND_STREAMING,
    /*.name         =*/ "streaming",
    /*.needs_scores =*/ false,
    /*.evicts       =*/ true,
    /*.pages        =*/ true,
    /*.page_size    =*/ 0,
    /*.graph_nodes  =*/ 0,
    /*.check        =*/ nullptr,
    /*.on_reset     =*/ streaming_reset,
    /*.observe      =*/ nullptr,
    /*.victim       =*/ streaming_victim,
    /*.build_attn   =*/ nullptr,
};
