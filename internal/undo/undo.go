// Package undo is the rollback stack every ADD uses.
//
// Push a step before the side effect it reverts, so that an effect that
// fails half way is undone too: a step must be idempotent and harmless
// when its effect never happened. If the operation fails, Rollback runs
// the steps in reverse order, keeps going when one fails, and returns all
// their errors joined. Commit forgets the steps once the operation has
// succeeded. A Stack is not safe for concurrent use.
//
// A release step (PushRelease) gives back something the operation held:
// the attachment's record, a device's allocation. It runs only when every
// step pushed after it succeeded; otherwise the resource stays held (the
// device is not what it was, so it must not go back to the pool), and a
// later DEL or GC finishes the job from the record.
//
//	var u undo.Stack
//	u.Push("delete tap", deleteTapIfOurs)
//	if err := createTap(); err != nil { return errors.Join(err, u.Rollback()) }
//	...
//	u.Commit()
package undo

import (
	"errors"
	"fmt"
)

// Step reverts one side effect.
type Step struct {
	Name string
	Fn   func() error
	// Release marks a step that gives a held resource back (PushRelease).
	Release bool
}

// Stack is an ordered list of undo steps.
type Stack struct {
	steps []Step
}

// Push records how to revert the side effect about to happen.
func (s *Stack) Push(name string, fn func() error) {
	s.steps = append(s.steps, Step{Name: name, Fn: fn})
}

// PushRelease records how to give back a resource about to be taken; the
// release is skipped when a step pushed after it fails.
func (s *Stack) PushRelease(name string, fn func() error) {
	s.steps = append(s.steps, Step{Name: name, Fn: fn, Release: true})
}

// Len reports how many steps are pending.
func (s *Stack) Len() int { return len(s.steps) }

// ErrKept marks a release Rollback skipped: the resource is still held.
var ErrKept = errors.New("kept, since an undo step before it failed")

// Rollback runs every pending step, last pushed first, and empties the
// stack. It returns the joined errors of the steps that failed, each
// prefixed with the step's name, and an ErrKept for each release skipped.
func (s *Stack) Rollback() error {
	var errs []error
	for i := len(s.steps) - 1; i >= 0; i-- {
		step := s.steps[i]
		if step.Release && len(errs) > 0 {
			errs = append(errs, fmt.Errorf("undo %s: %w", step.Name, ErrKept))
			continue
		}
		if err := step.Fn(); err != nil {
			errs = append(errs, fmt.Errorf("undo %s: %w", step.Name, err))
		}
	}
	s.steps = nil
	return errors.Join(errs...)
}

// Commit drops the pending steps: the operation succeeded.
func (s *Stack) Commit() { s.steps = nil }
