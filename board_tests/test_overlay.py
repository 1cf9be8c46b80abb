"""The overlay loads and its registers read back (on the board)."""

from __future__ import annotations


def test_overlay_loads_and_registers_read_back(backend, array, results):
    from host.kernel_spec import ID_VERSION
    from host.pynq_backend import decode_array_size, decode_id

    # PynqBackend ran a probe (flags=probe) and checked ID/version and array size; read them again
    assert backend.read_register("id_version") == ID_VERSION
    r, c, sa_chunk = decode_array_size(backend.read_register("array_size"))
    assert (r, c) == (array, array)
    assert backend.chunk == sa_chunk >= 1
    assert backend.read_register("ap_ctrl") & 0x4, "kernel not idle after the probe"
    results["overlay"] = {
        "bitfile": str(backend.bitfile),
        "id_version": decode_id(backend.read_register("id_version")),
        "array": [r, c],
        "sa_chunk": sa_chunk,
        "dma_max_bytes": backend.dma_max_bytes,
    }


def test_dma_length_register_is_26_bits(backend):
    params = backend.overlay.ip_dict[backend.dma_name]["parameters"]
    assert int(params["c_sg_length_width"]) == 26
    assert int(params.get("c_include_sg", 0)) == 0
    assert backend.dma_max_bytes == (1 << 26) - 1


def test_axi_lite_arguments_are_writable(backend):
    """wmem/wlen/m/k/n/chunk/flags registers hold what the host writes (AXI-Lite path and interface.json offsets)."""
    for name, value in (("wmem", 0x1000), ("wlen", 77), ("m", 1500), ("k", 1536), ("n", 384), ("chunk", backend.chunk)):
        backend.write_register(name, value)
        assert backend.read_register(name) == value, name
    backend.write_register("flags", 0)
