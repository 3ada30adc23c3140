"""Building blocks shared by the RoI branches: convolutions with norms, ASPP, the non-local block, GCE."""
