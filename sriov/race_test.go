package sriov_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/libcni"

	"github.com/vmcni/vmcni/internal/link"
	"github.com/vmcni/vmcni/internal/testutil"
	"github.com/vmcni/vmcni/sriov"
	"github.com/vmcni/vmcni/sriov/sriovsim"
)

// TestRaceForOneVF: two pods ADD the same VF at once through the binary;
// one wins, the other gets code 11 naming the owner, and the VF carries
// the winner's settings only. The loser's DEL leaves the VF alone.
func TestRaceForOneVF(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, 1, false)
			simBefore := e.k.State()
			pods := []*testutil.NS{testutil.NewNS(t), testutil.NewNS(t)}
			vlans := []int{10, 20}
			var clients []*cni
			var rts []*libcni.RuntimeConf
			for i := range pods {
				clients = append(clients, e.cni(e.conf(mode, 0, map[string]any{"vlan": vlans[i]})))
				rts = append(rts, testutil.Runtime("race"+string(rune('a'+i)), pods[i].Path, "net1"))
			}
			errs := make([]error, 2)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range pods {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, errs[i] = clients[i].add(rts[i])
				}()
			}
			close(start)
			wg.Wait()
			if (errs[0] == nil) == (errs[1] == nil) {
				t.Fatalf("want exactly one winner, got errors %v / %v", errs[0], errs[1])
			}
			win, lose := 0, 1
			if errs[0] != nil {
				win, lose = 1, 0
			}
			testutil.AssertCode(t, errs[lose], 11)
			if !strings.Contains(errs[lose].Error(), "allocated to container \""+rts[win].ContainerID+"\"") {
				t.Fatalf("loser's error does not name the owner: %v", errs[lose])
			}
			if got := e.k.VF(0).Vlan; got != vlans[win] {
				t.Fatalf("VF vlan %d, winner configured %d", got, vlans[win])
			}
			if o, err := sriov.ReadOwner(e.stateDir, sriovsim.VFAddr(0)); err != nil || o.ContainerID != rts[win].ContainerID {
				t.Fatalf("owner %+v, %v", o, err)
			}
			e.k.TakeCalls()
			e.k.TakeWrites()
			if err := clients[lose].del(rts[lose]); err != nil {
				t.Fatalf("loser DEL: %v", err)
			}
			if w, calls := e.k.TakeWrites(), e.k.TakeCalls(); len(w)+len(calls) != 0 {
				t.Fatalf("loser's DEL touched the VF: %v %v", w, calls)
			}
			if err := clients[win].check(rts[win]); err != nil {
				t.Fatalf("winner CHECK after loser DEL: %v", err)
			}
			if err := clients[win].del(rts[win]); err != nil {
				t.Fatalf("winner DEL: %v", err)
			}
			e.k.AssertState(t, simBefore)
		})
	}
}

// TestStaleDelAfterReallocation: pod A releases its VF, pod B gets it,
// then a stale DEL for A arrives, first with no record left (a repeated
// DEL), then with A's record back (a DEL that died after freeing the VF but
// before deleting its record), then as GC. None may touch B's VF.
func TestStaleDelAfterReallocation(t *testing.T) {
	e := newEnv(t, 1, false)
	podA, podB := testutil.NewNS(t), testutil.NewNS(t)
	cA := e.cni(e.conf(sriov.ModeNetdev, 0, map[string]any{"vlan": 10, "mac": "02:00:00:00:00:0a"}))
	cB := e.cni(e.conf(sriov.ModeNetdev, 0, map[string]any{"vlan": 20, "mac": "02:00:00:00:00:0b"}))
	rtA, rtB := testutil.Runtime("podA", podA.Path, "net1"), testutil.Runtime("podB", podB.Path, "net1")
	simBefore := e.k.State()

	if _, err := cA.add(rtA); err != nil {
		t.Fatalf("A ADD: %v", err)
	}
	recA := filepath.Join(e.stateDir, "podA", "net1", "record.json")
	saved, err := os.ReadFile(recA)
	if err != nil {
		t.Fatal(err)
	}
	if err := cA.del(rtA); err != nil {
		t.Fatalf("A DEL: %v", err)
	}
	if _, err := cB.add(rtB); err != nil {
		t.Fatalf("B ADD: %v", err)
	}
	e.k.TakeCalls()
	assertB := func(when string) {
		t.Helper()
		if calls := e.k.TakeCalls(); len(calls) != 0 {
			t.Fatalf("%s: PF calls on B's VF: %v", when, calls)
		}
		if v := e.k.VF(0); v.Vlan != 20 || v.MAC != "02:00:00:00:00:0b" {
			t.Fatalf("%s: B's VF changed: %+v", when, v)
		}
		if err := nsDo(podB.Path, func() error { _, err := link.ByName("net1"); return err }); err != nil {
			t.Fatalf("%s: B's netdev gone: %v", when, err)
		}
		if err := cB.check(rtB); err != nil {
			t.Fatalf("%s: B CHECK: %v", when, err)
		}
	}

	if err := cA.del(rtA); err != nil {
		t.Fatalf("repeated A DEL: %v", err)
	}
	assertB("repeated DEL")

	writeRec := func() {
		if err := os.MkdirAll(filepath.Dir(recA), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(recA, saved, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeRec()
	if err := cA.del(rtA); err != nil {
		t.Fatalf("stale A DEL with record: %v", err)
	}
	assertB("stale DEL with record")
	if testutil.FileExists(recA) {
		t.Fatal("A's record survived its DEL")
	}

	writeRec()
	if err := cB.gc(rtB); err != nil {
		t.Fatalf("GC: %v", err)
	}
	assertB("GC")
	if testutil.FileExists(recA) {
		t.Fatal("GC kept A's record")
	}

	if err := cB.del(rtB); err != nil {
		t.Fatalf("B DEL: %v", err)
	}
	e.k.AssertState(t, simBefore)
}
