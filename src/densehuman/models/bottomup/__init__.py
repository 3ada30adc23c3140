"""Bottom-up (part affinity field) whole-body pose: targets and OpenPose-style assembly."""
