"""The ``sasp_gemm`` kernel's protocol constants as the host uses them (numpy-free).

hls/src/sasp_gemm.h owns them on the hardware side (``SASP_*`` and ``SA_K_MAX``);
tests/test_kernel_spec.py parses its ``#define``s and fails when a value here differs.
"""

from __future__ import annotations

from typing import Dict

ID_VERSION = 0x53410200  # SASP_ID_VERSION: id 'SA', version 2.0 (the id_version register)
MAGIC = 0x50534153  # SASP_MAGIC: b"SASP" little-endian, the low half of the stream header word
STREAM_VERSION = 2  # SASP_STREAM_VERSION: bits 32..39 of the stream header word
K_MAX = 1536  # SA_K_MAX: largest K (Whisper tiny.en's fc2)

# status register bits (SASP_ST_*)
ST_OK, ST_BAD_ARGS, ST_BAD_HEADER, ST_BAD_META, ST_PROBE = 0x1, 0x2, 0x4, 0x8, 0x10
# flags register bits (SASP_FLAG_*)
FLAG_PROBE, FLAG_FP16 = 0x1, 0x2

STATUS_TEXT: Dict[int, str] = {
    ST_BAD_ARGS: "bad arguments",
    ST_BAD_HEADER: "bad header word",
    ST_BAD_META: "bad weight segment (kidx, tile count or length)",
}
