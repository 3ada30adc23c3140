"""Models: DensePose R-CNN and its parts (backbones, FPN, RPN, box and DensePose branches)."""
