"""Fun with Diffusion Models on MNIST: the experiments behind the writeup.

Conventions fixed once for the whole package:
- images are (B, 1, 28, 28) float tensors in [0, 1] (never rescaled to [-1, 1] for our UNet);
- diffusion time t is 0-indexed in [0, T); networks receive t / T;
- abar_{-1} = 1, so the step from t = 0 lands on the clean image.
"""
