package testutil

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/vmcni/vmcni/internal/plugin"
)

// ErrInjected is the error a FaultSweep injects.
var ErrInjected = errors.New("injected fault")

// FaultSweep fails a plugin's ADD at each of its fault points in turn:
// every step boundary of the engine (WithStepHook) and every point inside
// a step (package fault: a link created but not yet up). At each point
// the rolled-back ADD must leave the host exactly as before; with Crash,
// an ADD stopped there without rollback (as a crash would leave it) must
// then be cleaned up by DEL (even points) or GC (odd points). With
// FailUndo, each undo step of each of those rollbacks is made to fail
// once: the rollback then keeps the record and the allocations, and DEL
// or GC must bring the host back exactly.
type FaultSweep struct {
	// Add runs one ADD of the attachment with the engine options given.
	Add func(opts ...plugin.Option) error
	// Del and GC clean up the attachment; GC may be nil (DEL every time).
	Del, GC func() error
	// Reset (optional) runs before each ADD: what DEL keeps on purpose (a
	// shared bridge) is removed so that every ADD passes the same points.
	Reset func()
	// Same fails t when the host differs from before the sweep.
	Same func(t testing.TB, when string)
	// Want (optional) are the points a clean ADD must pass, in order.
	Want []string
	// Crash also crashes ADD at each point and cleans up with DEL or GC.
	Crash bool
	// FailUndo also fails each undo step of each rollback once.
	FailUndo bool
}

// failing is a hook failing at point, and at the undo point undo (when
// not empty) once; seen collects the undo points the rollback passed.
func failing(point, undo string, seen *[]string) plugin.Option {
	undoFailed := false
	return plugin.WithStepHook(func(p string) error {
		switch {
		case p == point:
			return ErrInjected
		case strings.HasPrefix(p, plugin.UndoPoint("")):
			if seen != nil {
				*seen = append(*seen, p)
			}
			if p == undo && !undoFailed {
				undoFailed = true
				return ErrInjected
			}
		}
		return nil
	})
}

// Run runs the sweep and returns the points a clean ADD passed.
func (s FaultSweep) Run(t *testing.T) []string {
	t.Helper()
	s.reset()
	var points []string
	if err := s.Add(plugin.WithStepHook(func(p string) error { points = append(points, p); return nil })); err != nil {
		t.Fatalf("clean ADD: %v", err)
	}
	if s.Want != nil && !slices.Equal(points, s.Want) {
		t.Fatalf("ADD's points\n got %q\nwant %q", points, s.Want)
	}
	if err := s.Del(); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	s.Same(t, "clean ADD and DEL")
	undoFaults := 0
	defer func() {
		t.Logf("fault sweep: %d points, %d rollbacks, %d crashes, %d failed undos, host compared after each",
			len(points), len(points), map[bool]int{true: len(points)}[s.Crash], undoFaults)
	}()
	for i, point := range points {
		var undos []string
		s.reset()
		if err := s.Add(failing(point, "", &undos)); !errors.Is(err, ErrInjected) {
			t.Fatalf("fault at %q: ADD returned %v", point, err)
		}
		s.Same(t, "rollback at "+point)
		if s.Crash {
			s.reset()
			if err := s.Add(failing(point, "", nil), plugin.WithoutRollback()); !errors.Is(err, ErrInjected) {
				t.Fatalf("crash at %q: ADD returned %v", point, err)
			}
			s.clean(t, i, "crash at "+point)
		}
		if !s.FailUndo {
			continue
		}
		for j, undo := range undos {
			undoFaults++
			s.reset()
			if err := s.Add(failing(point, undo, nil)); !errors.Is(err, ErrInjected) {
				t.Fatalf("fault at %q, %s failing: ADD returned %v", point, undo, err)
			}
			s.clean(t, i+j, "fault at "+point+" and failed "+undo)
		}
	}
	return points
}

// clean runs DEL (even n) or GC (odd n) and checks the host.
func (s FaultSweep) clean(t *testing.T, n int, after string) {
	t.Helper()
	clean, what := s.Del, "DEL"
	if n%2 == 1 && s.GC != nil {
		clean, what = s.GC, "GC"
	}
	if err := clean(); err != nil {
		t.Fatalf("%s after %s: %v", what, after, err)
	}
	s.Same(t, what+" after "+after)
}

func (s FaultSweep) reset() {
	if s.Reset != nil {
		s.Reset()
	}
}
