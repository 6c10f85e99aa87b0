"""The kubeface training pipeline and its compiled YAML."""
