"""Pure ``nn.Module`` models, one sub-package per paper; shared blocks in ``models.blocks``."""
