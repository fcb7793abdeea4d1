"""The embedded model's bundle build parses the GGUF file once (saekit.lm._gguf_parsed_once).

transformers asks for the file three times while converting it; the build shares one GGUFReader
between those calls. These tests use a two-block GGUF file written here, not the real 100 MB one:
the bundle built both ways was compared byte for byte when the sharing was introduced.
"""

import gguf
import numpy as np
import pytest
import transformers.modeling_gguf_pytorch_utils as hf_gguf

from saekit.lm import _gguf_parsed_once


@pytest.fixture
def tiny_gguf(tmp_path):
    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(2)
    writer.add_context_length(16)
    writer.add_embedding_length(8)
    writer.add_feed_forward_length(16)
    writer.add_head_count(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tensor("token_embd.weight", np.arange(32, dtype=np.float32).reshape(4, 8))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_transformers_reads_the_file_once_inside_the_block_and_as_usual_after(tiny_gguf, monkeypatch):
    opened = []

    class CountingReader(gguf.GGUFReader):
        def __init__(self, *args, **kwargs):
            opened.append(args[0])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(gguf, "GGUFReader", CountingReader)
    with _gguf_parsed_once():
        first = hf_gguf.load_gguf_checkpoint(str(tiny_gguf), return_tensors=False)
        second = hf_gguf.load_gguf_checkpoint(str(tiny_gguf), return_tensors=False)
        assert gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2) is gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2)
    # if transformers stopped looking the reader up in gguf at call time, this would count 2
    assert len(opened) == 1
    assert first["config"] == second["config"]
    assert first["config"]["num_hidden_layers"] == 2 and first["config"]["hidden_size"] == 8

    # outside the block nothing is shared any more
    assert gguf.GGUFReader is CountingReader
    hf_gguf.load_gguf_checkpoint(str(tiny_gguf), return_tensors=False)
    assert len(opened) == 2
    assert gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2) is not gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2)


def test_the_shared_reader_gives_the_tensors_it_read(tiny_gguf):
    with _gguf_parsed_once():
        reader = gguf.GGUFReader(tiny_gguf)
        assert gguf.GGUFReader(str(tiny_gguf)) is reader
    (tensor,) = reader.tensors
    assert tensor.name == "token_embd.weight"
    assert np.array_equal(np.asarray(tensor.data).reshape(-1), np.arange(32, dtype=np.float32))
