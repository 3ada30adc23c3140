"""Keypoint layouts (COCO-17, COCO-WholeBody-133, OpenPose BODY_135) and conversions between them."""
