"""The KServe custom predictor and its manifests."""
