// Package bench measures vmcni against the reference CNI plugins on the same
// machine, in the same run, and writes a Markdown report with an SVG plot.
//
// Control plane: ADD and DEL latency through libcni with the real binaries,
// the scenarios interleaved (A B C A B C ...) so drift hits all alike; scale
// (concurrent ADDs then DELs on one host bridge); cost growth (ADD latency
// with attachments already present); per-invocation cost (VERSION exec
// time, peak RSS of an ADD, binary size). Data plane: frames per second from
// the host side to the VM-facing device (a reader of the tap / macvtap fd
// stands in for the VMM) and back, against the bare veth as the limit.
//
// Nothing here asserts a target: the report states each target and whether
// this run met it.
package bench
