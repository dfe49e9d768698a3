package undo

import (
	"errors"
	"reflect"
	"testing"
)

func TestRollbackRunsInReverseAndJoinsErrors(t *testing.T) {
	var order []string
	errB := errors.New("b failed")
	var s Stack
	s.Push("a", func() error { order = append(order, "a"); return nil })
	s.Push("b", func() error { order = append(order, "b"); return errB })
	s.Push("c", func() error { order = append(order, "c"); return nil })

	err := s.Rollback()
	if want := []string{"c", "b", "a"}; !reflect.DeepEqual(order, want) {
		t.Fatalf("order = %v, want %v", order, want)
	}
	if !errors.Is(err, errB) {
		t.Fatalf("err = %v, want it to wrap %v", err, errB)
	}
	if s.Len() != 0 {
		t.Fatal("stack not emptied")
	}
}

func TestCommitForgetsSteps(t *testing.T) {
	ran := false
	var s Stack
	s.Push("x", func() error { ran = true; return nil })
	s.Commit()
	if err := s.Rollback(); err != nil || ran {
		t.Fatalf("rollback after commit ran=%v err=%v", ran, err)
	}
}

// TestReleaseKeptAfterFailedUndo: a release runs only when every undo
// pushed after it succeeded.
func TestReleaseKeptAfterFailedUndo(t *testing.T) {
	var order []string
	errB := errors.New("b failed")
	var s Stack
	s.PushRelease("record", func() error { order = append(order, "record"); return nil })
	s.Push("a", func() error { order = append(order, "a"); return nil })
	s.PushRelease("owner", func() error { order = append(order, "owner"); return nil })
	s.Push("b", func() error { order = append(order, "b"); return errB })
	s.Push("c", func() error { order = append(order, "c"); return nil })
	err := s.Rollback()
	if want := []string{"c", "b", "a"}; !reflect.DeepEqual(order, want) {
		t.Fatalf("order = %v, want %v", order, want)
	}
	if !errors.Is(err, errB) || !errors.Is(err, ErrKept) {
		t.Fatalf("err = %v", err)
	}

	order = nil
	s.PushRelease("record", func() error { order = append(order, "record"); return nil })
	s.Push("a", func() error { order = append(order, "a"); return nil })
	if err := s.Rollback(); err != nil || !reflect.DeepEqual(order, []string{"a", "record"}) {
		t.Fatalf("clean rollback: %v %v", order, err)
	}
}
