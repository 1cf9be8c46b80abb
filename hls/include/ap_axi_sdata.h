// C-simulation stand-in for Vitis HLS <ap_axi_sdata.h> (written for this project): the
// AXI4-Stream word with side channels, as used by sasp_gemm. Vitis HLS uses its own header.
#ifndef SASP_AP_AXI_SDATA_STANDIN_H
#define SASP_AP_AXI_SDATA_STANDIN_H

#ifdef __SYNTHESIS__
#error "hls/include/ap_axi_sdata.h is a C-simulation stand-in"
#endif

#include <ap_int.h>

template <int D, int U, int TI, int TD>
struct ap_axiu {
    ap_uint<D> data;
    ap_uint<(D + 7) / 8> keep;
    ap_uint<(D + 7) / 8> strb;
    ap_uint<1> last;
};

#endif
