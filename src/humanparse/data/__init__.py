"""Dataset readers (one module per dataset), transforms, derived targets and synthetic generators."""
