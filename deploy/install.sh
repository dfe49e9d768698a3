#!/bin/sh
# Installs the vmcni plugins and the conflists mounted at /config onto the
# node (run by the DaemonSet's init container). Atomic per file: copy to a
# temporary name, then rename, so a runtime never executes a partial binary.
set -eu
BIN_DIR=${BIN_DIR:-/host/opt/cni/bin}
CONF_DIR=${CONF_DIR:-/host/etc/cni/multus/net.d}
mkdir -p "$BIN_DIR" "$CONF_DIR"
for f in /opt/vmcni/bin/*; do
	name=$(basename "$f")
	cp "$f" "$BIN_DIR/.$name.tmp"
	chmod 0755 "$BIN_DIR/.$name.tmp"
	mv -f "$BIN_DIR/.$name.tmp" "$BIN_DIR/$name"
done
for f in /config/*.conflist; do
	[ -e "$f" ] || continue
	name=$(basename "$f")
	cp "$f" "$CONF_DIR/.$name.tmp"
	mv -f "$CONF_DIR/.$name.tmp" "$CONF_DIR/$name"
done
echo "vmcni: installed $(ls /opt/vmcni/bin | tr '\n' ' ')into $BIN_DIR, conflists into $CONF_DIR"
