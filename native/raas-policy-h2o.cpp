// raas-local: H2O, heavy-hitter oracle (Zhang et al., arXiv 2306.14048), per cell.
//
// H2O decides per token, so set_policy forces page_size = 1: every decode cell
// is its own page. After each step a cell's score (the last token's attention,
// summed over heads and layers) is added to its accumulated score. The most
// recent `recent` decode positions are protected, recent = budget minus the
// heavy-hitter share (heavy_ratio * budget); to make room, the unprotected cell
// with the smallest (accumulated score, position) goes. If every decode cell is
// recent (a long pinned prompt), the oldest one goes.

#include "raas.h"

#include <cmath>

int32_t raas_h2o_recent(const llama_raas_params & p) {
    return p.budget - (int32_t) std::floor((double) p.heavy_ratio * p.budget);
}

static void h2o_observe(raas_seq & st) {
    for (raas_page & p : st.pages) {
        p.acc += p.score;
    }
}

static int h2o_victim(const raas_seq & st) {
    const llama_pos newest = st.newest_pos();
    const llama_pos recent_from = newest - raas_h2o_recent(st.params) + 1;
    int best = -1;
    int oldest = -1;
    for (size_t i = 0; i < st.pages.size(); ++i) {
        const raas_page & p = st.pages[i];
        if (!raas_page_evictable(p, newest)) {
            continue;
        }
        if (oldest < 0) {
            oldest = (int) i;
        }
        if (p.last >= recent_from) {
            continue;
        }
        // strict < keeps the older of equal scores (pages are in position order)
        if (best < 0 || p.acc < st.pages[best].acc) {
            best = (int) i;
        }
    }
    return best >= 0 ? best : oldest;
}

const raas_policy raas_policy_h2o = {
    /*.kind         =*/ LLAMA_RAAS_KIND_H2O,
    /*.name         =*/ "h2o",
    /*.needs_scores =*/ true,
    /*.evicts       =*/ true,
    /*.pages        =*/ true,
    /*.page_size    =*/ 1, // H2O evicts single cells
    /*.graph_nodes  =*/ 0,
    /*.check        =*/ nullptr,
    /*.on_reset     =*/ nullptr,
    /*.observe      =*/ h2o_observe,
    /*.victim       =*/ h2o_victim,
    /*.build_attn   =*/ nullptr,
};
