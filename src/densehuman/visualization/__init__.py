"""Pictures of dense pose results for a person to judge: chart segmentation, U/V colour maps, the raw IUV picture,
U/V iso-lines, boxes, texture transfer from a 24-tile atlas and texture extraction back into one.

All functions take and return uint8 RGB (H, W, 3) images; the dense maps are full-image: I (H, W) chart 0..24
(0 = background), U and V (H, W) float in [0, 1]. See ``densehuman.visualization.densepose``.
"""
