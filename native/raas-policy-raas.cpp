// raas-local: the RaaS rule (Hu et al., arXiv 2502.11147), per page of cells.
//
// After step t, each decode page P (the newest, partial one included) has
// score(P) = max of its cells' scores (the last token's attention, summed over
// heads and layers). Pages ordered by (score desc, first position desc): the
// first ceil(r * n_pages) get ts(P) = t. A page gets ts = t when its first
// token is placed. To make room, the closed page with the smallest
// (ts, first position) that does not hold the newest position is freed.
// tests/reference/raas_policy.py is the plain-Python model of this file.

#include "raas.h"

#include <algorithm>
#include <cmath>
#include <numeric>

int32_t raas_n_refresh(float ratio, size_t n_pages) {
    // the epsilon keeps e.g. 0.3f * 10 from rounding up to 4
    return (int32_t) std::ceil((double) ratio * (double) n_pages - 1e-6);
}

static void raas_observe(raas_seq & st) {
    auto & pages = st.pages;
    std::vector<size_t> order(pages.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        if (pages[a].score != pages[b].score) {
            return pages[a].score > pages[b].score;
        }
        return pages[a].first > pages[b].first;
    });
    const int32_t k = std::min<int32_t>(raas_n_refresh(st.params.refresh_ratio, pages.size()), (int32_t) pages.size());
    for (int32_t i = 0; i < k; ++i) {
        pages[order[i]].ts = st.step;
    }
}

static int raas_victim(const raas_seq & st) {
    const llama_pos newest = st.newest_pos();
    int best = -1;
    for (size_t i = 0; i < st.pages.size(); ++i) {
        const raas_page & p = st.pages[i];
        if (!raas_page_evictable(p, newest)) {
            continue;
        }
        // pages are in position order, so the first of equal ts has the smaller first position
        if (best < 0 || p.ts < st.pages[best].ts) {
            best = (int) i;
        }
    }
    return best;
}

const raas_policy raas_policy_raas = {
    /*.kind         =*/ LLAMA_RAAS_KIND_RAAS,
    /*.name         =*/ "raas",
    /*.needs_scores =*/ true,
    /*.evicts       =*/ true,
    /*.pages        =*/ true,
    /*.page_size    =*/ 0,
    /*.graph_nodes  =*/ 0,
    /*.check        =*/ nullptr,
    /*.on_reset     =*/ nullptr,
    /*.observe      =*/ raas_observe,
    /*.victim       =*/ raas_victim,
    /*.build_attn   =*/ nullptr,
};
