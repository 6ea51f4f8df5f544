#!/usr/bin/env bash
# Create the security group cluster/aws.yaml names (__SECURITY_GROUP_ID__): SSH from ADMIN_CIDR only,
# all traffic between members of the group (Ray's GCS, raylets, object manager, NFS to EFS when the EFS
# mount target uses this group too). Nothing is opened to 0.0.0.0/0; the dashboard (8265) is not opened
# at all: use `ray dashboard cluster/aws.yaml` (an SSH tunnel).
#
#   VPC_ID=vpc-... ADMIN_CIDR=198.51.100.7/32 bash cluster/network/aws-security-group.sh
set -euo pipefail
: "${VPC_ID:?set VPC_ID}" "${ADMIN_CIDR:?set ADMIN_CIDR (your address, e.g. 198.51.100.7/32)}"
case "$ADMIN_CIDR" in 0.0.0.0/*|::/0) echo "refusing ADMIN_CIDR=$ADMIN_CIDR: open to the world" >&2; exit 1;; esac
REGION=${AWS_REGION:-us-east-1}
SG=$(aws ec2 create-security-group --region "$REGION" --vpc-id "$VPC_ID" --group-name crl-sweep \
      --description "crl-sweep Ray cluster" --query GroupId --output text)
aws ec2 authorize-security-group-ingress --region "$REGION" --group-id "$SG" \
    --ip-permissions "IpProtocol=tcp,FromPort=22,ToPort=22,IpRanges=[{CidrIp=$ADMIN_CIDR,Description=admin-ssh}]"
aws ec2 authorize-security-group-ingress --region "$REGION" --group-id "$SG" \
    --ip-permissions "IpProtocol=-1,UserIdGroupPairs=[{GroupId=$SG,Description=intra-cluster}]"
echo "security group: $SG  (put it into cluster/aws.yaml as SecurityGroupIds)"
