#!/usr/bin/env bash
# vmcni demo: for each vm-bridge mode, plumb a fresh network namespace with
# the vm-bridge CNI plugin, boot a real VM (QEMU) on the device the CNI
# result's hint names, exchange traffic both ways, and tear it all down.
# Run through `make demo` (builds everything first). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
GUEST_DIR=${VMCNI_GUEST_DIR:-/var/cache/vmcni/guest}
WORK=$(mktemp -d /tmp/vmcni-demo.XXXX)
BRIDGE=vmcnidemo0
SUBNET_BASE=10.250
PORT=8099

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
step() { printf '  %-22s %s\n' "$1" "$2"; }

cleanup() {
  [[ -n "${HTTPD_PID:-}" ]] && kill "$HTTPD_PID" 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

[[ $(id -u) == 0 ]] || { echo "make demo needs root (it creates namespaces, links and a VM)"; exit 1; }
mkdir -p "$WORK/www" "$WORK/cni"
cp "$BIN"/vm-bridge "$BIN"/ref/host-local "$WORK/cni/"
echo "hello from the host" > "$WORK/www/index.html"

bold "vmcni demo — a real VM on every vm-bridge mode"
echo "  plugins: $WORK/cni   guest: $GUEST_DIR ($(cat "$GUEST_DIR/VERSION" 2>/dev/null || echo '?'))"
echo

declare -A WHAT=(
  [tcfilter]="tap + tc u32/mirred redirect both ways (Kata's default)"
  [bridge]="tap and pod veth on a bridge inside the pod netns (Clear Containers)"
  [macvtap]="macvtap on the pod veth, opened by char device (KubeVirt-style)"
)
i=0
for mode in tcfilter bridge macvtap; do
  i=$((i + 1))
  gw=$SUBNET_BASE.$i.1
  bold "[$mode] ${WHAT[$mode]}"
  cat > "$WORK/$mode.conflist" <<JSON
{ "cniVersion": "1.1.0", "name": "demo-$mode",
  "plugins": [ { "type": "vm-bridge", "mode": "$mode", "bridge": "$BRIDGE", "isGateway": true,
                 "stateDir": "$WORK/state",
                 "ipam": { "type": "host-local", "dataDir": "$WORK/ipam",
                           "ranges": [[{ "subnet": "$SUBNET_BASE.$i.0/24" }]],
                           "routes": [{ "dst": "0.0.0.0/0" }] } } ] }
JSON
  # the host-side service the guest will fetch, on this mode's gateway
  "$BIN"/vmnet run --conflist "$WORK/$mode.conflist" --cni-path "$WORK/cni" --probe-gateway \
      --probe-tcp "$gw:$PORT" -- bash -c '
    step() { printf "  %-24s %s\n" "$1" "$2"; }  # "→" is 3 bytes, 1 column
    summary=$(ping -c 3 -i 0.3 -W 2 "$VMNET_GUEST_IP" | awk "/packets transmitted/ {tx=\$1; rx=\$4} /rtt/ {split(\$4,a,\"/\"); avg=a[2]} END {printf \"%s/%s replies, avg %s ms\", rx, tx, avg}")
    step "host → guest ping" "$VMNET_GUEST_IP: $summary"
    body=$(curl -s -m 5 "http://$VMNET_GUEST_IP:8080/" | grep -o "vmcni-guest-ok" | head -1)
    step "host → guest HTTP" "GET http://$VMNET_GUEST_IP:8080/ → ${body:-FAILED}"
    [[ -n $body ]]
  ' > "$WORK/out" 2>&1 &
  RUN_PID=$!
  # serve the host page once the bridge (and gateway address) exists
  for _ in $(seq 50); do ip addr show "$BRIDGE" 2>/dev/null | grep -q "$gw/" && break; sleep 0.1; done
  busybox httpd -f -p "$gw:$PORT" -h "$WORK/www" & HTTPD_PID=$!
  rc=0; wait "$RUN_PID" || rc=$?
  kill "$HTTPD_PID" 2>/dev/null || true; wait "$HTTPD_PID" 2>/dev/null || true; HTTPD_PID=
  sed -e 's/^guest up in /  guest booted in /' \
      -e 's/^guest says: VMCNI-PROBE-OK \(.*\)/  guest → gateway ping   \1 answered/' \
      -e 's/^guest says: VMCNI-PROBETCP-OK \(.*\)/  guest → host HTTP      GET http:\/\/\1\/ answered/' \
      -e 's/^guest says: \(.*FAIL.*\)/  FAILED: \1/' "$WORK/out"
  if ((rc != 0)); then echo "  demo failed for $mode"; exit 1; fi
  left=$(find "$WORK/state" -type f 2>/dev/null | wc -l)
  step "teardown" "VM stopped, CNI DEL done, netns removed, $left state files left"
  echo
done

ip link del "$BRIDGE"
leases=$(find "$WORK/ipam" -type f ! -name lock ! -name 'last_reserved_ip*' 2>/dev/null | wc -l)
links=$(ip -o link | grep -c -E ': (vmc[0-9a-f]{11}|vmcnidemo0)[@:]' || true)
bold "done: 3 modes, 3 VMs booted and reached both ways; host clean ($links vmcni links, $leases IP leases left)"
