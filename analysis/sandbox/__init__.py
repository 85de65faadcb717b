"""Running an image in the cluster: the Kubernetes client, checks, the pipeline and its objects."""
