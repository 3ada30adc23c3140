"""The RoI branches of the detector, one folder each: its head, predictor, targets, loss and postprocessing.

- ``densepose``: DensePose R-CNN's charts (detectron2's heads, the GCE head of Parsing R-CNN);
- ``parsing``: Parsing R-CNN's human part segmentation.
"""
