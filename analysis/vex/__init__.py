"""The VEX: OpenVEX built from Kubescape's evidence, its products and purls, and CycloneDX."""
