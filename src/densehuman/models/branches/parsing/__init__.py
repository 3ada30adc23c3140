"""The Parsing R-CNN branch: P2-only 32x32 pooling, the GCE head, the deconvolution predictor, per-RoI targets
cropped from the GT maps, the cross-entropy loss, and the Detectron-style paste of the part probabilities."""
