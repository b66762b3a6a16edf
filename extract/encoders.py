"""The one factory of clip encoders: the network `ExtractSettings` ask for, built and ready.

Every encoder has `encode(uint8 clips [N, T, H, W, 3]) -> float32 [N, D]`, `describe()`,
`batch_size` and `precision`. torch is imported here, where a network runs; bin/extract's own
process only plans and writes, and never calls this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hscnet.extract.backbones import backbone
from hscnet.extract.settings import ExtractSettings

if TYPE_CHECKING:
    from hscnet.extract.c3d import C3DEncoder
    from hscnet.extract.kinetics import KineticsEncoder


def build_encoder(settings: ExtractSettings) -> C3DEncoder | KineticsEncoder:
    """The backbone `settings` name, with its weights (or a random one, announced), on its device."""
    settings.check_files()
    if settings.backbone != "c3d":
        from hscnet.extract.kinetics import KineticsEncoder

        return KineticsEncoder(
            name=settings.backbone,
            weights=settings.weights or None,
            device=settings.device,
            precision=settings.precision,
            batch_size=settings.batch_size,
        )
    from hscnet.extract.c3d import C3DEncoder, load_pca

    layer = settings.layer or backbone("c3d").layer
    projection = load_pca(settings.pca, settings.pca_dims, backbone("c3d").layer_dim(layer)) if settings.pca else None
    return C3DEncoder(
        weights=settings.weights or None,
        layer=layer,
        device=settings.device,
        precision=settings.precision,
        batch_size=settings.batch_size,
        projection=projection,
    )
