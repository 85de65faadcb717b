#!/usr/bin/env bash
# Quick start: a local kind cluster with the Kubescape operator, ready for `make run`.
#
#   deploy/kind/quickstart.sh        (CLUSTER_NAME=vexxy and K8S_SANDBOX_NAMESPACE=vexxy-sandbox
#                                     by default; re-running it is safe)
#
# Needs docker, kind, kubectl and helm (and python3 + make for the venv). Creates the kind
# cluster (or reuses it), installs the Kubescape operator chart, waits for Kubescape's storage
# API, creates the sandbox namespace and the service's RBAC, writes the environment for
# `make run` to var/kind-$CLUSTER_NAME.env and prints what to run next.
#
# Docker is not available on the machines that build and test this project: this script is
# never run there against a real cluster. It is checked by shellcheck
# (tests/test_quickstart_script.py) and run with its tools played by stubs
# (tests/test_quickstart_run.py).
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER_NAME=${CLUSTER_NAME:-vexxy}
SANDBOX_NAMESPACE=${K8S_SANDBOX_NAMESPACE:-vexxy-sandbox}
# The chart version the service is written against (Kubescape's formats and VEX output change
# between releases): update it deliberately.
KUBESCAPE_CHART_VERSION=1.40.3
KUBESCAPE_NAMESPACE=kubescape
APISERVICE=v1beta1.spdx.softwarecomposition.kubescape.io
CONTEXT=kind-$CLUSTER_NAME

missing=()
for tool in docker kind kubectl helm python3 make; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "quickstart: not installed: ${missing[*]}" >&2
  echo "  docker https://docs.docker.com/get-docker/  kind https://kind.sigs.k8s.io/" >&2
  echo "  kubectl https://kubernetes.io/docs/tasks/tools/  helm https://helm.sh/docs/intro/install/" >&2
  exit 1
fi
docker info >/dev/null 2>&1 || {
  echo "quickstart: docker is installed but its daemon does not answer (is it running?)" >&2
  exit 1
}

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  echo "quickstart: kind cluster $CLUSTER_NAME exists, reusing it"
else
  kind create cluster --name "$CLUSTER_NAME" --wait 180s
fi

# Values: kubescape/helm-charts, charts/kubescape-operator/values.yaml (chart 1.40.3).
# relevancy + runtimeObservability: node-agent records what each container loads, which is
# what makes a finding relevant; vulnerabilityScan: kubevuln's manifests; vexGeneration
# (optional): Kubescape's own VEX, kept as evidence. learningPeriod is node-agent's delay
# before a container's first profile (default 2m) and updatePeriod the interval of the next
# ones (default 10m): shortened for short analyses. The end of learning (maxLearningPeriod,
# 24h) is left alone: the service sets it per sandbox with the pod label
# kubescape.io/max-sniffing-time (its analysis_duration).
helm repo add kubescape https://kubescape.github.io/helm-charts/ --force-update >/dev/null
helm repo update kubescape >/dev/null
helm upgrade --install kubescape kubescape/kubescape-operator \
  --version "$KUBESCAPE_CHART_VERSION" --kube-context "$CONTEXT" \
  --namespace "$KUBESCAPE_NAMESPACE" --create-namespace --wait --timeout 15m \
  --set clusterName="$CLUSTER_NAME" \
  --set ksNamespace="$KUBESCAPE_NAMESPACE" \
  --set capabilities.relevancy=enable \
  --set capabilities.runtimeObservability=enable \
  --set capabilities.vulnerabilityScan=enable \
  --set capabilities.vexGeneration=enable \
  --set nodeAgent.config.learningPeriod=1m \
  --set nodeAgent.config.updatePeriod=1m

kubectl --context "$CONTEXT" wait --for=condition=Available "apiservice/$APISERVICE" --timeout=10m

# The sandbox namespace (the service never creates it) and the namespace of the service's
# ServiceAccount (print_sandbox_rbac's default, vexxy), then the RBAC the service needs.
for namespace in "$SANDBOX_NAMESPACE" vexxy; do
  kubectl --context "$CONTEXT" create namespace "$namespace" --dry-run=client -o yaml |
    kubectl --context "$CONTEXT" apply -f -
done
[ -x .venv/bin/python ] || make install
.venv/bin/python manage.py print_sandbox_rbac --sandbox-namespace "$SANDBOX_NAMESPACE" \
  --kubescape-namespace "$KUBESCAPE_NAMESPACE" | kubectl --context "$CONTEXT" apply -f -

mkdir -p var
KUBECONFIG_FILE=$PWD/var/kind-$CLUSTER_NAME.kubeconfig
ENV_FILE=var/kind-$CLUSTER_NAME.env
(umask 077 && kind get kubeconfig --name "$CLUSTER_NAME" >"$KUBECONFIG_FILE")
cat >"$ENV_FILE" <<EOF
export SANDBOX_ENABLED=true
export K8S_IN_CLUSTER=false
export KUBECONFIG=$KUBECONFIG_FILE
export K8S_SANDBOX_NAMESPACE=$SANDBOX_NAMESPACE
export KUBESCAPE_NAMESPACE=$KUBESCAPE_NAMESPACE
EOF

cat <<EOF

Cluster $CLUSTER_NAME is ready: Kubescape operator $KUBESCAPE_CHART_VERSION, $APISERVICE
Available, namespace $SANDBOX_NAMESPACE and the service's RBAC. Environment: $ENV_FILE

1. Run the service against it (Ctrl-C stops it):

   . $ENV_FILE && make run

2. In another terminal, from $PWD: an API key, then an analysis of an image by digest (the
   sandbox drops all capabilities, so an unprivileged nginx, listening on 8080):

   . $ENV_FILE
   KEY=\$(.venv/bin/python manage.py create_api_key --json --organization demo --name quickstart \\
     --create-organization | python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"])')
   IMAGE=docker.io/nginxinc/nginx-unprivileged:1.25
   docker pull -q "\$IMAGE" >/dev/null
   DIGEST=\$(docker image inspect --format '{{index .RepoDigests 0}}' "\$IMAGE" | cut -d@ -f2)
   curl -s -X POST http://127.0.0.1:8000/api/v1/analysis/submit \\
     -H "Authorization: Api-Key \$KEY" -H 'Content-Type: application/json' \\
     -d "{\"image_ref\": \"\$IMAGE\", \"image_digest\": \"\$DIGEST\", \"profile\": \"minimal\", \"config\": {\"ports\": [8080]}}"

   Then follow it: curl -s http://127.0.0.1:8000/api/v1/analysis/JOB_ID/status -H "X-API-Key: \$KEY"
   Delete the cluster: kind delete cluster --name $CLUSTER_NAME
EOF
