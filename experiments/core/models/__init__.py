"""Networks: the UNet family of the spec and the evaluation classifier. They know nothing of betas."""
