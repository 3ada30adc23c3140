"""The DensePose branch: decoder, RoI pooler, head, chart predictor, losses and the conversion to chart results."""
