#!/bin/sh
# fathom-nodes: an example node provider for `fathom server --node-provider-cmd`.
#
#   fathom-nodes add N            add N machines (of the cluster's common node shape)
#   fathom-nodes remove NODE...   remove these nodes: Fathom cordoned and emptied them
#
# Exit 0 when the change is made or under way; otherwise print why on stderr and
# exit non-zero: Fathom logs it, counts it (fathom_scheduler_node_provider_calls_total)
# and asks again after --node-provider-cooldown. Calls may repeat (after a server
# restart, or a failure), so removing a node that is already gone must succeed.
#
# Fathom also sets FATHOM_NODE_PROVIDER_ACTION, FATHOM_ADD, FATHOM_NODES,
# FATHOM_MACHINES_NEEDED, FATHOM_MACHINES_USED, FATHOM_LOWER_BOUND,
# FATHOM_NODE_CPU_CORES and FATHOM_NODE_MEMORY_BYTES.
#
# Choose a backend in the server's environment (e.g. Environment= in
# deploy/systemd/fathom-server.service):
#   FATHOM_NODES_BACKEND=log (default)  only log what would be done: start here
#   FATHOM_NODES_BACKEND=gce            a GCE managed instance group:
#                                       FATHOM_NODES_GROUP, FATHOM_NODES_ZONE
#   FATHOM_NODES_BACKEND=aws            an EC2 auto scaling group: FATHOM_NODES_GROUP
# New machines must start `fathom agent --server ...` at boot (their image or
# startup script); node names are the agents' host names.
#
# The gce and aws branches are templates for your cloud: Fathom's tests run only
# the log backend.
set -eu
action=${1:?usage: fathom-nodes add N | fathom-nodes remove NODE...}
shift
backend=${FATHOM_NODES_BACKEND:-log}

case "$backend:$action" in
log:add)
  echo "would add $1 machine(s) of ${FATHOM_NODE_CPU_CORES:-?} cores and ${FATHOM_NODE_MEMORY_BYTES:-?} bytes (work needs ${FATHOM_MACHINES_NEEDED:-?} machines)"
  ;;
log:remove)
  echo "would remove: $*"
  ;;
gce:add)
  size=$(gcloud compute instance-groups managed describe "$FATHOM_NODES_GROUP" \
    --zone "$FATHOM_NODES_ZONE" --format='value(targetSize)')
  gcloud compute instance-groups managed resize "$FATHOM_NODES_GROUP" \
    --zone "$FATHOM_NODES_ZONE" --size "$((size + $1))"
  ;;
gce:remove)
  for node in "$@"; do
    if gcloud compute instances describe "$node" --zone "$FATHOM_NODES_ZONE" >/dev/null 2>&1; then
      gcloud compute instance-groups managed delete-instances "$FATHOM_NODES_GROUP" \
        --zone "$FATHOM_NODES_ZONE" --instances "$node"
    else
      echo "$node: already gone"
    fi
  done
  ;;
aws:add)
  want=$(aws autoscaling describe-auto-scaling-groups --auto-scaling-group-names "$FATHOM_NODES_GROUP" \
    --query 'AutoScalingGroups[0].DesiredCapacity' --output text)
  aws autoscaling set-desired-capacity --auto-scaling-group-name "$FATHOM_NODES_GROUP" \
    --desired-capacity "$((want + $1))"
  ;;
aws:remove)
  for node in "$@"; do
    id=$(aws ec2 describe-instances \
      --filters "Name=private-dns-name,Values=$node,$node.*" "Name=instance-state-name,Values=pending,running" \
      --query 'Reservations[].Instances[].InstanceId' --output text)
    if [ -z "$id" ] || [ "$id" = None ]; then
      echo "$node: already gone"
      continue
    fi
    aws autoscaling terminate-instance-in-auto-scaling-group --instance-id "$id" \
      --should-decrement-desired-capacity
  done
  ;;
*)
  echo "fathom-nodes: unknown backend or action '$backend' '$action' (backends: log, gce, aws; actions: add, remove)" >&2
  exit 2
  ;;
esac
