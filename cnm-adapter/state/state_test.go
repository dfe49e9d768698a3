package state

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestStoreRoundTripAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	n := &Network{ID: "net1", Options: map[string]string{"mode": "bridge"}, Bridge: "vmctbr", Created: time.Now()}
	must(t, s.PutNetwork(n))
	must(t, s.PutEndpoint(&Endpoint{ID: "ep1", NetworkID: "net1", Phase: PhaseJoined, Runtime: &Runtime{ContainerID: "ep1", IfName: "eth0", CapabilityArgs: map[string]any{"mac": "02:00:00:00:00:01"}}}))
	must(t, s.PutEndpoint(&Endpoint{ID: "ep2", NetworkID: "other", Phase: PhaseCreated}))
	must(t, s.PutPool(&Pool{ID: "as/10.1.0.0/24", Subnet: "10.1.0.0/24"}))
	must(t, s.PutPool(&Pool{ID: "as/10.1.0.0/16", Subnet: "10.1.0.0/16"}))
	must(t, s.PutLease(&Lease{PoolID: "as/10.1.0.0/24", Address: "10.1.0.2"}))
	must(t, s.PutLease(&Lease{PoolID: "as/10.1.0.0/16", Address: "10.1.0.3"}))
	must(t, s.Close())

	if s, err = Open(path, time.Second); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Network("net1")
	if err != nil || got.Bridge != "vmctbr" || got.Options["mode"] != "bridge" {
		t.Fatalf("network after reopen: %+v %v", got, err)
	}
	eps, _ := s.Endpoints("net1")
	if len(eps) != 1 || eps[0].Runtime.CapabilityArgs["mac"] != "02:00:00:00:00:01" {
		t.Fatalf("endpoints of net1: %+v", eps)
	}
	if leases, _ := s.Leases("as/10.1.0.0/24"); len(leases) != 1 || leases[0].Address != "10.1.0.2" {
		t.Fatalf("leases of one pool must not include a pool whose ID extends it: %+v", leases)
	}
	c, _ := s.Count()
	if c != (Counts{Networks: 1, Endpoints: 2, Pools: 2, Leases: 2}) {
		t.Fatalf("counts %+v", c)
	}
	if _, err = s.Endpoint("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing endpoint: %v", err)
	}
	for _, fn := range []func() error{
		func() error { return s.DeleteNetwork("net1") }, func() error { return s.DeleteEndpoint("ep1") },
		func() error { return s.DeleteEndpoint("ep2") }, func() error { return s.DeletePool("as/10.1.0.0/24") },
		func() error { return s.DeletePool("as/10.1.0.0/16") }, func() error { return s.DeleteLease("as/10.1.0.0/24", "10.1.0.2") },
		func() error { return s.DeleteLease("as/10.1.0.0/16", "10.1.0.3") }, func() error { return s.DeleteLease("x", "y") },
	} {
		must(t, fn())
	}
	if c, _ = s.Count(); !c.Empty() {
		t.Fatalf("not empty: %+v", c)
	}
}

func TestSchemaMismatchRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	must(t, db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucketIfNotExists(bucketMeta)
		return b.Put([]byte("schema"), []byte("99"))
	}))
	must(t, db.Close())
	if s, err := Open(path, time.Second); err == nil {
		s.Close()
		t.Fatal("opened a database of an unknown schema")
	}
}

func TestLockedDatabaseTimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s2, err := Open(path, 100*time.Millisecond); err == nil {
		s2.Close()
		t.Fatal("second daemon opened a locked database")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
