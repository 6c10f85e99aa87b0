"""Photos bundled with kubeface for the demo and the tests; see README.md here."""
