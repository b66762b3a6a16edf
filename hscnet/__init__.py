"""HSCNet (Tan et al., CVPR 2023): video paragraph grounding. The Python API is `Grounder`."""


def __getattr__(name: str):
    # Imported on first use: `import hscnet.model` must not import the video decoder (PyAV) and the
    # extractor, which the GPU script's model path runs without.
    if name in {"Grounder", "EncodedVideo"}:
        from hscnet import grounder

        return getattr(grounder, name)
    raise AttributeError(f"module 'hscnet' has no attribute {name!r}")


__all__ = ["EncodedVideo", "Grounder"]
