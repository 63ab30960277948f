"""The teacher cache: the teacher's logits and layer states, computed once and read by idx.

`format` is the file format (writer, reader, manifest, staleness checks), `build` the
teacher pass that writes it, `distributed` the torchrun support of that pass.
"""
