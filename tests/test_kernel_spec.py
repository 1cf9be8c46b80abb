"""host/kernel_spec.py holds the values hls/src/sasp_gemm.h defines (the hardware owner), read from the header."""

from __future__ import annotations

import re
from pathlib import Path

from host import kernel_spec

HEADER = Path(__file__).resolve().parents[1] / "hls" / "src" / "sasp_gemm.h"
# host name -> header macro, for the constants that are not SASP_<host name>
RENAMED = {"ID_VERSION": "SASP_ID_VERSION", "K_MAX": "SA_K_MAX"}


def header_defines() -> dict:
    """Every ``#define NAME <integer literal>`` of the kernel header (C suffixes u/l dropped)."""
    text = HEADER.read_text()
    return {
        name: int(value, 0)
        for name, value in re.findall(r"^#define\s+(\w+)\s+(0x[0-9a-fA-F]+|\d+)[uUlL]*\b", text, flags=re.M)
    }


def host_constants() -> dict:
    return {k: v for k, v in vars(kernel_spec).items() if k.isupper() and isinstance(v, int)}


def test_every_host_constant_is_the_header_value():
    defines = header_defines()
    for name, value in host_constants().items():
        macro = RENAMED.get(name, f"SASP_{name}")
        assert macro in defines, f"{macro} (host/kernel_spec.py {name}) is not defined in {HEADER.name}"
        assert defines[macro] == value, f"{name} = 0x{value:x} but {HEADER.name} has {macro} 0x{defines[macro]:x}"


def test_every_status_and_flag_bit_of_the_header_is_known_to_the_host():
    host = {RENAMED.get(n, f"SASP_{n}") for n in host_constants()}
    bits = {n for n in header_defines() if n.startswith(("SASP_ST_", "SASP_FLAG_"))}
    assert bits and bits <= host, f"not in host/kernel_spec.py: {sorted(bits - host)}"
    errors = {v for n, v in host_constants().items() if n.startswith("ST_") and n not in ("ST_OK", "ST_PROBE")}
    assert set(kernel_spec.STATUS_TEXT) == errors
