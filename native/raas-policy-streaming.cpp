// raas-local: StreamingLLM (Xiao et al., arXiv 2309.17453) in the page machinery.
//
// Attention sinks plus a recent window: the first n_sink positions of the
// sequence are pinned (set_policy / reset pin them), the prompt is pinned like
// for every policy, and to make room the oldest closed decode page goes: the
// window is the most recent pages that fit the budget. No scores are needed.

#include "raas.h"

int raas_policy_streaming_victim(const llama_raas & st) {
    const llama_pos newest = st.newest_pos();
    for (size_t i = 0; i < st.pages.size(); ++i) {
        const raas_page & p = st.pages[i];
        // pages are in position order: the first evictable one is the oldest
        if (p.closed && !(newest >= p.first && newest <= p.last)) {
            return (int) i;
        }
    }
    return -1;
}
