package sriov

import (
	"os"
	"path/filepath"
	"strconv"
)

// openers returns the pids of the processes that have file open (by its
// path, as /proc/<pid>/fd links show it), other than this one.
func openers(file string) []int {
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	self := os.Getpid()
	seen := map[int]bool{}
	var pids []int
	for _, fd := range fds {
		target, err := os.Readlink(fd)
		if err != nil || target != file {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(fd))))
		if err != nil || pid == self || seen[pid] {
			continue
		}
		seen[pid] = true
		pids = append(pids, pid)
	}
	return pids
}
