"""Networks: the writeup's UNet family and the evaluation classifier. They know nothing of betas."""
