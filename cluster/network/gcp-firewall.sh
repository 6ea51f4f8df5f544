#!/usr/bin/env bash
# Create the VPC cluster/gcp.yaml uses: SSH from ADMIN_CIDR only (or IAP's range 35.235.240.0/20 when
# ADMIN_CIDR=iap), all traffic between instances tagged crl-sweep. Nothing is opened to 0.0.0.0/0;
# the dashboard (8265) is not opened at all: use `ray dashboard cluster/gcp.yaml` (an SSH tunnel).
#
#   PROJECT_ID=my-project ADMIN_CIDR=198.51.100.7/32 bash cluster/network/gcp-firewall.sh
set -euo pipefail
: "${PROJECT_ID:?set PROJECT_ID}" "${ADMIN_CIDR:?set ADMIN_CIDR (your address, or iap)}"
[ "$ADMIN_CIDR" = iap ] && ADMIN_CIDR=35.235.240.0/20
case "$ADMIN_CIDR" in 0.0.0.0/*|::/0) echo "refusing ADMIN_CIDR=$ADMIN_CIDR: open to the world" >&2; exit 1;; esac
REGION=${REGION:-us-central1}
gcloud compute networks create crl-sweep --project "$PROJECT_ID" --subnet-mode custom
gcloud compute networks subnets create crl-sweep --project "$PROJECT_ID" --network crl-sweep \
    --region "$REGION" --range 10.42.0.0/20
gcloud compute firewall-rules create crl-sweep-admin-ssh --project "$PROJECT_ID" --network crl-sweep \
    --direction INGRESS --allow tcp:22 --source-ranges "$ADMIN_CIDR" --target-tags crl-sweep
gcloud compute firewall-rules create crl-sweep-internal --project "$PROJECT_ID" --network crl-sweep \
    --direction INGRESS --allow tcp,udp,icmp --source-tags crl-sweep --target-tags crl-sweep
