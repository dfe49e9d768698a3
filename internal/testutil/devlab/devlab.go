// Package devlab runs Go test binaries and vmcni's plugins inside the
// device lab: a QEMU guest whose kernel drives real SR-IOV and VFIO (the
// emulated igb 82576 PF with 7 VFs on igbvf, vfio-pci, the Intel IOMMU),
// which this host's kernel cannot. vmnet/guest/lab/build.sh builds the lab
// (`make lab`; `make test` does) into VMCNI_LAB_DIR, default
// /var/cache/vmcni/lab.
//
// # Contract
//
// A host test calls Require (it skips when the lab is not built and
// VMCNI_LAB_DIR is unset, fails when VMCNI_LAB_DIR is set but the lab is
// missing), builds what the guest runs (BuildTest, BuildCommands), and
// boots one guest per Lab.Run: the files of Run.Files are packed as a
// second initramfs archive under /lab, the guest's /init loads the
// drivers, brings the PF up, creates Run.VFs VFs, runs /lab/run (Run.Script,
// a shell script written by the test, never built from user input) and
// powers off. Run returns the script's output and exit status, read from
// the guest's second serial port, and the guest's console. The guest is
// gone when Run returns; nothing on the host changes besides the test's
// temporary directory.
//
// Inside the guest, InGuest reports true (VMCNI_LAB=1) and the environment
// names the PF (VMCNI_LAB_PF, VMCNI_LAB_PF_PCI) and the directory of the
// built commands (VMCNI_BIN_DIR), which testutil.Binaries returns there.
//
// GoTests runs a Go test binary in the guest and replays its result on the
// host, one subtest per top-level test, so that `go test` on the host
// reports each lab test by name.
package devlab
