// raas-local: dense, stock llama.cpp behaviour: every cell stays and is attended.
// It keeps no page table; the row exists so that pins and stats work as for every kind.

#include "raas.h"

const raas_policy raas_policy_dense = {
    /*.kind         =*/ LLAMA_RAAS_KIND_DENSE,
    /*.name         =*/ "dense",
    /*.needs_scores =*/ false,
    /*.evicts       =*/ false,
    /*.pages        =*/ false,
    /*.page_size    =*/ 0,
    /*.graph_nodes  =*/ 0,
    /*.check        =*/ nullptr,
    /*.on_reset     =*/ nullptr,
    /*.observe      =*/ nullptr,
    /*.victim       =*/ nullptr,
    /*.build_attn   =*/ nullptr,
};
