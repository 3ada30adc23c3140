"""Evaluation: DensePose results files, the body's geodesic evaluation data (official SMPL files or the Anny body,
``geodesic_data``), GPS, matching and AP."""
